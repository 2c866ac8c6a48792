// Command scimdiff sends the same sequence of SCIM requests — the shapes
// Okta and Entra send, plus the edge cases their conformance tests probe
// — to several SCIM servers and prints, per request, the status each
// answered and whether the answer did what was asked, so differences in
// conformance stand out.
//
//	go run ./infra/bench/scimdiff -server learnerlink=http://127.0.0.1:8080/scim/v2,TOKEN \
//	                              -server peer=http://127.0.0.1:8090/scim/v2,TOKEN2
//
// Each server gets its own freshly named users and groups; nothing is
// left behind but what a failed DELETE could not remove. Loopback only.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

const (
	urnUser  = "urn:ietf:params:scim:schemas:core:2.0:User"
	urnGroup = "urn:ietf:params:scim:schemas:core:2.0:Group"
	urnEnt   = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	urnPatch = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

type server struct{ name, base, token string }

type servers []server

func (s *servers) String() string { return fmt.Sprint(*s) }

func (s *servers) Set(v string) error {
	name, rest, ok := strings.Cut(v, "=")
	base, token, ok2 := strings.Cut(rest, ",")
	if !ok || !ok2 || name == "" || token == "" {
		return errors.New("want name=baseURL,token")
	}
	if err := loopback(base); err != nil {
		return err
	}
	*s = append(*s, server{name, strings.TrimRight(base, "/"), token})
	return nil
}

func loopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if h := u.Hostname(); h != "localhost" {
		if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%s: only loopback servers", raw)
		}
	}
	return nil
}

// answer is one response.
type answer struct {
	status int
	body   map[string]any
}

// probe is one request and what a conforming answer looks like.
type probe struct {
	name   string
	want   []int
	send   func(c *client) answer
	verify func(a answer) string // "" if the answer did what was asked
}

func main() {
	var ss servers
	flag.Var(&ss, "server", "name=baseURL,token (repeat)")
	flag.Parse()
	if len(ss) == 0 {
		fmt.Fprintln(os.Stderr, "scimdiff: pass -server at least once")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results := make([][]answer, len(ss))
	notes := make([][]string, len(ss))
	var probes []probe
	for i, s := range ss {
		c := &client{ctx: ctx, s: s, hc: &http.Client{Timeout: 10 * time.Second}, sfx: strings.ToLower(rand.Text()[:8])}
		probes = c.probes()
		for _, p := range probes {
			a := p.send(c)
			results[i] = append(results[i], a)
			note := ""
			if !contains(p.want, a.status) {
				note = fmt.Sprintf("status %d, want %v", a.status, p.want)
			} else if p.verify != nil {
				note = p.verify(a)
			}
			notes[i] = append(notes[i], note)
		}
		c.cleanup()
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "request\twant")
	for _, s := range ss {
		fmt.Fprintf(tw, "\t%s", s.name)
	}
	fmt.Fprintln(tw)
	same, differ := 0, 0
	var issues []string
	for j, p := range probes {
		fmt.Fprintf(tw, "%s\t%s", p.name, ints(p.want))
		st := results[0][j].status
		eq := true
		for i, s := range ss {
			mark := ""
			if notes[i][j] != "" {
				mark = " ✗"
				issues = append(issues, fmt.Sprintf("%s: %s: %s", s.name, p.name, notes[i][j]))
			}
			fmt.Fprintf(tw, "\t%d%s", results[i][j].status, mark)
			eq = eq && results[i][j].status == st
		}
		fmt.Fprintln(tw)
		if eq {
			same++
		} else {
			differ++
		}
	}
	_ = tw.Flush()
	fmt.Printf("\n%d requests: same status on every server for %d, different for %d\n", len(probes), same, differ)
	for _, s := range issues {
		fmt.Println("  ✗", s)
	}
}

func contains(xs []int, v int) bool {
	for _, x := range xs {
		if x == v {
			return true
		}
	}
	return false
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, "/")
}

type client struct {
	ctx        context.Context
	s          server
	hc         *http.Client
	sfx        string
	uid, gid   string
	created    []string
	userName   string
	externalID string
}

