package vendorhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

// authRig is an Auth on a fake clock and an in-process cache whose
// logins hand out t1, t2, … (or fail with loginErr).
type authRig struct {
	clock    *simTime
	cache    *tokencache.Local
	auth     *Auth
	prevs    []string // prev.Value of each login
	loginErr error
	refused  bool
}

func newAuthRig(retrySame bool) *authRig {
	r := &authRig{clock: &simTime{now: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}, cache: tokencache.NewLocal()}
	r.auth = &Auth{Vendor: "v", Tokens: r.cache, Lifetime: time.Hour, RefreshBefore: 10 * time.Minute, Held: "held off",
		Login: func(_ context.Context, prev tokencache.Token) (tokencache.Token, bool, error) {
			r.prevs = append(r.prevs, prev.Value)
			if r.loginErr != nil {
				return tokencache.Token{}, r.refused, r.loginErr
			}
			return tokencache.Token{Value: fmt.Sprintf("t%d", len(r.prevs))}, false, nil
		},
		Log: discard(), Now: r.clock.Now, Sleep: r.clock.Sleep}
	if retrySame {
		r.auth.RetrySame = 250 * time.Millisecond
	}
	return r
}

func (r *authRig) store(t *testing.T, value string, life time.Duration) {
	t.Helper()
	cur, _ := r.cache.Get(context.Background())
	if _, err := r.cache.Replace(context.Background(), cur.Generation, tokencache.Token{Value: value, Expires: r.clock.now.Add(life)}); err != nil {
		t.Fatal(err)
	}
}

func TestAuthSend(t *testing.T) {
	tests := []struct {
		name      string
		stored    string        // in the cache before the call; "" none
		life      time.Duration // its life left
		retrySame bool
		statuses  []int // try's answers in turn; 200 after them
		elsewhere int   // another worker stores "theirs" after this try (1-based)
		tried     []string
		prevs     []string // what each login was told it replaces
		sleeps    int
		status    int
	}{
		{name: "no token: log in", tried: []string{"t1"}, prevs: []string{""}, status: 200},
		{name: "live token used", stored: "old", life: time.Hour, tried: []string{"old"}, status: 200},
		{name: "close to expiry: replaced", stored: "old", life: 5 * time.Minute, tried: []string{"t1"}, prevs: []string{"old"}, status: 200},
		{name: "expired: replaced", stored: "old", life: -time.Minute, tried: []string{"t1"}, prevs: []string{"old"}, status: 200},
		{name: "stale claim of a dead worker: taken over", stored: claimPrefix + "x", life: -time.Second, tried: []string{"t1"}, prevs: []string{""}, status: 200},
		{name: "401: refreshed", stored: "old", life: time.Hour, statuses: []int{401}, tried: []string{"old", "t1"}, prevs: []string{"old"}, status: 200},
		{name: "401 with RetrySame: same token once more", stored: "old", life: time.Hour, retrySame: true, statuses: []int{401},
			tried: []string{"old", "old"}, sleeps: 1, status: 200},
		{name: "401 twice with RetrySame: refreshed", stored: "old", life: time.Hour, retrySame: true, statuses: []int{401, 401},
			tried: []string{"old", "old", "t1"}, prevs: []string{"old"}, sleeps: 1, status: 200},
		{name: "401 after another worker refreshed: theirs", stored: "old", life: time.Hour, retrySame: true, statuses: []int{401}, elsewhere: 1,
			tried: []string{"old", "theirs"}, status: 200},
		{name: "attempts run out: last 401", stored: "old", life: time.Hour, statuses: []int{401, 401, 401, 401},
			tried: []string{"old", "t1", "t2"}, prevs: []string{"old", "t1"}, status: 401},
		{name: "other answers are returned", stored: "old", life: time.Hour, statuses: []int{503}, tried: []string{"old"}, status: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newAuthRig(tt.retrySame)
			if tt.stored != "" {
				r.store(t, tt.stored, tt.life)
			}
			var tried []string
			resp, err := r.auth.Send(context.Background(), "v.get", func(_ context.Context, tok string) (*Response, error) {
				tried = append(tried, tok)
				if len(tried) == tt.elsewhere {
					r.store(t, "theirs", time.Hour)
				}
				status := http.StatusOK
				if len(tried) <= len(tt.statuses) {
					status = tt.statuses[len(tried)-1]
				}
				return &Response{Status: status}, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status || !slices.Equal(tried, tt.tried) || !slices.Equal(r.prevs, tt.prevs) || len(r.clock.sleeps) != tt.sleeps {
				t.Errorf("status %d, tried %q, logins replacing %q, %d sleeps; want %d, %q, %q, %d",
					resp.Status, tried, r.prevs, len(r.clock.sleeps), tt.status, tt.tried, tt.prevs, tt.sleeps)
			}
			if n := len(tt.prevs); n > 0 {
				cur, _ := r.cache.Get(context.Background())
				if want := r.clock.now.Add(time.Hour); cur.Value != fmt.Sprintf("t%d", n) || !cur.Expires.Equal(want) {
					t.Errorf("cache holds %v, want t%d expiring %v (Lifetime)", cur, n, want)
				}
			}
		})
	}
}

func TestAuthLoginFailures(t *testing.T) {
	ctx := context.Background()
	refusal := &connector.Error{Op: "v.login", Status: 401, Err: errors.New("bad password")}
	tests := []struct {
		name    string
		err     error
		refused bool
		// logins in all after the next call, made at once, and after one
		// made FailHold later
		next, later int
	}{
		{"refused: every worker held off", refusal, true, 1, 2},
		{"failed otherwise: claim freed at once", &connector.Error{Op: "v.login", Status: 500, Retryable: true, Err: errors.New("oops")}, false, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newAuthRig(false)
			r.loginErr, r.refused = tt.err, tt.refused
			try := func(context.Context, string) (*Response, error) { return &Response{Status: 200}, nil }
			if _, err := r.auth.Send(ctx, "v.get", try); !errors.Is(err, tt.err) {
				t.Fatalf("first call: %v, want the login's error", err)
			}
			r.loginErr = nil
			_, err := r.auth.Send(ctx, "v.get", try)
			if len(r.prevs) != tt.next {
				t.Fatalf("%d logins after the next call, want %d (err %v)", len(r.prevs), tt.next, err)
			}
			var ce *connector.Error
			if tt.refused && (!errors.As(err, &ce) || !ce.Retryable || ce.Status != 401 || ce.RetryAfter != FailHold || ce.Err.Error() != "held off") {
				t.Fatalf("held call: %#v", err)
			}
			r.clock.now = r.clock.now.Add(FailHold)
			if _, err := r.auth.Send(ctx, "v.get", try); err != nil || len(r.prevs) != tt.later {
				t.Fatalf("after the hold: %v, %d logins, want %d", err, len(r.prevs), tt.later)
			}
		})
	}
}

