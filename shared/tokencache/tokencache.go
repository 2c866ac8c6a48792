// Package tokencache shares one bearer token per target between every
// worker that talks to it.
//
// Some targets allow only one live token per API user: Absorb invalidates
// the previous token whenever /authenticate is called again. If each Lambda
// worker authenticated on its own, they would keep revoking each other's
// tokens. Instead all workers read the token from a cache and refresh it
// through an optimistic compare-and-set on its generation:
//
//	tok, err := c.Get(ctx)                  // ErrNoToken: tok.Generation == 0
//	if err is ErrNoToken, or tok expired, or the target answered 401 with tok {
//		fresh := authenticate()
//		tok, err = c.Replace(ctx, tok.Generation, fresh)
//		if errors.Is(err, ErrStale) { tok, err = c.Get(ctx) } // someone else refreshed: use theirs
//	}
//
// Exactly one caller wins each generation; the others discard what they
// fetched (it may already have been invalidated by the winner's, or vice
// versa) and use the stored one. A loser's own /authenticate call can still
// have invalidated the winner's token on targets like Absorb; the next 401
// then triggers one more round, which converges because every round has
// exactly one winner.
//
// The connectors run this loop through vendorhttp.Auth, which adds
// refresh claims and a hold after a refused login.
//
// Implementations: Local (one process) and Dynamo (all workers, one
// DynamoDB item). Token values are secrets: nothing in this package logs
// them, and callers must not either.
package tokencache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

var (
	// ErrNoToken is returned by Get when no token is stored yet.
	ErrNoToken = errors.New("tokencache: no token stored")
	// ErrStale is returned by Replace when the stored generation is not
	// the one the caller refreshed from: another caller won.
	ErrStale = errors.New("tokencache: stale generation, token was replaced by another caller")
)

// Token is one bearer token and where it stands in the refresh sequence.
type Token struct {
	Value string
	// Expires is when the target stops accepting it; zero if unknown.
	Expires time.Time
	// Generation is assigned by the cache: 1 for the first stored token,
	// +1 on every Replace. Replace ignores the value passed in.
	Generation int64
}

// Expired reports whether t is unusable at now, treating tokens that
// expire within margin as already expired (so a request never starts with
// a token that dies in flight). A zero Expires never expires.
func (t Token) Expired(now time.Time, margin time.Duration) bool {
	return t.Value == "" || (!t.Expires.IsZero() && !now.Add(margin).Before(t.Expires))
}

// String, GoString and LogValue hide the value, so a Token cannot leak
// through fmt verbs or log/slog (text or JSON).
func (t Token) String() string {
	return fmt.Sprintf("tokencache.Token{Generation: %d, Expires: %s, Value: [redacted]}", t.Generation, t.Expires.Format(time.RFC3339))
}

// GoString is String, for %#v.
func (t Token) GoString() string { return t.String() }

// LogValue implements slog.LogValuer.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("generation", t.Generation), slog.Time("expires", t.Expires))
}

// Cache is the method set both implementations provide; consumers should
// declare their own (smaller) interface.
type Cache interface {
	Get(ctx context.Context) (Token, error)
	Replace(ctx context.Context, prev int64, next Token) (Token, error)
}

var (
	_ Cache = (*Local)(nil)
	_ Cache = (*Dynamo)(nil)
)

func validate(prev int64, next Token) error {
	if prev < 0 {
		return fmt.Errorf("tokencache: negative generation %d", prev)
	}
	if next.Value == "" {
		return errors.New("tokencache: empty token value")
	}
	return nil
}

// Local is an in-process Cache, for a single process or tests.
type Local struct {
	mu  sync.Mutex
	tok Token // Generation 0: none
}

// NewLocal returns an empty in-process cache.
func NewLocal() *Local { return &Local{} }

// Get returns the stored token, or ErrNoToken (with Generation 0).
func (c *Local) Get(ctx context.Context) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Generation == 0 {
		return Token{}, ErrNoToken
	}
	return c.tok, nil
}

// Replace stores next as generation prev+1 if the stored generation is
// still prev (0: nothing stored). Otherwise it returns ErrStale together
// with the token currently stored, which the caller may use instead of
// calling Get.
func (c *Local) Replace(ctx context.Context, prev int64, next Token) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	if err := validate(prev, next); err != nil {
		return Token{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tok.Generation != prev {
		return c.tok, ErrStale
	}
	// Round(0) drops the monotonic reading, so a Local token compares like
	// one that went through DynamoDB.
	c.tok = Token{Value: next.Value, Expires: next.Expires.Round(0), Generation: prev + 1}
	return c.tok, nil
}
