package scim

import (
	clist "container/list"
	"context"
	"sync"
	"time"

	"github.com/learnerlink/learnerlink/shared/store"
)

const (
	// cursorCacheSize bounds the remembered page boundaries: a few
	// concurrent imports' worth.
	cursorCacheSize = 256
	// cursorTTL bounds how long a boundary is trusted; an import pages
	// much faster than this.
	cursorTTL = 5 * time.Minute

	// The endpoints of the two listings (resourceType.Endpoint).
	usersEndpoint  = "/Users"
	groupsEndpoint = "/Groups"
)

// cursorCache remembers, for unfiltered listings, the store cursor at
// which the page starting at a given startIndex begins. SCIM pages by
// index and the store by cursor, so without it every page of a sequential
// read (Okta's import) re-reads the listing from the first resource:
// O(N²/count) reads for N resources, O(N) with it.
//
// It is only a hint. An entry is used only if it is younger than the TTL,
// the listing's count is what it was, and no create or delete went
// through this handler since; otherwise the page is read from the start.
// A create or delete elsewhere (another Lambda container) that leaves the
// count unchanged can shift a page by a few resources for up to the TTL,
// which index paging over a changing listing allows (RFC 7644 §3.4.2.4).
//
// Filtered listings never use it: their exact totalResults needs a walk
// over every candidate anyway.
type cursorCache struct {
	now func() time.Time

	mu    sync.Mutex
	order *clist.List // of *cursorEntry, most recently used first
	byKey map[cursorKey]*clist.Element
	gen   map[string]uint64 // per endpoint; bumped by every create and delete
}

type cursorKey struct {
	endpoint string // "/Users" or "/Groups"
	start    int    // 1-based startIndex the cursor continues at
}

type cursorEntry struct {
	key    cursorKey
	cursor string
	total  int // the listing's count when recorded
	gen    uint64
	stored time.Time
}

func newCursorCache(now func() time.Time) *cursorCache {
	return &cursorCache{now: now, order: clist.New(), byKey: map[cursorKey]*clist.Element{}, gen: map[string]uint64{}}
}

// generation is read before a listing is counted and passed to put, so
// an entry recorded across a concurrent create or delete is never used.
func (c *cursorCache) generation(endpoint string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen[endpoint]
}

// invalidate is called after every create or delete of the endpoint's
// resources.
func (c *cursorCache) invalidate(endpoint string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen[endpoint]++
}

// get returns the cursor at which the page starting at k.start begins, if
// a valid one is known for a listing of total resources.
func (c *cursorCache) get(k cursorKey, total int) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[k]
	if !ok {
		return "", false
	}
	e := el.Value.(*cursorEntry)
	if e.total != total || e.gen != c.gen[k.endpoint] || c.now().Sub(e.stored) > cursorTTL {
		c.order.Remove(el)
		delete(c.byKey, k)
		return "", false
	}
	c.order.MoveToFront(el)
	return e.cursor, true
}

// put records a page boundary, evicting the least recently used entry
// when full.
func (c *cursorCache) put(k cursorKey, cursor string, total int, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &cursorEntry{key: k, cursor: cursor, total: total, gen: gen, stored: c.now()}
	if el, ok := c.byKey[k]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.byKey[k] = c.order.PushFront(e)
	for c.order.Len() > cursorCacheSize {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*cursorEntry).key)
	}
}

// invalidatingStore bumps the cache's generation after every write that
// adds or removes a listed resource (updates keep the order: it is by id).
type invalidatingStore struct {
	Store
	c *cursorCache
}

func (s invalidatingStore) CreateIdentity(ctx context.Context, id *store.Identity) error {
	defer s.c.invalidate(usersEndpoint)
	return s.Store.CreateIdentity(ctx, id)
}

func (s invalidatingStore) DeleteIdentity(ctx context.Context, id string, expectedVersion int64) (*store.Identity, error) {
	defer s.c.invalidate(usersEndpoint)
	return s.Store.DeleteIdentity(ctx, id, expectedVersion)
}

func (s invalidatingStore) CreateGroup(ctx context.Context, g *store.Group, members []string) ([]store.Changed, error) {
	defer s.c.invalidate(groupsEndpoint)
	return s.Store.CreateGroup(ctx, g, members)
}

func (s invalidatingStore) DeleteGroup(ctx context.Context, id string) ([]store.Changed, error) {
	defer s.c.invalidate(groupsEndpoint)
	return s.Store.DeleteGroup(ctx, id)
}
