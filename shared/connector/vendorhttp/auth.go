package vendorhttp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/retry"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

const (
	// FailHold is how long a refused login stops every worker from trying
	// again (repeated bad logins can lock the API admin out).
	FailHold = time.Minute
	// LoginTimeout bounds one Auth.Login call.
	LoginTimeout = 15 * time.Second
	// claimTTL outlives LoginTimeout, so a live claimer never loses its
	// claim; a dead one's expires.
	claimTTL = 20 * time.Second

	// Values stored in place of a token: a refresh in progress, a refused
	// login.
	claimPrefix = "learnerlink:refreshing:"
	failPrefix  = "learnerlink:auth-failed:"
)

// TokenCache shares a token between workers (shared/tokencache).
type TokenCache interface {
	Get(ctx context.Context) (tokencache.Token, error)
	Replace(ctx context.Context, prev int64, next tokencache.Token) (tokencache.Token, error)
}

// Auth holds a vendor API token shared by every worker through a
// TokenCache (see package tokencache): one live token for all; a refresh
// made by one worker, which claims it by storing a marker value (valid
// 20 s) under the compare-and-set while the others wait; a refused login
// stored as a marker too (valid FailHold), so workers fail fast instead
// of hammering the vendor's login.
type Auth struct {
	// Vendor prefixes log lines ("absorb").
	Vendor string
	Tokens TokenCache
	// Login fetches a new token, within LoginTimeout. prev is the token it
	// replaces (Value "" when there was none). A zero Expires means
	// Lifetime from the start of the login. refused says the vendor
	// turned the credentials down (RefuseLogin): every worker is then
	// held off for FailHold.
	Login func(ctx context.Context, prev tokencache.Token) (tok tokencache.Token, refused bool, err error)
	// Lifetime is a token's life when Login gives no expiry.
	Lifetime time.Duration
	// RefreshBefore is how long before its expiry a token is replaced,
	// so no request starts with a token that dies in flight.
	RefreshBefore time.Duration
	// RetrySame > 0 sends a request rejected (401) with the current token
	// once more with it after that pause, before refreshing: for vendors
	// whose 401s can be transient, and whose refresh revokes the token of
	// every worker.
	RetrySame time.Duration
	// Attempts bounds the tries of one request across 401 handling
	// (0: 3).
	Attempts int
	// Held is the error text while a refused login holds workers off.
	Held string
	// Log, Now (token expiry) and Sleep (waits) default to discarding,
	// time.Now and a timer.
	Log   *slog.Logger
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// errLostRace says another worker changed the cache first.
var errLostRace = errors.New("token cache changed concurrently")

// UsableToken reports whether v can be stored as a token: not empty, no
// white space, not one of Auth's markers.
func UsableToken(v string) bool {
	return v != "" && !strings.ContainsAny(v, " \t\r\n") && !marker(v)
}

// RefuseLogin reports whether e, a failed login answer, means the vendor
// turned the credentials down (400, 401, 403). That is fixable without
// touching the data, so e becomes Retryable after FailHold rather than
// parking every learner, its text prefixed with what ("login refused").
func RefuseLogin(e *connector.Error, what string) bool {
	switch e.Status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		e.Retryable, e.Conflict, e.RetryAfter = true, false, FailHold
		e.Err = fmt.Errorf("%s: %w", what, e.Err)
		return true
	}
	return false
}

func marker(v string) bool {
	return strings.HasPrefix(v, claimPrefix) || strings.HasPrefix(v, failPrefix)
}

// Send calls try with the shared token until it answers something other
// than 401, at most Attempts times. On a 401 it uses the token another
// worker stored meanwhile, else (RetrySame) tries the same token once
// more, else refreshes it. It returns try's error, or its first non-401
// answer, or its last 401 when the attempts ran out.
func (a *Auth) Send(ctx context.Context, op string, try func(ctx context.Context, token string) (*Response, error)) (*Response, error) {
	tok, err := a.Token(ctx, op)
	if err != nil {
		return nil, err
	}
	attempts := a.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	retriedSame := a.RetrySame <= 0
	for attempt := 1; ; attempt++ {
		resp, err := try(ctx, tok.Value)
		if err != nil || resp.Status != http.StatusUnauthorized || attempt >= attempts {
			return resp, err
		}
		cur, err := a.Tokens.Get(ctx)
		if err != nil && !errors.Is(err, tokencache.ErrNoToken) {
			return nil, a.cacheErr(ctx, op, err)
		}
		switch {
		case cur.Generation != tok.Generation:
			// Another worker refreshed since we read ours: use theirs.
			tok, err = a.Token(ctx, op)
		case !retriedSame:
			retriedSame = true
			a.log().LogAttrs(ctx, slog.LevelDebug, a.Vendor+": 401 with the current token; retrying once", slog.String("op", op))
			err = a.sleep(ctx, a.RetrySame)
		default:
			a.log().LogAttrs(ctx, slog.LevelInfo, a.Vendor+": token rejected; refreshing", slog.String("op", op), slog.Int64("generation", tok.Generation))
			tok, err = a.refresh(ctx, op, tok)
		}
		if err != nil {
			return nil, err
		}
	}
}

