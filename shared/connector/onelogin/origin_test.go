package onelogin_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/onelogin"
)

func TestParseOrigin(t *testing.T) {
	tests := []struct {
		in      string
		ident   string
		version int64
		ok      bool
	}{
		{"learnerlink:ident-1:3", "ident-1", 3, true},
		{"learnerlink:a:b:c:12", "a:b:c", 12, true}, // ids may hold colons: the version is last
		{"learnerlink::0", "", 0, true},             // ours, version unknown
		{"learnerlink:ident-1:", "", 0, false},
		{"learnerlink:ident-1:-1", "", 0, false},
		{"learnerlink:ident-1:+1", "", 0, false},
		{"learnerlink:ident-1", "", 0, false},
		{"okta:ident-1:3", "", 0, false},
		{"", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			ident, v, ok := onelogin.ParseOrigin(tc.in)
			if ident != tc.ident || v != tc.version || ok != tc.ok {
				t.Errorf("ParseOrigin(%q) = %q, %d, %v; want %q, %d, %v", tc.in, ident, v, ok, tc.ident, tc.version, tc.ok)
			}
			if tc.ok && onelogin.FormatOrigin(ident, v) != tc.in {
				t.Errorf("FormatOrigin round trip = %q", onelogin.FormatOrigin(ident, v))
			}
		})
	}
}

func TestOriginOf(t *testing.T) {
	tests := []struct {
		name   string
		fields map[string]string
		ok     bool
	}{
		{"marked", map[string]string{onelogin.OriginKey: "learnerlink:x:9"}, true},
		{"someone else's value", map[string]string{onelogin.OriginKey: "hr-import"}, false},
		{"no marker", map[string]string{"title": "x"}, false},
		{"no fields", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, ok := onelogin.OriginOf(connector.Learner{Fields: tc.fields}); ok != tc.ok {
				t.Errorf("ok = %v, want %v", ok, tc.ok)
			}
		})
	}
}

func TestIsEcho(t *testing.T) {
	tests := []struct {
		name string
		ev   string
		ours string
		want bool
	}{
		{"our client", `{"id":1,"event_type_id":13,"client_id":"abc123"}`, "abc123", true},
		{"another client", `{"id":2,"client_id":"other"}`, "abc123", false},
		{"admin portal (no client)", `{"id":3,"client_id":null,"actor_user_id":42}`, "abc123", false},
		{"we have no client id", `{"id":4,"client_id":""}`, "", false},
		{"webhook shape", `{"uuid":"u-1","event_timestamp":"2017-12-05 19:13:06 UTC","client_id":"abc123"}`, "abc123", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ev onelogin.Event
			if err := json.Unmarshal([]byte(tc.ev), &ev); err != nil {
				t.Fatal(err)
			}
			if got := onelogin.IsEcho(ev, tc.ours); got != tc.want {
				t.Errorf("IsEcho = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestEventDecoding(t *testing.T) {
	var ev onelogin.Event
	raw := `{"id":"77","event_type_id":4,"created_at":"2026-11-23T09:00:00.123Z","account_id":5,"user_id":1001,
		"user_name":"Ada Lovelace","role_id":"501","role_name":"LMS Sales","client_id":"c1","actor_system":"API"}`
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		t.Fatal(err)
	}
	want := onelogin.Event{ID: 77, EventTypeID: 4, CreatedAt: time.Date(2026, 11, 23, 9, 0, 0, 123e6, time.UTC), AccountID: 5,
		UserID: 1001, UserName: "Ada Lovelace", RoleID: 501, RoleName: "LMS Sales", ClientID: "c1", ActorSystem: "API"}
	if fmt.Sprintf("%+v", ev) != fmt.Sprintf("%+v", want) {
		t.Errorf("decoded %+v\nwant    %+v", ev, want)
	}
}

func TestDifferences(t *testing.T) {
	base := func() connector.Learner {
		return connector.Learner{ID: "1", ExternalID: "00u1", UserName: "a@x.io", Email: "a@x.io", FirstName: "A", LastName: "B", Active: true,
			Fields: map[string]string{"title": "Eng", "department": "R&D", onelogin.OriginKey: "learnerlink:i:1", "manager_user_id": "9"}}
	}
	tests := []struct {
		name string
		want func(l *connector.Learner)
		diff string
	}{
		{"identical", func(*connector.Learner) {}, "[]"},
		{"marker ignored", func(l *connector.Learner) { l.Fields[onelogin.OriginKey] = "learnerlink:i:2" }, "[]"},
		{"target id ignored", func(l *connector.Learner) { l.ID = "" }, "[]"},
		{"aliases", func(l *connector.Learner) {
			l.Fields = map[string]string{"jobTitle": "Eng", "departmentName": "R&D"}
		}, "[]"},
		{"alias differs", func(l *connector.Learner) { l.Fields = map[string]string{"jobTitle": "Boss"} }, "[jobTitle]"},
		{"empty core values are not compared", func(l *connector.Learner) { l.Email = "" }, "[]"},
		{"supervisor cannot be compared", func(l *connector.Learner) { l.Fields["supervisorExternalId"] = "00u9" }, "[]"},
		{"core and active", func(l *connector.Learner) { l.LastName, l.Active = "C", false }, "[lastName active]"},
		{"missing field", func(l *connector.Learner) { l.Fields["custom_attributes.cc"] = "1" }, "[custom_attributes.cc]"},
		{"field cleared", func(l *connector.Learner) { l.Fields["title"] = "" }, "[title]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := base()
			tc.want(&want)
			if got := fmt.Sprint(onelogin.Differences(want, base())); got != tc.diff {
				t.Errorf("Differences = %s, want %s", got, tc.diff)
			}
		})
	}
}