func (c *client) do(method, path string, body any, auth bool) answer {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(c.ctx, method, c.s.base+path, rd)
	if err != nil {
		return answer{}
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.s.token)
	}
	req.Header.Set("Accept", "application/scim+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json; charset=utf-8")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return answer{}
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	a := answer{status: res.StatusCode}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (c *client) patch(path string, ops ...map[string]any) answer {
	list := make([]any, len(ops))
	for i, o := range ops {
		list[i] = o
	}
	return c.do(http.MethodPatch, path, map[string]any{"schemas": []string{urnPatch}, "Operations": list}, true)
}

func (c *client) cleanup() {
	for _, p := range c.created {
		c.do(http.MethodDelete, p, nil, true)
	}
}

func q(f string) string { return "?filter=" + url.QueryEscape(f) }

func get(m map[string]any, path string) any {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[k]
	}
	return cur
}

func total(a answer) float64 { n, _ := a.body["totalResults"].(float64); return n }

func expectTotal(n float64) func(answer) string {
	return func(a answer) string {
		if total(a) != n {
			return fmt.Sprintf("totalResults %v, want %v", total(a), n)
		}
		return ""
	}
}

func expectAt(path string, want any) func(answer) string {
	return func(a answer) string {
		if got := get(a.body, path); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Sprintf("%s = %v, want %v", path, got, want)
		}
		return ""
	}
}

func expectExt(attr string, want any) func(answer) string {
	return func(a answer) string {
		ext, _ := a.body[urnEnt].(map[string]any)
		if got := ext[attr]; fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Sprintf("enterprise %s = %v, want %v", attr, got, want)
		}
		return ""
	}
}

// userPath and groupPath are evaluated when the probe runs.
func (c *client) userPath() string  { return "/Users/" + c.uid }
func (c *client) groupPath() string { return "/Groups/" + c.gid }

