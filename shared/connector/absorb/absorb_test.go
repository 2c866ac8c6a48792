package absorb_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/connector/vendorhttp"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

const (
	admin = "api-admin"
	pass  = "S3cret!pass"
	key   = "0d3c6d5e-8f6b-4b8a-9a57-2a1f0e3c4b5d"
)

// limiter admits everything and records pauses.
type limiter struct {
	mu     sync.Mutex
	waits  int
	pauses []time.Duration
}

func (l *limiter) Wait(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waits++
	return ctx.Err()
}

func (l *limiter) Pause(_ context.Context, d time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pauses = append(l.pauses, d)
	return nil
}

func (l *limiter) Pauses() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.pauses...)
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	sim    *absorbsim.Sim
	clock  *fakeClock
	lim    *limiter
	cache  *tokencache.Local
	conn   *absorb.Connector
	seeded string // a test's learner id
}

// setup starts a sim and a connector on a shared fake clock.
func setup(t *testing.T, opts absorbsim.Options, mod func(*absorb.Config)) *env {
	t.Helper()
	e := &env{clock: &fakeClock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}, lim: &limiter{}, cache: tokencache.NewLocal()}
	opts.Username, opts.Password, opts.PrivateKey = admin, pass, key
	opts.Now = e.clock.Now
	e.sim = absorbsim.New(opts)
	t.Cleanup(e.sim.Close)
	e.conn = e.connector(t, e.cache, mod)
	return e
}

func (e *env) connector(t *testing.T, cache absorb.TokenCache, mod func(*absorb.Config)) *absorb.Connector {
	t.Helper()
	cfg := absorb.Config{
		BaseURL: e.sim.URL(), Username: admin, Password: pass, PrivateKey: key,
		Limiter: e.lim, Tokens: cache, DefaultDepartmentID: e.sim.DefaultDepartmentID(),
		GroupsField: "customFields.string30", Now: e.clock.Now,
		// In-request retries on (the default policy) without real waits.
		Retry: vendorhttp.Retry{Sleep: instant},
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := absorb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// count counts recorded requests with that method and path prefix.
func (e *env) count(method, prefix string) int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Method == method && strings.HasPrefix(r.Path, prefix) {
			n++
		}
	}
	return n
}

func (e *env) statuses(status int) int {
	n := 0
	for _, r := range e.sim.Requests() {
		if r.Status == status {
			n++
		}
	}
	return n
}

func asError(t *testing.T, err error) *connector.Error {
	t.Helper()
	var ce *connector.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *connector.Error", err, err)
	}
	return ce
}

func learner(n string) connector.Learner {
	return connector.Learner{
		ExternalID: "00u" + n, UserName: n + "@example.com", Email: n + "@example.com",
		FirstName: "First" + n, LastName: "Last" + n, Active: true, Fields: map[string]string{},
	}
}

