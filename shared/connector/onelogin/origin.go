package onelogin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
)

// OriginKey is the Learner.Fields key under which Get reports the origin
// marker (whatever Config.OriginMarkerField is called in OneLogin). A
// caller may also set it on a learner it writes, instead of WithOrigin.
const OriginKey = "learnerlink:origin"

const originPrefix = "learnerlink:"

type originCtxKey struct{}

type origin struct {
	identityID string
	version    int64
}

// WithOrigin returns a context under which Create and Update stamp their
// writes with "learnerlink:<identityID>:<version>". The worker calls it
// with the identity and the version it is syncing.
func WithOrigin(ctx context.Context, identityID string, version int64) context.Context {
	return context.WithValue(ctx, originCtxKey{}, origin{identityID: identityID, version: version})
}

// FormatOrigin renders the origin marker.
func FormatOrigin(identityID string, version int64) string {
	return originPrefix + identityID + ":" + strconv.FormatInt(version, 10)
}

// ParseOrigin reads an origin marker. ok is false for anything learnerlink
// did not write. A write made without WithOrigin carries an empty identity
// and version 0 ("learnerlink::0"): ours, but of unknown version.
func ParseOrigin(s string) (identityID string, version int64, ok bool) {
	rest, found := strings.CutPrefix(s, originPrefix)
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return "", 0, false
	}
	v, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil || v < 0 || strings.HasPrefix(rest[i+1:], "+") {
		return "", 0, false
	}
	return rest[:i], v, true
}

// OriginOf says which identity version learnerlink last wrote to this
// learner (as read by Get or List). ok is false when the learner carries
// no marker of ours: it was created or last stamped by someone else.
func OriginOf(u connector.Learner) (identityID string, version int64, ok bool) {
	return ParseOrigin(u.Fields[OriginKey])
}

// markerFor is the marker a write of l carries: l's own, else the
// context's, else "learnerlink::0".
func markerFor(ctx context.Context, l connector.Learner) string {
	if m := l.Fields[OriginKey]; m != "" {
		if _, _, ok := ParseOrigin(m); ok {
			return m
		}
	}
	if o, ok := ctx.Value(originCtxKey{}).(origin); ok {
		return FormatOrigin(o.identityID, o.version)
	}
	return FormatOrigin("", 0)
}

// Differences names (never values) what want sets that have does not
// carry: the non-empty core attributes, the active state and every key of
// want.Fields, compared under OneLogin's names (jobTitle is title,
// departmentName is department). The origin marker is ignored, and so is
// supervisorExternalId, which have (read from OneLogin) only knows as
// manager_user_id. An inbound path uses it to recognise a OneLogin user
// that already carries the desired state.
func Differences(want, have connector.Learner) []string {
	var out []string
	for _, f := range []struct{ name, want, have string }{
		{"externalId", want.ExternalID, have.ExternalID},
		{"userName", want.UserName, have.UserName},
		{"email", want.Email, have.Email},
		{"firstName", want.FirstName, have.FirstName},
		{"lastName", want.LastName, have.LastName},
	} {
		if f.want != "" && f.want != f.have {
			out = append(out, f.name)
		}
	}
	if want.Active != have.Active {
		out = append(out, "active")
	}
	for _, k := range slices.Sorted(maps.Keys(want.Fields)) {
		if k == OriginKey || k == "supervisorExternalId" {
			continue
		}
		hk := k
		if a, ok := aliases()[k]; ok {
			hk = a
		}
		got, ok := have.Fields[hk]
		if !ok {
			got = have.Fields[k]
		}
		if want.Fields[k] != got {
			out = append(out, k)
		}
	}
	return out
}

// Same reports that have carries everything want sets (see Differences).
func Same(want, have connector.Learner) bool { return len(Differences(want, have)) == 0 }

// Event is one OneLogin event (GET /api/1/events, or an event webhook
// batch). UserName is personal data: never log it.
type Event struct {
	ID          int64
	EventTypeID int
	CreatedAt   time.Time
	AccountID   int64
	UserID      int64
	UserName    string
	ActorUserID int64
	ActorSystem string
	// ClientID is the API client whose token made the call that caused
	// the event; empty for changes made in the admin portal [D].
	ClientID string
	RoleID   int64
	RoleName string
}

// UnmarshalJSON reads an event leniently: ids may come as numbers or
// strings, and the time as created_at (API, ISO 8601) or event_timestamp
// (webhooks, "2017-12-05 19:13:06 UTC").
func (e *Event) UnmarshalJSON(b []byte) error {
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("onelogin: event: %w", err)
	}
	num := func(k string) int64 {
		n, _ := strconv.ParseInt(text(raw[k]), 10, 64)
		return n
	}
	*e = Event{
		ID:          num("id"),
		EventTypeID: int(num("event_type_id")),
		AccountID:   num("account_id"),
		UserID:      num("user_id"),
		UserName:    text(raw["user_name"]),
		ActorUserID: num("actor_user_id"),
		ActorSystem: text(raw["actor_system"]),
		ClientID:    text(raw["client_id"]),
		RoleID:      num("role_id"),
		RoleName:    text(raw["role_name"]),
	}
	ts := text(raw["created_at"])
	if ts == "" {
		ts = text(raw["event_timestamp"])
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05 MST", "2006-01-02 15:04:05.000Z"} {
		if t, err := time.Parse(layout, ts); err == nil {
			e.CreatedAt = t.UTC()
			break
		}
	}
	return nil
}

// IsEcho reports whether ev was caused by an API call made with
// ourClientID, i.e. by learnerlink itself: an inbound path drops it.
func IsEcho(ev Event, ourClientID string) bool {
	return ourClientID != "" && strings.TrimSpace(ev.ClientID) == ourClientID
}

// Events reads one page of events created at or after since, oldest
// first; cursor "" starts and the returned cursor "" ends (OneLogin pages
// by 50 [D]). A poller keeps since at its last event's time and drops
// what IsEcho recognises.
func (c *Connector) Events(ctx context.Context, since time.Time, cursor string) ([]Event, string, error) {
	const op = "onelogin.events"
	q := url.Values{"sort": {"+id"}}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339))
	}
	if cursor != "" {
		q.Set("after_cursor", cursor)
	}
	var page struct {
		Data       []Event `json:"data"`
		Pagination struct {
			AfterCursor any `json:"after_cursor"`
		} `json:"pagination"`
	}
	if _, err := c.do(ctx, call{Op: op, Method: http.MethodGet, Path: "/api/1/events", Query: q}, &page); err != nil {
		return nil, "", err
	}
	next := text(page.Pagination.AfterCursor)
	if len(page.Data) == 0 || next == cursor {
		next = ""
	}
	return page.Data, next, nil
}
