package hooks

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// delivery is one Okta Event Hook POST body
// (https://developer.okta.com/docs/concepts/event-hooks/#sample-event-delivery-payload).
// Only what learnerlink reads is declared; everything else is ignored.
type delivery struct {
	EventType string `json:"eventType"` // com.okta.event_hook
	EventID   string `json:"eventId"`
	Data      *struct {
		Events *[]event `json:"events"`
	} `json:"data"`
}

// event is one System Log event in a delivery.
type event struct {
	UUID      string `json:"uuid"`
	Published string `json:"published"`
	EventType string `json:"eventType"`
	Outcome   *struct {
		Result string `json:"result"`
	} `json:"outcome"`
	Target       []target `json:"target"`
	DebugContext *struct {
		DebugData map[string]any `json:"debugData"`
	} `json:"debugContext"`
}

// target is an entity an event acted on: User, UserGroup, AppInstance,
// AppUser, ROLE...
type target struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AlternateID string `json:"alternateId"`
	DisplayName string `json:"displayName"`
}

// Bounds on what a delivery may carry. The uuid becomes part of a store
// key; an id or name that long is not Okta's.
const (
	maxUUIDBytes = 128
	maxIDBytes   = 256
	maxNameBytes = 512
	maxEvents    = 1000
)

// errShape marks a body that is JSON but not an Event Hook delivery.
var errShape = errors.New("not an Okta event hook delivery")

// parseDelivery decodes and checks a whole delivery before anything is
// applied, so a bad body writes nothing.
func parseDelivery(body []byte) ([]event, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var d delivery
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("malformed JSON: data after the delivery object")
	}
	if d.Data == nil || d.Data.Events == nil {
		return nil, fmt.Errorf("%w: data.events is missing", errShape)
	}
	evs := *d.Data.Events
	if len(evs) > maxEvents {
		return nil, fmt.Errorf("%w: more than %d events", errShape, maxEvents)
	}
	for i, ev := range evs {
		if err := ev.check(); err != nil {
			return nil, fmt.Errorf("%w: data.events[%d]: %w", errShape, i, err)
		}
	}
	return evs, nil
}

func (ev *event) check() error {
	if !token(ev.UUID, maxUUIDBytes) {
		return errors.New("uuid is missing or not a short printable string")
	}
	if !token(ev.EventType, maxNameBytes) {
		return errors.New("eventType is missing or not a short printable string")
	}
	for i, t := range ev.Target {
		if len(t.ID) > maxIDBytes || !utf8.ValidString(t.ID) || len(t.Type) > maxNameBytes ||
			len(t.AlternateID) > maxNameBytes || len(t.DisplayName) > maxNameBytes ||
			!utf8.ValidString(t.AlternateID) || !utf8.ValidString(t.DisplayName) {
			return fmt.Errorf("target[%d] has an overlong or invalid value", i)
		}
	}
	return nil
}

// token: non-empty printable ASCII without spaces, at most n bytes.
func token(s string, n int) bool {
	if s == "" || len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// succeeded: events without an outcome are taken as done; a FAILURE (a
// denied or failed change) changed nothing in Okta.
func (ev *event) succeeded() bool {
	return ev.Outcome == nil || ev.Outcome.Result == "" || strings.EqualFold(ev.Outcome.Result, "SUCCESS")
}

// targetOf returns the first target of that type (case-insensitive) with
// an id.
func (ev *event) targetOf(typ string) (target, bool) {
	for _, t := range ev.Target {
		if strings.EqualFold(t.Type, typ) && t.ID != "" {
			return t, true
		}
	}
	return target{}, false
}

// roles names the admin roles a privilege event grants or revokes: the
// ROLE targets' names, else debugData.privilegeGranted/privilegeRevoked
// (a comma-separated list).
func (ev *event) roles() []string {
	var out []string
	for _, t := range ev.Target {
		if strings.EqualFold(t.Type, "ROLE") {
			if n := strings.TrimSpace(firstNonEmpty(t.DisplayName, t.AlternateID)); n != "" {
				out = append(out, n)
			}
		}
	}
	if len(out) > 0 || ev.DebugContext == nil {
		return out
	}
	for _, key := range []string{"privilegeGranted", "privilegeRevoked"} {
		s, _ := ev.DebugContext.DebugData[key].(string)
		for _, r := range strings.Split(s, ",") {
			if r = strings.TrimSpace(r); r != "" && len(r) <= maxNameBytes && utf8.ValidString(r) {
				out = append(out, r)
			}
		}
	}
	return out
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
