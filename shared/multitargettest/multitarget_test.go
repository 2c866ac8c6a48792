package multitargettest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector/onelogin"
	"github.com/learnerlink/learnerlink/shared/connector/onelogin/oneloginsim"
	"github.com/learnerlink/learnerlink/shared/throttle"
)

// One Okta change (create, update, deactivate) reaches Absorb, the SCIM
// target and OneLogin with the right fields while a fourth target is down
// for the whole test: the others converge while it keeps failing, and
// nothing is duplicated anywhere.
func TestOneChangeReachesEveryTargetDespiteOneDown(t *testing.T) {
	e := start(t, true)
	p := person{oktaID: "00u1mt0ada", login: "ada.lovelace@example.com", first: "Ada", last: "Lovelace", dept: "Engineering", title: "Engineer"}
	id := e.create(p)

	steps := []struct {
		name   string
		change func()
		// expected values: title, and whether active
		title  string
		active bool
	}{
		{"create", func() {}, "Engineer", true},
		{"update", func() { e.patch(id, map[string]any{"title": "Staff Engineer"}) }, "Staff Engineer", true},
		{"deactivate", func() { e.patch(id, map[string]any{"active": false}) }, "Staff Engineer", false},
	}
	for _, st := range steps {
		st.change()
		before := e.downRequests()
		e.eventually(st.name+" reaches absorb, lessonly and onelogin", func() error {
			a, err := e.absorbUser(p.oktaID)
			if err != nil {
				return err
			}
			s, err := e.scimUser(p.oktaID)
			if err != nil {
				return err
			}
			o, err := e.oneloginUser(p.oktaID)
			if err != nil {
				return err
			}
			activeStatus := 1
			if st.active {
				activeStatus = 0
			}
			// OneLogin: 2 is suspended, 0 unactivated; anything else is
			// active (a new user is 7, password pending).
			oActive := o.Status != 2 && o.Status != 0
			return check(
				want("absorb username", a.Username, p.login), want("absorb first name", a.FirstName, p.first),
				want("absorb last name", a.LastName, p.last), want("absorb job title", a.JobTitle, st.title),
				want("absorb active status", fmt.Sprint(a.ActiveStatus), fmt.Sprint(activeStatus)),
				want("scim userName", str(s, "userName"), p.login), want("scim givenName", str(s, "name", "givenName"), p.first),
				want("scim title", str(s, "title"), st.title), want("scim active", str(s, "active"), fmt.Sprint(st.active)),
				want("scim department", str(s, urnEnterprise, "department"), p.dept),
				want("onelogin username", o.Username, p.login), want("onelogin lastname", o.Lastname, p.last),
				want("onelogin title", o.Title, st.title), want("onelogin department", o.Department, p.dept),
				want("onelogin active", fmt.Sprint(oActive), fmt.Sprint(st.active)),
				e.synced(id, "absorb"), e.synced(id, "lessonly"), e.synced(id, "onelogin"),
			)
		})
		// The others converged while the down target kept refusing: it
		// has been tried (and is being retried), never synced, and the
		// identity stays pending until it is.
		e.eventually(st.name+": the down target is retried", func() error {
			if n := e.downRequests(); n <= before {
				return fmt.Errorf("the down target saw %d requests, %d before this step", n, before)
			}
			return nil
		})
		if err := e.synced(id, "down"); err == nil {
			t.Fatalf("%s: the down target's link is synced", st.name)
		}
		if !e.pending(id) {
			t.Fatalf("%s: the identity is not pending although the down target is behind", st.name)
		}
	}

	// Nothing duplicated anywhere.
	if n := len(e.absorb.Users()); n != 1 {
		t.Errorf("absorb holds %d users, want 1", n)
	}
	if n := len(e.ol.Users()); n != 1 {
		t.Errorf("onelogin holds %d users, want 1", n)
	}
	all := e.do("GET", e.lms.URL+"/Users", e.lms.Token, nil, http.StatusOK)
	if n := str(map[string]any{"n": fmt.Sprint(all["totalResults"])}, "n"); n != "1" {
		t.Errorf("the SCIM target holds %s users, want 1", n)
	}
	creates := 0
	for _, r := range e.ol.Requests() {
		if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/users") {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("onelogin saw %d user creates, want 1", creates)
	}
}

