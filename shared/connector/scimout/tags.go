package scimout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/learnerlink/learnerlink/shared/connector"
)

// enroll adds e.ID to the learner's training tags (Profile.TagsAttribute),
// which EasyLlama turns into course assignments. e.Kind is not sent: the
// tag names what to assign. Enrolling twice is a no-op: the tag is only
// written when missing (compared case-insensitively). The list is
// comma-separated without spaces, as EasyLlama documents it; a server
// that keeps it as a JSON array gets an array back.
func (c *Connector) enroll(ctx context.Context, learnerID string, e connector.Enrollment) error {
	const op = "scimout.enroll"
	if c.tags == nil {
		return &connector.Error{Op: op, Err: fmt.Errorf("profile %s has no TagsAttribute", c.cfg.Profile.Name)}
	}
	tag := strings.TrimSpace(e.ID)
	if tag == "" || strings.Contains(tag, ",") {
		return &connector.Error{Op: op, Err: errors.New("a training tag must be non-empty and contain no comma")}
	}
	caps, err := c.capabilities(ctx)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		res, err := c.getUser(ctx, op, learnerID)
		if err != nil {
			return err
		}
		version := versionOf(res, nil)
		raw, _ := c.tags.getRaw(res)
		tags, asArray := parseTags(raw)
		if slices.ContainsFunc(tags, func(t string) bool { return strings.EqualFold(t, tag) }) {
			return nil
		}
		tags = append(tags, tag)
		var value any = strings.Join(tags, ",")
		if asArray {
			arr := make([]any, len(tags))
			for i, t := range tags {
				arr[i] = t
			}
			value = arr
		}
		cl := call{op: op, path: userPath(learnerID), secrets: []string{tag}}
		if caps.patch {
			cl.method = http.MethodPatch
			cl.body = newPatch([]patchOp{{Op: "replace", Path: c.tags.raw, Value: value}})
		} else {
			for _, k := range []string{"meta", "groups", "password"} {
				if rk, ok := keyFold(res, k); ok {
					delete(res, rk)
				}
			}
			c.tags.set(res, value)
			addSchema(res, c.tags.urn)
			cl.method, cl.body = http.MethodPut, res
		}
		if caps.etag {
			cl.ifMatch = version
		}
		var out map[string]any
		resp, err := c.do(ctx, cl, &out)
		if err == nil {
			c.rememberVersion(learnerID, versionOf(out, resp.header))
			return nil
		}
		if resp == nil || resp.status != http.StatusPreconditionFailed || attempt > 0 {
			return err
		}
	}
}

// parseTags reads a comma-separated string or an array of strings.
func parseTags(raw any) (tags []string, asArray bool) {
	switch v := raw.(type) {
	case string:
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	case []any:
		asArray = true
		for _, e := range v {
			if s, ok := e.(string); ok && strings.TrimSpace(s) != "" {
				tags = append(tags, strings.TrimSpace(s))
			}
		}
	}
	return tags, asArray
}