// TestAuthWaitsForClaim: a worker that finds another's live claim waits
// for its token instead of logging in, and gives up on a claimer that
// never finishes.
func TestAuthWaitsForClaim(t *testing.T) {
	tests := []struct {
		name    string
		finish  int // the claimer stores its token at this sleep; 0 never
		wantErr bool
	}{
		{"claimer finishes", 3, false},
		{"claimer never finishes", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newAuthRig(false)
			r.store(t, claimPrefix+"other", claimTTL)
			sleeps := 0
			// The clock stands still, as in the connectors' tests.
			r.auth.Sleep = func(ctx context.Context, _ time.Duration) error {
				sleeps++
				if sleeps == tt.finish {
					r.store(t, "theirs", time.Hour)
				}
				return ctx.Err()
			}
			tok, err := r.auth.Token(context.Background(), "v.get")
			switch {
			case tt.wantErr && (!connector.IsRetryable(err) || !strings.Contains(err.Error(), "timed out")):
				t.Fatalf("Token = %v, %v; want a Retryable time-out", tok, err)
			case !tt.wantErr && (err != nil || tok.Value != "theirs"):
				t.Fatalf("Token = %v, %v; want theirs", tok, err)
			case len(r.prevs) != 0:
				t.Fatalf("%d logins while another worker held the claim", len(r.prevs))
			}
		})
	}
}

// failingCache fails every Get.
type failingCache struct{ *tokencache.Local }

func (failingCache) Get(context.Context) (tokencache.Token, error) {
	return tokencache.Token{}, errors.New("dynamodb unreachable")
}

func TestAuthCacheErrors(t *testing.T) {
	r := newAuthRig(false)
	r.auth.Tokens = failingCache{r.cache}
	_, err := r.auth.Token(context.Background(), "v.get")
	var ce *connector.Error
	if !errors.As(err, &ce) || !ce.Retryable || ce.Op != "v.get" {
		t.Fatalf("cache failure: %#v, want a Retryable *connector.Error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.auth.Token(ctx, "v.get"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestUsableToken(t *testing.T) {
	for v, want := range map[string]bool{"abc.def": true, "": false, "a b": false, "a\n": false, claimPrefix + "x": false, failPrefix + "y": false} {
		if got := UsableToken(v); got != want {
			t.Errorf("UsableToken(%q) = %v", v, got)
		}
	}
}

func TestRefuseLogin(t *testing.T) {
	for status, want := range map[int]bool{400: true, 401: true, 403: true, 404: false, 429: false, 500: false} {
		e := &connector.Error{Op: "v.login", Status: status, Conflict: status == 400, Err: errors.New("no")}
		got := RefuseLogin(e, "login refused")
		if got != want || (want && (!e.Retryable || e.Conflict || e.RetryAfter != FailHold || e.Err.Error() != "login refused: no")) {
			t.Errorf("RefuseLogin(%d) = %v, %+v", status, got, e)
		}
	}
}