// A change made in OneLogin by another client, pushed back by Okta
// (import, then push) to learnerlink, settles after one round: learnerlink
// finds OneLogin already right and writes nothing to it, and the events its
// own writes caused are recognised as echoes.
func TestOneLoginChangeRoundTripSettles(t *testing.T) {
	e := start(t, false)
	p := person{oktaID: "00u1mt0bob", login: "bob.smith@example.com", first: "Bob", last: "Smith", dept: "Sales", title: "Account Executive"}
	id := e.create(p)
	var olID int
	e.eventually("the create reaches onelogin and absorb", func() error {
		o, err := e.oneloginUser(p.oktaID)
		if err != nil {
			return err
		}
		olID = o.ID
		return check(e.synced(id, "onelogin"), e.synced(id, "absorb"), e.synced(id, "lessonly"))
	})
	created, _ := e.ol.User(olID)
	if _, v, ok := onelogin.ParseOrigin(created.CustomAttributes[onelogin.DefaultOriginMarkerField]); !ok || v != 1 {
		t.Fatalf("onelogin user carries origin %q, want learnerlink's marker for v1", created.CustomAttributes[onelogin.DefaultOriginMarkerField])
	}
	e.ol.ResetRequests()

	// Another client changes the title in OneLogin ...
	if err := e.ol.EditUser(otherClient, olID, func(u *oneloginsim.User) { u.Title = "Senior Account Executive" }); err != nil {
		t.Fatal(err)
	}
	// ... Okta imports it and pushes it to learnerlink.
	e.patch(id, map[string]any{"title": "Senior Account Executive"})

	e.eventually("the change settles in every target", func() error {
		a, err := e.absorbUser(p.oktaID)
		if err != nil {
			return err
		}
		s, err := e.scimUser(p.oktaID)
		if err != nil {
			return err
		}
		return check(want("absorb job title", a.JobTitle, "Senior Account Executive"),
			want("scim title", str(s, "title"), "Senior Account Executive"),
			e.synced(id, "onelogin"), e.synced(id, "absorb"), e.synced(id, "lessonly"))
	})
	// The last target to finish clears the mark, just after its link.
	e.eventually("the pending mark clears", func() error {
		if e.pending(id) {
			return fmt.Errorf("the identity is still pending")
		}
		return nil
	})
	for _, r := range e.ol.Requests() {
		if r.Method == http.MethodPut || r.Method == http.MethodPost && strings.Contains(r.Path, "/users") {
			t.Errorf("echo write to onelogin: %s %s", r.Method, r.Path)
		}
	}
	if u, _ := e.ol.User(olID); u.Title != "Senior Account Executive" {
		t.Errorf("onelogin title %q", u.Title)
	}

	// Events: ours are echoes, the other client's is not.
	c, err := onelogin.New(onelogin.Config{BaseURL: e.ol.URL(), ClientID: oneloginClient, ClientSecret: oneloginSecret,
		Limiter: throttle.NewLocal(0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	evs, _, err := c.Events(t.Context(), time.Time{}, "")
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := 0, 0
	for _, ev := range evs {
		if ev.UserID != int64(olID) {
			continue
		}
		switch ev.ClientID {
		case oneloginClient:
			ours++
			if !onelogin.IsEcho(ev, oneloginClient) || !c.IsEcho(ev) {
				t.Errorf("event %d from our client id is not recognised as an echo", ev.ID)
			}
		case otherClient:
			theirs++
			if c.IsEcho(ev) {
				t.Errorf("event %d from another client is taken for an echo", ev.ID)
			}
		}
	}
	if ours == 0 || theirs != 1 {
		t.Errorf("events for the user: %d ours, %d the other client's; want some and 1", ours, theirs)
	}
}