func TestNewValidates(t *testing.T) {
	ok := absorb.Config{BaseURL: "https://rest.myabsorb.com", Username: "u", Password: "p", PrivateKey: "k", Limiter: &limiter{}, Tokens: tokencache.NewLocal()}
	tests := []struct {
		name string
		mod  func(*absorb.Config)
		ok   bool
	}{
		{"https", func(*absorb.Config) {}, true},
		{"http loopback", func(c *absorb.Config) { c.BaseURL = "http://127.0.0.1:8080" }, true},
		{"http localhost", func(c *absorb.Config) { c.BaseURL = "http://localhost:1/" }, true},
		{"http remote", func(c *absorb.Config) { c.BaseURL = "http://rest.myabsorb.com" }, false},
		{"ftp", func(c *absorb.Config) { c.BaseURL = "ftp://rest.myabsorb.com" }, false},
		{"relative", func(c *absorb.Config) { c.BaseURL = "rest.myabsorb.com" }, false},
		{"userinfo", func(c *absorb.Config) { c.BaseURL = "https://a:b@rest.myabsorb.com" }, false},
		{"no password", func(c *absorb.Config) { c.Password = "" }, false},
		{"no limiter", func(c *absorb.Config) { c.Limiter = nil }, false},
		{"no tokens", func(c *absorb.Config) { c.Tokens = nil }, false},
		{"groups field", func(c *absorb.Config) { c.GroupsField = "customFields.string30" }, true},
		{"groups field decimal", func(c *absorb.Config) { c.GroupsField = "customFields.decimal1" }, false},
		{"groups field unknown", func(c *absorb.Config) { c.GroupsField = "groups" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			_, err := absorb.New(cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestCreateFindUpdate(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	sales := e.sim.SeedDepartment(absorbsim.Department{Name: "Sales"})
	boss := e.sim.SeedUser(absorbsim.User{Username: "boss", FirstName: "B", LastName: "B", ExternalID: "00uBOSS"})

	l := learner("1")
	l.Fields = map[string]string{
		"departmentName": "sales", "jobTitle": "Engineer", "employeeNumber": "E1",
		"supervisorExternalId": "00uBOSS", "customFields.string1": "CC-1", "customFields.decimal1": "4.5",
		"customFields.bool1": "true", "notAnAbsorbField": "x",
	}
	id, err := e.conn.Create(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := e.sim.User(id)
	if !ok {
		t.Fatalf("no user %s", id)
	}
	if u.DepartmentID != sales || u.JobTitle != "Engineer" || u.SupervisorID != boss || u.ExternalID != "00u1" ||
		u.ActiveStatus != 0 || u.CustomFields["string1"] != "CC-1" || fmt.Sprint(u.CustomFields["decimal1"]) != "4.5" ||
		u.CustomFields["bool1"] != true {
		t.Fatalf("created %+v", u)
	}
	if len(u.Password) < 16 {
		t.Fatalf("no strong generated password (len %d)", len(u.Password))
	}

	for _, k := range []connector.Key{
		{Kind: connector.KeyExternalID, Value: "00u1"},
		{Kind: connector.KeyUserName, Value: "1@example.com"},
		{Kind: connector.KeyEmail, Value: "1@EXAMPLE.com"},
		{Kind: connector.KeyEmployeeNumber, Value: "E1"},
	} {
		found, err := e.conn.Find(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || found[0].ID != id || found[0].ExternalID != "00u1" || !found[0].Active || found[0].Fields["jobTitle"] != "Engineer" {
			t.Fatalf("Find %v: %+v", k, found)
		}
	}
	if found, err := e.conn.Find(ctx, connector.Key{Kind: connector.KeyExternalID, Value: "nobody"}); err != nil || len(found) != 0 {
		t.Fatalf("Find nobody: %v %v", found, err)
	}

	// Fields not mapped (or absent from l.Fields) survive the PUT.
	e.sim.ResetCounters()
	upd := learner("1")
	upd.ID = id
	upd.FirstName = "Renamed"
	upd.Fields = map[string]string{"jobTitle": "Manager", "customFields.string1": ""}
	if err := e.conn.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	u2, _ := e.sim.User(id)
	if u2.FirstName != "Renamed" || u2.JobTitle != "Manager" || u2.CustomFields["string1"] != nil {
		t.Fatalf("update not applied: %+v", u2)
	}
	if u2.DepartmentID != sales || u2.SupervisorID != boss || u2.EmployeeNumber != "E1" ||
		fmt.Sprint(u2.CustomFields["decimal1"]) != "4.5" || u2.Password != u.Password {
		t.Fatalf("unmapped fields lost: %+v", u2)
	}
	if e.count("GET", "/users/") != 1 || e.count("PUT", "/users/") != 1 {
		t.Fatalf("requests %+v", e.sim.Requests())
	}

	// Nothing to change: no PUT.
	e.sim.ResetCounters()
	if err := e.conn.Update(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if e.count("PUT", "/users/") != 0 {
		t.Fatal("an unchanged learner was written")
	}

	got, err := e.conn.Get(ctx, id)
	if err != nil || got.FirstName != "Renamed" || got.Fields["departmentId"] != sales || got.Fields["supervisorId"] != boss {
		t.Fatalf("Get: %+v %v", got, err)
	}
	_, err = e.conn.Get(ctx, "00000000-0000-4000-8000-00000000ffff")
	if !connector.IsNotFound(err) {
		t.Fatalf("Get unknown: %v", err)
	}
	upd.ID = "00000000-0000-4000-8000-00000000ffff"
	if err := e.conn.Update(ctx, upd); !connector.IsNotFound(err) {
		t.Fatalf("Update unknown: %v", err)
	}
}

func TestAdoptedLearnerKeepsUnmanagedFields(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	lang := 3
	id := e.sim.SeedUser(absorbsim.User{
		Username: "pre@example.com", FirstName: "Pre", LastName: "Existing", MiddleName: "Q",
		LanguageID: &lang, RoleIDs: []string{"role-1"}, IsAdmin: true, IsLearner: true, Gender: 2,
		CCEmailAddresses: []string{"cc@example.com"}, CustomFields: map[string]any{"string5": "portal data"},
	})
	l := learner("pre")
	l.ID = id
	l.UserName = "pre@example.com"
	l.Fields = map[string]string{"jobTitle": "Analyst"}
	if err := e.conn.Update(ctx, l); err != nil {
		t.Fatal(err)
	}
	u, _ := e.sim.User(id)
	if u.ExternalID != "00upre" || u.JobTitle != "Analyst" {
		t.Fatalf("not updated: %+v", u)
	}
	if u.MiddleName != "Q" || u.LanguageID == nil || *u.LanguageID != 3 || len(u.RoleIDs) != 1 || !u.IsAdmin || !u.IsLearner ||
		u.Gender != 2 || len(u.CCEmailAddresses) != 1 || u.CustomFields["string5"] != "portal data" {
		t.Fatalf("unmanaged fields lost: %+v", u)
	}
}

func TestDeactivateReactivate(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	l := learner("2")
	id, err := e.conn.Create(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	l.ID = id
	for _, active := range []bool{false, true, false} {
		l.Active = active
		if err := e.conn.Update(ctx, l); err != nil {
			t.Fatal(err)
		}
		u, ok := e.sim.User(id)
		want := 1
		if active {
			want = 0
		}
		if !ok || u.ActiveStatus != want {
			t.Fatalf("active=%v: activeStatus %d", active, u.ActiveStatus)
		}
	}
	if e.count("DELETE", "/") != 0 {
		t.Fatal("a DELETE was sent")
	}
}

func TestFindQuoting(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	obrien := e.sim.SeedUser(absorbsim.User{Username: "o'brien", FirstName: "Conan", LastName: "O'Brien", ExternalID: "ext'1", EmailAddress: "o'brien@example.com"})
	e.sim.SeedUser(absorbsim.User{Username: "other", FirstName: "A", LastName: "B", ExternalID: "x"})
	tests := []struct {
		key  connector.Key
		want int
	}{
		{connector.Key{Kind: connector.KeyUserName, Value: "o'brien"}, 1},
		{connector.Key{Kind: connector.KeyUserName, Value: "O'Brien"}, 1},
		{connector.Key{Kind: connector.KeyExternalID, Value: "ext'1"}, 1},
		{connector.Key{Kind: connector.KeyEmail, Value: "o'brien@example.com"}, 1},
		{connector.Key{Kind: connector.KeyUserName, Value: "x' or username ne 'x"}, 0},
		{connector.Key{Kind: connector.KeyUserName, Value: "'"}, 0},
		{connector.Key{Kind: connector.KeyUserName, Value: ""}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.key.Value, func(t *testing.T) {
			found, err := e.conn.Find(ctx, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != tt.want || tt.want == 1 && found[0].ID != obrien {
				t.Fatalf("found %+v, want %d", found, tt.want)
			}
		})
	}
	if _, err := e.conn.Find(ctx, connector.Key{Kind: "phone", Value: "1"}); err == nil {
		t.Fatal("unknown key kind accepted")
	}
	if got := absorb.Quote("O'Brien"); got != "'O''Brien'" {
		t.Fatalf("Quote = %s", got)
	}
}

func TestListPaging(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	const n = 2050
	for i := range n {
		e.sim.SeedUser(absorbsim.User{Username: fmt.Sprintf("u%05d", i), FirstName: "F", LastName: "L", ExternalID: fmt.Sprintf("e%05d", i)})
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		ls, next, err := e.conn.List(ctx, cursor)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, l := range ls {
			if seen[l.ID] {
				t.Fatalf("learner %s listed twice", l.ID)
			}
			seen[l.ID] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != n || pages != 3 {
		t.Fatalf("listed %d learners in %d pages, want %d in 3", len(seen), pages, n)
	}
	if _, _, err := e.conn.List(ctx, "x"); err == nil {
		t.Fatal("bad cursor accepted")
	}
}

func TestSetGroups(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	id, err := e.conn.Create(ctx, learner("3"))
	if err != nil {
		t.Fatal(err)
	}
	sales := e.sim.SeedGroup(absorbsim.Group{Name: "Sales", IsAutomatic: true, RuleField: "customFields/string30", RuleContains: "|Sales|"})
	salesOps := e.sim.SeedGroup(absorbsim.Group{Name: "Sales Ops", IsAutomatic: true, RuleField: "customFields/string30", RuleContains: "|Sales Ops|"})
	member := func(g string) bool {
		for _, m := range e.sim.GroupMembers(g) {
			if m == id {
				return true
			}
		}
		return false
	}
	tests := []struct {
		groups         []string
		field          any
		inSales, inOps bool
		puts           int
	}{
		{[]string{"Sales", "Eng", "Sales"}, "|Eng|Sales|", true, false, 1},
		{[]string{"Eng", "Sales"}, "|Eng|Sales|", true, false, 0}, // unchanged: no write
		{[]string{"Sales Ops"}, "|Sales Ops|", false, true, 1},
		{nil, nil, false, false, 1},
	}
	for _, tt := range tests {
		e.sim.ResetCounters()
		if err := e.conn.SetGroups(ctx, id, tt.groups); err != nil {
			t.Fatal(err)
		}
		u, _ := e.sim.User(id)
		if u.CustomFields["string30"] != tt.field || member(sales) != tt.inSales || member(salesOps) != tt.inOps {
			t.Fatalf("groups %v: field %v, in Sales %v, in Sales Ops %v", tt.groups, u.CustomFields["string30"], member(sales), member(salesOps))
		}
		if got := e.count("PUT", "/users/"); got != tt.puts {
			t.Fatalf("groups %v: %d PUTs, want %d", tt.groups, got, tt.puts)
		}
		if u.ActiveStatus != 0 || u.FirstName != "First3" {
			t.Fatalf("SetGroups changed other fields: %+v", u)
		}
	}
	long := make([]string, 40)
	for i := range long {
		long[i] = fmt.Sprintf("A long group name %02d", i)
	}
	if err := e.conn.SetGroups(ctx, id, long); err == nil || connector.IsRetryable(err) {
		t.Fatalf("too many groups: %v", err)
	}
	noField := e.connector(t, e.cache, func(c *absorb.Config) { c.GroupsField = "" })
	if err := noField.SetGroups(ctx, id, []string{"x"}); err == nil {
		t.Fatal("SetGroups without a GroupsField succeeded")
	}
}

func TestEnroll(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	id, err := e.conn.Create(ctx, learner("4"))
	if err != nil {
		t.Fatal(err)
	}
	course := e.sim.SeedCourse(absorbsim.Course{Name: "Safety"})
	curr := e.sim.SeedCourse(absorbsim.Course{Name: "Onboarding", Type: "Curriculum"})
	tests := []struct {
		name  string
		e     connector.Enrollment
		posts int
		check func(error) bool
	}{
		{"course", connector.Enrollment{Kind: "course", ID: course}, 1, func(err error) bool { return err == nil }},
		{"again", connector.Enrollment{Kind: "course", ID: course}, 0, func(err error) bool { return err == nil }},
		{"curriculum", connector.Enrollment{Kind: "curriculum", ID: curr}, 1, func(err error) bool { return err == nil }},
		{"unknown course", connector.Enrollment{Kind: "course", ID: "00000000-0000-4000-8000-00000000ffff"}, 1, connector.IsNotFound},
		{"bad kind", connector.Enrollment{Kind: "path", ID: course}, 0, func(err error) bool { return err != nil && !connector.IsRetryable(err) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.sim.ResetCounters()
			err := e.conn.Enroll(ctx, id, tt.e)
			if !tt.check(err) {
				t.Fatalf("Enroll: %v", err)
			}
			if got := e.count("POST", "/users/"); got != tt.posts {
				t.Fatalf("%d POSTs, want %d", got, tt.posts)
			}
		})
	}
	if got := e.sim.Enrollments(id); len(got) != 2 {
		t.Fatalf("enrollments %+v", got)
	}
}

func TestDepartments(t *testing.T) {
	tests := []struct {
		name     string
		create   bool
		noWrites bool
		wantNew  bool // a department was created for the unknown name
	}{
		{"unknown → default", false, false, false},
		{"unknown → created", true, false, true},
		{"cannot create → default", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, absorbsim.Options{NoDepartmentWrites: tt.noWrites}, func(c *absorb.Config) { c.CreateDepartments = tt.create })
			ctx := context.Background()
			var ids []string
			for i := range 3 {
				l := learner(fmt.Sprint("d", i))
				l.Fields["departmentName"] = "Support"
				id, err := e.conn.Create(ctx, l)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			var support string
			for _, d := range e.sim.Departments() {
				if d.Name == "Support" {
					support = d.ID
				}
			}
			if (support != "") != tt.wantNew {
				t.Fatalf("department created: %v, want %v", support != "", tt.wantNew)
			}
			want := e.sim.DefaultDepartmentID()
			if tt.wantNew {
				want = support
			}
			for _, id := range ids {
				if u, _ := e.sim.User(id); u.DepartmentID != want {
					t.Fatalf("department %s, want %s", u.DepartmentID, want)
				}
			}
			// The name is resolved once per connector (cache).
			if n := e.count("GET", "/departments"); n != 1 {
				t.Fatalf("%d department lookups, want 1", n)
			}
		})
	}
	t.Run("no default", func(t *testing.T) {
		e := setup(t, absorbsim.Options{}, func(c *absorb.Config) { c.DefaultDepartmentID = "" })
		_, err := e.conn.Create(context.Background(), learner("x"))
		if err == nil || connector.IsRetryable(err) {
			t.Fatalf("create without any department: %v", err)
		}
	})
}

func TestOneTokenSharedByWorkers(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	id := e.sim.SeedUser(absorbsim.User{Username: "x", FirstName: "X", LastName: "Y"})
	conns := make([]*absorb.Connector, 8)
	for i := range conns {
		conns[i] = e.connector(t, e.cache, nil) // one cache, as with tokencache.Dynamo
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(conns)*5)
	start := make(chan struct{})
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 5 {
				if _, err := c.Get(context.Background(), id); err != nil {
					errs <- err
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.sim.Authentications(); n != 1 {
		t.Fatalf("%d /authenticate calls, want exactly 1", n)
	}
	if n := e.statuses(http.StatusUnauthorized); n != 0 {
		t.Fatalf("%d 401s", n)
	}
}

func TestSeparateCachesRevokeEachOther(t *testing.T) {
	// The sim is faithful to the one-live-token rule: workers that do not
	// share the token revoke each other's and pay in 401s and logins.
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	id := e.sim.SeedUser(absorbsim.User{Username: "x", FirstName: "X", LastName: "Y"})
	a := e.connector(t, tokencache.NewLocal(), nil)
	b := e.connector(t, tokencache.NewLocal(), nil)
	for _, c := range []*absorb.Connector{a, b, a, b} {
		if _, err := c.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.sim.Authentications(); n != 4 {
		t.Fatalf("%d logins, want 4 (each turn revokes the other's token)", n)
	}
	// Each revoked turn: 401, 401 again (transient-retry), then refresh.
	if n := e.statuses(http.StatusUnauthorized); n != 4 {
		t.Fatalf("%d 401s, want 4", n)
	}
}

func TestTokenRefresh(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	id := e.sim.SeedUser(absorbsim.User{Username: "x", FirstName: "X", LastName: "Y"})
	get := func() {
		t.Helper()
		if _, err := e.conn.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	get()
	tok1, _ := e.cache.Get(ctx)
	steps := []struct {
		advance time.Duration
		auths   int
	}{
		{3 * time.Hour, 1},             // 1 h left: keep it
		{29 * time.Minute, 1},          // 31 min left
		{2 * time.Minute, 2},           // 29 min left: refreshed before expiry
		{4*time.Hour + time.Minute, 3}, // long idle: expired in the cache
		{0, 3},                         // and reused
	}
	for i, s := range steps {
		e.clock.Advance(s.advance)
		get()
		if n := e.sim.Authentications(); n != s.auths {
			t.Fatalf("step %d: %d logins, want %d", i, n, s.auths)
		}
	}
	if n := e.statuses(http.StatusUnauthorized); n != 0 {
		t.Fatalf("%d 401s; refreshes should be proactive", n)
	}
	tok2, _ := e.cache.Get(ctx)
	if tok2.Generation <= tok1.Generation || tok2.Value == tok1.Value {
		t.Fatalf("cache not advanced: %v → %v", tok1, tok2)
	}
}

func TestUnauthorized(t *testing.T) {
	tests := []struct {
		name      string
		prepare   func(*absorbsim.Sim)
		logins    int // after the first
		unauthors int
	}{
		{"transient 401 from the load balancer: same token retried", func(s *absorbsim.Sim) { s.InjectUnauthorized(1) }, 0, 1},
		{"token revoked elsewhere: refreshed", func(s *absorbsim.Sim) { s.InvalidateToken() }, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, absorbsim.Options{}, nil)
			ctx := context.Background()
			id := e.sim.SeedUser(absorbsim.User{Username: "x", FirstName: "X", LastName: "Y"})
			if _, err := e.conn.Get(ctx, id); err != nil {
				t.Fatal(err)
			}
			e.sim.ResetCounters()
			tt.prepare(e.sim)
			if _, err := e.conn.Get(ctx, id); err != nil {
				t.Fatal(err)
			}
			if n := e.sim.Authentications(); n != tt.logins {
				t.Fatalf("%d logins, want %d", n, tt.logins)
			}
			if n := e.statuses(http.StatusUnauthorized); n != tt.unauthors {
				t.Fatalf("%d 401s, want %d", n, tt.unauthors)
			}
		})
	}
}

func TestBadCredentialsFailFast(t *testing.T) {
	e := setup(t, absorbsim.Options{}, func(c *absorb.Config) { c.Password = "wrong" })
	ctx := context.Background()
	for range 3 {
		_, err := e.conn.Get(ctx, "00000000-0000-4000-8000-000000000001")
		ce := asError(t, err)
		if !ce.Retryable || ce.RetryAfter <= 0 || ce.Status != 401 || strings.Contains(err.Error(), "wrong") {
			t.Fatalf("bad login: %+v", ce)
		}
	}
	if n := e.count("POST", "/authenticate"); n != 1 {
		t.Fatalf("%d login attempts, want 1 (then hold off)", n)
	}
	e.clock.Advance(2 * time.Minute)
	_, _ = e.conn.Get(ctx, "00000000-0000-4000-8000-000000000001")
	if n := e.count("POST", "/authenticate"); n != 2 {
		t.Fatalf("%d login attempts after the hold, want 2", n)
	}
}

func TestRateLimited(t *testing.T) {
	// The sim's clock stands still, so its 1-second window never slides:
	// the third request is refused. One try per call: this is about how
	// a 429 is reported (TestRetries covers retrying it).
	e := setup(t, absorbsim.Options{RateLimit: 2}, func(c *absorb.Config) { c.Retry.Attempts = 1 })
	ctx := context.Background()
	id := e.sim.SeedUser(absorbsim.User{Username: "x", FirstName: "X", LastName: "Y"})
	if _, err := e.conn.Get(ctx, id); err != nil { // login + get
		t.Fatal(err)
	}
	_, err := e.conn.Get(ctx, id)
	ce := asError(t, err)
	if !ce.Retryable || ce.Status != 429 || ce.RetryAfter != time.Second || connector.RetryAfterOf(err) != time.Second {
		t.Fatalf("429: %+v", ce)
	}
	if p := e.lim.Pauses(); len(p) != 1 || p[0] != time.Second {
		t.Fatalf("limiter pauses %v, want [1s]", p)
	}
}

func TestServerFaults(t *testing.T) {
	tests := []struct {
		name   string
		faults absorbsim.Faults
		client *http.Client
		status int
	}{
		{"500", absorbsim.Faults{P5xx: 1}, nil, 500},
		{"timeout", absorbsim.Faults{PTimeout: 1}, &http.Client{Timeout: 100 * time.Millisecond}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, absorbsim.Options{Faults: tt.faults}, func(c *absorb.Config) { c.HTTPClient = tt.client })
			_, err := e.conn.Get(context.Background(), "00000000-0000-4000-8000-000000000001")
			ce := asError(t, err)
			if !ce.Retryable || ce.Status != tt.status {
				t.Fatalf("%+v", ce)
			}
			// The login failed each time before any GET, and the call
			// tried it 4 times. (A timed-out request is recorded by the sim
			// only when its handler notices, so only the 500s are counted.)
			if n := e.count("POST", "/authenticate"); tt.status == 500 && n != vendorhttp.DefaultAttempts {
				t.Fatalf("%d login attempts, want %d", n, vendorhttp.DefaultAttempts)
			}
		})
	}
}

func TestValidationErrors(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	if _, err := e.conn.Create(ctx, learner("5")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		l        func() connector.Learner
		conflict bool
		hidden   string // must not appear in the error
	}{
		{"duplicate username", func() connector.Learner {
			l := learner("6")
			l.UserName = "5@example.com"
			return l
		}, true, "5@example.com"},
		{"duplicate external id", func() connector.Learner {
			l := learner("7")
			l.ExternalID = "00u5"
			return l
		}, true, "00u5"},
		{"custom field too long", func() connector.Learner {
			l := learner("8")
			l.Fields["customFields.string2"] = strings.Repeat("secret-value ", 30)
			return l
		}, false, "secret-value"},
		{"bad email", func() connector.Learner {
			l := learner("9")
			l.Email = "not an email"
			return l
		}, false, "not an email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.conn.Create(ctx, tt.l())
			ce := asError(t, err)
			if ce.Retryable || ce.Conflict != tt.conflict || ce.Status != 422 {
				t.Fatalf("%+v", ce)
			}
			if strings.Contains(err.Error(), tt.hidden) {
				t.Fatalf("error text leaks a value: %v", err)
			}
			if !strings.Contains(err.Error(), "422") {
				t.Fatalf("error text lacks Absorb's detail: %v", err)
			}
		})
	}
	l := learner("10")
	l.Fields["customFields.decimal2"] = "many"
	if _, err := e.conn.Create(ctx, l); err == nil || connector.IsRetryable(err) {
		t.Fatalf("non-numeric decimal: %v", err)
	}
}

func TestUpsertBatch(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	pre := e.sim.SeedUser(absorbsim.User{Username: "pre@example.com", FirstName: "P", LastName: "Q", RoleIDs: []string{"r"}, CustomFields: map[string]any{"string5": "keep"}})
	taken := e.sim.SeedUser(absorbsim.User{Username: "taken@example.com", FirstName: "T", LastName: "T", ExternalID: "00uTAKEN"})
	_ = taken
	var ls []connector.Learner
	for i := range 250 {
		ls = append(ls, learner(fmt.Sprintf("b%03d", i)))
	}
	upd := learner("pre")
	upd.ID, upd.UserName = pre, "pre@example.com"
	upd.Fields["jobTitle"] = "Lead"
	ls = append(ls, upd)
	bad := learner("bad")
	bad.ExternalID = "00uTAKEN" // Absorb refuses the row
	ls = append(ls, bad)
	missing := learner("gone")
	missing.ID = "00000000-0000-4000-8000-00000000ffff"
	ls = append(ls, missing)

	e.sim.ResetCounters()
	ids, errs := e.conn.UpsertBatch(ctx, ls)
	if len(errs) != len(ls) {
		t.Fatalf("%d errors for %d rows", len(errs), len(ls))
	}
	for i := range 251 {
		if errs[i] != nil || ids[i] == "" {
			t.Fatalf("row %d: id %q err %v", i, ids[i], errs[i])
		}
	}
	if ids[250] != pre {
		t.Fatalf("update row answered %s, want %s", ids[250], pre)
	}
	if errs[251] == nil || errs[252] == nil || !connector.IsNotFound(errs[252]) {
		t.Fatalf("failed rows: %v / %v", errs[251], errs[252])
	}
	if _, ok := ids[251]; ok {
		t.Fatal("a refused row got an id")
	}
	if n := e.count("POST", "/users/upload"); n != 2 {
		t.Fatalf("%d uploads, want 2 (≤200 rows each)", n)
	}
	u, _ := e.sim.User(pre)
	if u.JobTitle != "Lead" || u.ExternalID != "00upre" || len(u.RoleIDs) != 1 || u.CustomFields["string5"] != "keep" {
		t.Fatalf("updated row lost fields: %+v", u)
	}
	if got, _ := e.sim.User(ids[7]); got.ExternalID != "00ub007" || got.Password == "" {
		t.Fatalf("created row %+v", got)
	}
}

func TestEveryRequestWaitsOnTheLimiter(t *testing.T) {
	e := setup(t, absorbsim.Options{}, nil)
	ctx := context.Background()
	id, err := e.conn.Create(ctx, learner("w"))
	if err != nil {
		t.Fatal(err)
	}
	l := learner("w")
	l.ID = id
	l.Fields["jobTitle"] = "x"
	if err := e.conn.Update(ctx, l); err != nil {
		t.Fatal(err)
	}
	e.lim.mu.Lock()
	waits := e.lim.waits
	e.lim.mu.Unlock()
	if n := len(e.sim.Requests()); waits != n {
		t.Fatalf("%d limiter waits for %d requests", waits, n)
	}
}

// instant is a retry sleep that does not wait.
func instant(ctx context.Context, _ time.Duration) error { return ctx.Err() }