// Token returns a usable token from the cache, logging in when it is
// missing or close to expiry, or waiting while another worker does.
func (a *Auth) Token(ctx context.Context, op string) (tokencache.Token, error) {
	var waited time.Duration
	wait := 10 * time.Millisecond
	for {
		t, err := a.Tokens.Get(ctx)
		if err != nil && !errors.Is(err, tokencache.ErrNoToken) {
			return tokencache.Token{}, a.cacheErr(ctx, op, err)
		}
		if err != nil {
			t = tokencache.Token{} // none stored: generation 0
		}
		now := a.now()
		switch {
		case strings.HasPrefix(t.Value, failPrefix) && now.Before(t.Expires):
			return tokencache.Token{}, &connector.Error{Op: op, Status: http.StatusUnauthorized, Retryable: true,
				RetryAfter: t.Expires.Sub(now), Err: errors.New(a.Held)}
		case strings.HasPrefix(t.Value, claimPrefix) && now.Before(t.Expires):
			// Counted in waits, not by the clock: a test clock may stand
			// still while a dead claimer's claim never expires.
			if waited >= 2*claimTTL {
				return tokencache.Token{}, &connector.Error{Op: op, Retryable: true, Err: errors.New("timed out waiting for another worker's token refresh")}
			}
			if err := a.sleep(ctx, wait); err != nil {
				return tokencache.Token{}, fmt.Errorf("%s: %w", op, err)
			}
			waited += wait
			wait = min(2*wait, 200*time.Millisecond)
			continue
		case !marker(t.Value) && !t.Expired(now, a.RefreshBefore):
			return t, nil
		}
		nt, err := a.claimAndLogin(ctx, op, t)
		if errors.Is(err, errLostRace) {
			continue
		}
		return nt, err
	}
}

// refresh replaces old, which the vendor rejected.
func (a *Auth) refresh(ctx context.Context, op string, old tokencache.Token) (tokencache.Token, error) {
	t, err := a.claimAndLogin(ctx, op, old)
	if errors.Is(err, errLostRace) {
		return a.Token(ctx, op)
	}
	return t, err
}

// claimAndLogin claims the refresh of prev's generation and, if it wins,
// logs in and stores the new token.
func (a *Auth) claimAndLogin(ctx context.Context, op string, prev tokencache.Token) (tokencache.Token, error) {
	mark := func(prefix string, expires time.Time) tokencache.Token {
		return tokencache.Token{Value: prefix + nonce(), Expires: expires}
	}
	held, err := a.Tokens.Replace(ctx, prev.Generation, mark(claimPrefix, a.now().Add(claimTTL)))
	if errors.Is(err, tokencache.ErrStale) {
		return tokencache.Token{}, errLostRace
	}
	if err != nil {
		return tokencache.Token{}, a.cacheErr(ctx, op, err)
	}
	if marker(prev.Value) {
		prev.Value = ""
	}
	issued := a.now()
	lctx, cancel := context.WithTimeout(ctx, LoginTimeout)
	tok, refused, lerr := a.Login(lctx, prev)
	cancel()
	if lerr != nil {
		// A refused login holds everyone off for a while; anything else
		// frees the claim at once for the next worker.
		next := mark(claimPrefix, a.now().Add(-time.Second))
		if refused {
			next = mark(failPrefix, a.now().Add(FailHold))
			a.log().LogAttrs(ctx, slog.LevelError, a.Vendor+": API login refused; check the credentials", slog.String("error", lerr.Error()))
		}
		if _, err := a.Tokens.Replace(context.WithoutCancel(ctx), held.Generation, next); err != nil {
			a.log().LogAttrs(ctx, slog.LevelWarn, a.Vendor+": could not release the refresh claim", slog.String("error", err.Error()))
		}
		return tokencache.Token{}, lerr
	}
	if tok.Expires.IsZero() && a.Lifetime > 0 {
		tok.Expires = issued.Add(a.Lifetime)
	}
	stored, err := a.Tokens.Replace(ctx, held.Generation, tokencache.Token{Value: tok.Value, Expires: tok.Expires})
	if errors.Is(err, tokencache.ErrStale) {
		return tokencache.Token{}, errLostRace // our claim expired and was taken over
	}
	if err != nil {
		return tokencache.Token{}, a.cacheErr(ctx, op, err)
	}
	a.log().LogAttrs(ctx, slog.LevelInfo, a.Vendor+": API token stored", slog.Int64("generation", stored.Generation), slog.Time("expires", stored.Expires))
	return stored, nil
}

func (a *Auth) cacheErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: token cache: %w", op, ctx.Err())
	}
	return &connector.Error{Op: op, Retryable: true, Err: fmt.Errorf("token cache: %w", err)}
}

func (a *Auth) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *Auth) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func (a *Auth) sleep(ctx context.Context, d time.Duration) error {
	if a.Sleep == nil {
		return retry.Sleep(ctx, d)
	}
	return a.Sleep(ctx, d)
}

func nonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand.Read panics rather than erring)
	return hex.EncodeToString(b)
}