func (c *client) probes() []probe {
	c.userName = "Jane.Doe." + c.sfx + "@atko.example"
	c.externalID = "00u" + c.sfx
	user := map[string]any{
		"schemas": []string{urnUser, urnEnt}, "userName": c.userName, "externalId": c.externalID,
		"name":   map[string]any{"givenName": "Jane", "familyName": "Doe"},
		"emails": []any{map[string]any{"primary": true, "value": "jane." + c.sfx + "@atko.example", "type": "work"}},
		"active": true, "displayName": "Jane Doe", "locale": "en-US", "groups": []any{}, "password": "1mz050nq-" + c.sfx,
		urnEnt: map[string]any{"department": "Sales", "employeeNumber": "E1"},
	}
	group := "LMS Learners " + c.sfx
	return []probe{
		{"POST /Users (Okta create)", []int{201}, func(c *client) answer {
			a := c.do(http.MethodPost, "/Users", user, true)
			c.uid, _ = a.body["id"].(string)
			c.created = append(c.created, "/Users/"+c.uid)
			return a
		}, expectAt("active", true)},
		{"POST /Users same userName again", []int{409}, func(c *client) answer { return c.do(http.MethodPost, "/Users", user, true) },
			expectAt("scimType", "uniqueness")},
		{"GET /Users/{id}", []int{200}, func(c *client) answer { return c.do(http.MethodGet, c.userPath(), nil, true) },
			expectExt("department", "Sales")},
		{"GET /Users/{unknown id}", []int{404}, func(c *client) answer { return c.do(http.MethodGet, "/Users/010101"+c.sfx, nil, true) }, nil},
		{"GET /Users without a token", []int{401}, func(c *client) answer { return c.do(http.MethodGet, "/Users", nil, false) }, nil},
		{"filter userName eq", []int{200}, func(c *client) answer {
			return c.do(http.MethodGet, "/Users"+q(`userName eq "`+c.userName+`"`), nil, true)
		}, expectTotal(1)},
		{"filter userName eq, other case", []int{200}, func(c *client) answer {
			return c.do(http.MethodGet, "/Users"+q(`userName eq "`+strings.ToUpper(c.userName)+`"`), nil, true)
		}, expectTotal(1)},
		{"filter userName eq unknown", []int{200}, func(c *client) answer {
			return c.do(http.MethodGet, "/Users"+q(`userName eq "nobody.`+c.sfx+`"`), nil, true)
		}, expectTotal(0)},
		{"filter externalId eq (Entra)", []int{200}, func(c *client) answer {
			return c.do(http.MethodGet, "/Users"+q(`externalId eq "`+c.externalID+`"`), nil, true)
		}, expectTotal(1)},
		{"filter with bad syntax", []int{400}, func(c *client) answer { return c.do(http.MethodGet, "/Users"+q(`userName eq`), nil, true) }, expectAt("scimType", "invalidFilter")},
		{"GET /Users?count=1&startIndex=1", []int{200}, func(c *client) answer { return c.do(http.MethodGet, "/Users?count=1&startIndex=1", nil, true) },
			func(a answer) string {
				if r, _ := a.body["Resources"].([]any); len(r) != 1 {
					return fmt.Sprintf("%d Resources, want 1", len(r))
				}
				return ""
			}},
		{"PUT /Users/{id} changed names", []int{200}, func(c *client) answer {
			u := map[string]any{}
			for k, v := range user {
				u[k] = v
			}
			u["id"], u["name"] = c.uid, map[string]any{"givenName": "Janet", "familyName": "Doe-Smith"}
			return c.do(http.MethodPut, c.userPath(), u, true)
		}, expectAt("name.givenName", "Janet")},
		{"PATCH path-less replace active:false (Okta)", []int{200}, func(c *client) answer {
			return c.patch(c.userPath(), map[string]any{"op": "replace", "value": map[string]any{"active": false}})
		}, expectAt("active", false)},
		{`PATCH "Replace" active "True" (Entra string boolean)`, []int{200}, func(c *client) answer {
			return c.patch(c.userPath(), map[string]any{"op": "Replace", "path": "active", "value": "True"})
		}, expectAt("active", true)},
		{`PATCH Replace emails[type eq "work"].value`, []int{200}, func(c *client) answer {
			return c.patch(c.userPath(), map[string]any{"op": "Replace", "path": `emails[type eq "work"].value`, "value": "new." + c.sfx + "@atko.example"})
		}, func(a answer) string {
			e, _ := a.body["emails"].([]any)
			if len(e) != 1 || get(e[0].(map[string]any), "value") != "new."+c.sfx+"@atko.example" {
				return fmt.Sprintf("emails = %v", a.body["emails"])
			}
			return ""
		}},
		{`PATCH Add phoneNumbers[type eq "mobile"].value (new element)`, []int{200}, func(c *client) answer {
			return c.patch(c.userPath(), map[string]any{"op": "Add", "path": `phoneNumbers[type eq "mobile"].value`, "value": "+1 555 0100"})
		}, func(a answer) string {
			p, _ := a.body["phoneNumbers"].([]any)
			if len(p) != 1 {
				return fmt.Sprintf("phoneNumbers = %v, want one mobile element", a.body["phoneNumbers"])
			}
			return ""
		}},
		{"PATCH Add enterprise :department path", []int{200}, func(c *client) answer {
			return c.patch(c.userPath(), map[string]any{"op": "Add", "path": urnEnt + ":department", "value": "Marketing"})
		}, expectExt("department", "Marketing")},
		{"PATCH path-less URN-qualified and dotted keys", []int{200}, func(c *client) answer {
			return c.patch(c.userPath(), map[string]any{"op": "replace", "value": map[string]any{urnEnt + ":costCenter": "CC-1", "name.familyName": "Userson"}})
		}, func(a answer) string {
			if m := expectAt("name.familyName", "Userson")(a); m != "" {
				return m
			}
			return expectExt("costCenter", "CC-1")(a)
		}},
		{"POST /Groups with a member (Push Groups)", []int{201}, func(c *client) answer {
			a := c.do(http.MethodPost, "/Groups", map[string]any{"schemas": []string{urnGroup}, "displayName": group,
				"members": []any{map[string]any{"value": c.uid, "display": "Jane"}}}, true)
			c.gid, _ = a.body["id"].(string)
			c.created = append([]string{"/Groups/" + c.gid}, c.created...)
			return a
		}, nil},
		{"POST /Groups same displayName, other case", []int{409}, func(c *client) answer {
			return c.do(http.MethodPost, "/Groups", map[string]any{"schemas": []string{urnGroup}, "displayName": strings.ToUpper(group)}, true)
		}, nil},
		{"filter displayName eq", []int{200}, func(c *client) answer {
			return c.do(http.MethodGet, "/Groups"+q(`displayName eq "`+group+`"`), nil, true)
		}, expectTotal(1)},
		{"GET /Groups/{id}?excludedAttributes=members", []int{200}, func(c *client) answer {
			return c.do(http.MethodGet, c.groupPath()+"?excludedAttributes=members", nil, true)
		}, func(a answer) string {
			if _, ok := a.body["members"]; ok {
				return "members returned"
			}
			return ""
		}},
		{`PATCH remove members[value eq "…"] (Okta)`, []int{200, 204}, func(c *client) answer {
			return c.patch(c.groupPath(), map[string]any{"op": "remove", "path": `members[value eq "` + c.uid + `"]`})
		}, nil},
		{"PATCH add members value array", []int{200, 204}, func(c *client) answer {
			return c.patch(c.groupPath(), map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": c.uid}}})
		}, nil},
		{"PATCH Remove members with value array (Entra)", []int{200, 204}, func(c *client) answer {
			return c.patch(c.groupPath(), map[string]any{"op": "Remove", "path": "members", "value": []any{map[string]any{"value": c.uid}}})
		}, nil},
		{"PATCH path-less replace {id, displayName} (Okta rename)", []int{200, 204}, func(c *client) answer {
			return c.patch(c.groupPath(), map[string]any{"op": "replace", "value": map[string]any{"id": c.gid, "displayName": group + " renamed"}})
		}, nil},
		{"PATCH add an unknown member", []int{400}, func(c *client) answer {
			return c.patch(c.groupPath(), map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": "no-such-user-" + c.sfx}}})
		}, nil},
		{"PUT /Groups/{id}", []int{200}, func(c *client) answer {
			return c.do(http.MethodPut, c.groupPath(), map[string]any{"schemas": []string{urnGroup}, "id": c.gid, "displayName": group,
				"members": []any{map[string]any{"value": c.uid}}}, true)
		}, expectAt("displayName", group)},
		{"DELETE /Users/{id}", []int{204}, func(c *client) answer { return c.do(http.MethodDelete, c.userPath(), nil, true) }, nil},
		{"GET deleted user", []int{404}, func(c *client) answer { return c.do(http.MethodGet, c.userPath(), nil, true) }, nil},
		{"DELETE deleted user again", []int{404}, func(c *client) answer { return c.do(http.MethodDelete, c.userPath(), nil, true) }, nil},
		{"group lost the deleted member", []int{200}, func(c *client) answer { return c.do(http.MethodGet, c.groupPath(), nil, true) },
			func(a answer) string {
				if m, _ := a.body["members"].([]any); len(m) != 0 {
					return fmt.Sprintf("members = %v", m)
				}
				return ""
			}},
		{"DELETE /Groups/{id}", []int{204}, func(c *client) answer { return c.do(http.MethodDelete, c.groupPath(), nil, true) }, nil},
		{"GET /ServiceProviderConfig", []int{200}, func(c *client) answer { return c.do(http.MethodGet, "/ServiceProviderConfig", nil, true) }, nil},
		{"GET /ResourceTypes", []int{200}, func(c *client) answer { return c.do(http.MethodGet, "/ResourceTypes", nil, true) }, nil},
		{"GET /Schemas", []int{200}, func(c *client) answer { return c.do(http.MethodGet, "/Schemas", nil, true) }, nil},
	}
}
