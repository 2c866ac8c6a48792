package hooks

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
)

// seedBodies are the sample deliveries plus edge cases.
func seedBodies(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "events", "hooks", "*.json"))
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var ev struct{ Body string }
		if json.Unmarshal(raw, &ev) == nil && ev.Body != "" {
			f.Add([]byte(ev.Body))
		}
	}
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"data":{"events":[]}}`, `{"data":{"events":null}}`,
		`{"data":{"events":[{"uuid":"u","eventType":"user.account.privilege.grant","target":[{"id":"00u1","type":"User"},{"id":"r","type":"ROLE","displayName":"Super Administrator"}]}]}}`,
		`{"data":{"events":[{"uuid":"u","eventType":"user.account.privilege.grant","target":[{"id":"00u1","type":"User"}],"debugContext":{"debugData":{"privilegeGranted":"A, B,,"}}}]}}`,
		`{"data":{"events":[{"uuid":"u","eventType":"group.user_membership.add","target":[{"id":"00u1","type":"User","alternateId":"x@y"},{"id":"g","type":"UserGroup","alternateId":"unknown"}]}]}}`,
		`{"data":{"events":[{"uuid":"u","eventType":"user.lifecycle.create","outcome":{"result":"FAILURE"},"target":[{"id":"00u1","type":"User"}]}]}}`,
		`{"data":{"events":[{"uuid":"u","eventType":"x"}]}}{}`,
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseDelivery: the parser never panics, accepts only JSON, and
// everything it accepts satisfies the checks the rest relies on.
func FuzzParseDelivery(f *testing.F) {
	seedBodies(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := parseDelivery(body)
		if err != nil {
			if evs != nil {
				t.Fatal("events returned with an error")
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
		for _, ev := range evs {
			if !token(ev.UUID, maxUUIDBytes) || !token(ev.EventType, maxNameBytes) {
				t.Fatalf("accepted event %+v", ev)
			}
			for _, r := range ev.roles() {
				if strings.TrimSpace(r) == "" || !utf8.ValidString(r) || len(r) > maxNameBytes {
					t.Fatalf("role %q", r)
				}
			}
			if tg, ok := ev.targetOf("User"); ok && (tg.ID == "" || len(tg.ID) > maxIDBytes) {
				t.Fatalf("target %+v", tg)
			}
			_ = ev.succeeded()
		}
	})
}

type nopQueue struct{}

func (nopQueue) Enqueue(context.Context, ...queue.Intent) error { return nil }

// echoDir knows every user: its profile is derived from the id.
type echoDir struct{}

func (echoDir) GetUser(_ context.Context, id string) (*okta.User, error) {
	if strings.HasPrefix(id, "gone") {
		return nil, okta.ErrNotFound
	}
	return &okta.User{ID: id, Status: "ACTIVE", Profile: okta.Profile{Login: id + "@fuzz.example", Email: id + "@fuzz.example", FirstName: id, Title: id}}, nil
}

// FuzzHandler drives whole deliveries into one real (bolt) store: any
// body is answered 200 or 400, never 500 or a panic.
func FuzzHandler(f *testing.F) {
	seedBodies(f)
	st, err := bolt.Open(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	h, err := NewHandler(st, nopQueue{}, echoDir{}, Config{Secret: "s", AppID: "0oa1lrnlnk2ABCDEFgh3"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(string(body)))
		req.Header.Set("Authorization", "s")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}

func TestRoles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ev   event
		want []string
	}{
		{"ROLE targets", event{Target: []target{{ID: "u", Type: "User"}, {ID: "ra1", Type: "ROLE", DisplayName: "Super Administrator"}, {ID: "ra2", Type: "role", AlternateID: "Help Desk Administrator"}}}, []string{"Super Administrator", "Help Desk Administrator"}},
		{"debugData list", event{DebugContext: &struct {
			DebugData map[string]any `json:"debugData"`
		}{map[string]any{"privilegeGranted": "Read-only Administrator, Report Administrator,"}}}, []string{"Read-only Administrator", "Report Administrator"}},
		{"not a string", event{DebugContext: &struct {
			DebugData map[string]any `json:"debugData"`
		}{map[string]any{"privilegeGranted": 7.0}}}, nil},
		{"nothing", event{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.ev.roles()
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("roles = %q, want %q", got, tt.want)
			}
		})
	}
}
