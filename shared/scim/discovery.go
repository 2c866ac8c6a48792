package scim

import (
	"net/http"
	"strings"
)

// Discovery endpoints (RFC 7644 §4). They need the bearer token too, as
// Okta sends it.

func (h *handler) serviceProviderConfig(w http.ResponseWriter, r *http.Request) error {
	base := h.baseURL(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas":          []string{urnSPConfig},
		"documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": h.cfg.MaxResults},
		"changePassword":   map[string]any{"supported": false},
		"sort":             map[string]any{"supported": false},
		"etag":             map[string]any{"supported": true},
		"authenticationSchemes": []any{map[string]any{
			"type":        "oauthbearertoken",
			"name":        "OAuth Bearer Token",
			"description": "Authentication with a static bearer token (Authorization: Bearer <token>)",
			"specUri":     "https://www.rfc-editor.org/info/rfc6750",
			"primary":     true,
		}},
		"meta": map[string]any{
			"resourceType": "ServiceProviderConfig",
			"location":     base + "/ServiceProviderConfig",
		},
	})
	return nil
}

func (h *handler) resourceTypeJSON(rt *resourceType, base string) map[string]any {
	exts := make([]any, len(rt.Extensions))
	for i, s := range rt.Extensions {
		exts[i] = map[string]any{"schema": s.ID, "required": false}
	}
	return map[string]any{
		"schemas":          []string{urnResourceType},
		"id":               rt.Name,
		"name":             rt.Name,
		"endpoint":         rt.Endpoint,
		"description":      rt.Description,
		"schema":           rt.Core.ID,
		"schemaExtensions": exts,
		"meta": map[string]any{
			"resourceType": "ResourceType",
			"location":     base + "/ResourceTypes/" + rt.Name,
		},
	}
}

func (h *handler) resourceTypes(w http.ResponseWriter, r *http.Request) error {
	base := h.baseURL(r)
	items := []any{h.resourceTypeJSON(h.users, base), h.resourceTypeJSON(h.groups, base)}
	writeJSON(w, http.StatusOK, newListResponse(len(items), 1, items))
	return nil
}

func (h *handler) resourceType(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	for _, rt := range []*resourceType{h.users, h.groups} {
		if strings.EqualFold(name, rt.Name) {
			writeJSON(w, http.StatusOK, h.resourceTypeJSON(rt, h.baseURL(r)))
			return nil
		}
	}
	return notFound("no ResourceType %q; this service provider has User and Group", name)
}

// allSchemas lists the schemas served: core User, enterprise and custom
// extensions, core Group.
func (h *handler) allSchemas() []*schema {
	return append(append([]*schema{h.users.Core}, h.users.Extensions...), h.groups.Core)
}

func schemaJSON(s *schema, base string) map[string]any {
	return map[string]any{
		"schemas":     []string{urnSchema},
		"id":          s.ID,
		"name":        s.Name,
		"description": s.Description,
		"attributes":  s.Attributes,
		"meta": map[string]any{
			"resourceType": "Schema",
			"location":     base + "/Schemas/" + s.ID,
		},
	}
}

func (h *handler) schemas(w http.ResponseWriter, r *http.Request) error {
	base := h.baseURL(r)
	var items []any
	for _, s := range h.allSchemas() {
		items = append(items, schemaJSON(s, base))
	}
	writeJSON(w, http.StatusOK, newListResponse(len(items), 1, items))
	return nil
}

func (h *handler) schemaByID(w http.ResponseWriter, r *http.Request) error {
	urn := r.PathValue("urn")
	for _, s := range h.allSchemas() {
		if strings.EqualFold(urn, s.ID) {
			writeJSON(w, http.StatusOK, schemaJSON(s, h.baseURL(r)))
			return nil
		}
	}
	return notFound("no Schema %q", urn)
}
