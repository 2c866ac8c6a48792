package scim_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store"
)

// hookStore wraps a store to count calls and inject failures.
type hookStore struct {
	scim.Store
	mu    sync.Mutex
	calls map[string]int
	// fail makes the named method return the error.
	fail map[string]error
	// conflicts makes UpdateIdentity/UpdateGroup/DeleteIdentity meet a
	// concurrent writer this many times: the resource is rewritten just
	// before the call, so the store itself reports the version conflict.
	conflicts int
}

func newHookStore(st scim.Store) *hookStore {
	return &hookStore{Store: st, calls: map[string]int{}, fail: map[string]error{}}
}

func (h *hookStore) hit(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls[name]++
	return h.fail[name]
}

func (h *hookStore) conflict() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conflicts > 0 {
		h.conflicts--
		return true
	}
	return false
}

// touchIdentity is the concurrent writer: it rewrites the identity as is.
func (h *hookStore) touchIdentity(ctx context.Context, id string) {
	if cur, err := h.Store.GetIdentity(ctx, id); err == nil {
		_ = h.Store.UpdateIdentity(ctx, cur, cur.Version)
	}
}

func (h *hookStore) count(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[name]
}

func (h *hookStore) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = map[string]int{}
	h.fail = map[string]error{}
	h.conflicts = 0
}

func (h *hookStore) set(method string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail[method] = err
}

func (h *hookStore) CreateIdentity(ctx context.Context, id *store.Identity) error {
	if err := h.hit("CreateIdentity"); err != nil {
		return err
	}
	return h.Store.CreateIdentity(ctx, id)
}

func (h *hookStore) GetIdentity(ctx context.Context, id string) (*store.Identity, error) {
	if err := h.hit("GetIdentity"); err != nil {
		return nil, err
	}
	return h.Store.GetIdentity(ctx, id)
}

func (h *hookStore) GetIdentityByUserName(ctx context.Context, userName string) (*store.Identity, error) {
	if err := h.hit("GetIdentityByUserName"); err != nil {
		return nil, err
	}
	return h.Store.GetIdentityByUserName(ctx, userName)
}

func (h *hookStore) FindIdentitiesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error) {
	if err := h.hit("FindIdentitiesByExternalID"); err != nil {
		return nil, err
	}
	return h.Store.FindIdentitiesByExternalID(ctx, externalID)
}

func (h *hookStore) UpdateIdentity(ctx context.Context, id *store.Identity, expectedVersion int64) error {
	if err := h.hit("UpdateIdentity"); err != nil {
		return err
	}
	if h.conflict() {
		h.touchIdentity(ctx, id.ID)
	}
	return h.Store.UpdateIdentity(ctx, id, expectedVersion)
}

func (h *hookStore) DeleteIdentity(ctx context.Context, id string, expectedVersion int64) (*store.Identity, error) {
	if err := h.hit("DeleteIdentity"); err != nil {
		return nil, err
	}
	if h.conflict() {
		h.touchIdentity(ctx, id)
	}
	return h.Store.DeleteIdentity(ctx, id, expectedVersion)
}

func (h *hookStore) ListIdentities(ctx context.Context, cursor string, limit int) (store.Page[*store.Identity], error) {
	if err := h.hit("ListIdentities"); err != nil {
		return store.Page[*store.Identity]{}, err
	}
	return h.Store.ListIdentities(ctx, cursor, limit)
}

func (h *hookStore) CountIdentities(ctx context.Context) (int, error) {
	if err := h.hit("CountIdentities"); err != nil {
		return 0, err
	}
	return h.Store.CountIdentities(ctx)
}

func (h *hookStore) CreateGroup(ctx context.Context, g *store.Group, members []string) ([]store.Changed, error) {
	if err := h.hit("CreateGroup"); err != nil {
		return nil, err
	}
	return h.Store.CreateGroup(ctx, g, members)
}

func (h *hookStore) GetGroup(ctx context.Context, id string) (*store.Group, error) {
	if err := h.hit("GetGroup"); err != nil {
		return nil, err
	}
	return h.Store.GetGroup(ctx, id)
}

func (h *hookStore) GetGroupByDisplayName(ctx context.Context, displayName string) (*store.Group, error) {
	if err := h.hit("GetGroupByDisplayName"); err != nil {
		return nil, err
	}
	return h.Store.GetGroupByDisplayName(ctx, displayName)
}

func (h *hookStore) UpdateGroup(ctx context.Context, g *store.Group, expectedVersion int64, add, remove []string) ([]store.Changed, error) {
	if err := h.hit("UpdateGroup"); err != nil {
		return nil, err
	}
	if h.conflict() {
		if cur, err := h.Store.GetGroup(ctx, g.ID); err == nil {
			_, _ = h.Store.UpdateGroup(ctx, cur, cur.Version, nil, nil)
		}
	}
	return h.Store.UpdateGroup(ctx, g, expectedVersion, add, remove)
}

func (h *hookStore) DeleteGroup(ctx context.Context, id string) ([]store.Changed, error) {
	if err := h.hit("DeleteGroup"); err != nil {
		return nil, err
	}
	return h.Store.DeleteGroup(ctx, id)
}

func (h *hookStore) ListGroups(ctx context.Context, cursor string, limit int) (store.Page[*store.Group], error) {
	if err := h.hit("ListGroups"); err != nil {
		return store.Page[*store.Group]{}, err
	}
	return h.Store.ListGroups(ctx, cursor, limit)
}

func (h *hookStore) CountGroups(ctx context.Context) (int, error) {
	if err := h.hit("CountGroups"); err != nil {
		return 0, err
	}
	return h.Store.CountGroups(ctx)
}

func (h *hookStore) Members(ctx context.Context, groupID string) ([]store.Member, error) {
	if err := h.hit("Members"); err != nil {
		return nil, err
	}
	return h.Store.Members(ctx, groupID)
}

func (h *hookStore) GroupsOf(ctx context.Context, userID string) ([]store.Member, error) {
	if err := h.hit("GroupsOf"); err != nil {
		return nil, err
	}
	return h.Store.GroupsOf(ctx, userID)
}

// snapshot renders everything the SCIM API can change: live identities
// (version, resource) and groups (version, resource, members).
func snapshot(t testing.TB, st scim.Store) string {
	t.Helper()
	ctx := context.Background()
	type groupSnap struct {
		Group   *store.Group
		Members []store.Member
	}
	var out struct {
		Identities []*store.Identity
		Groups     []groupSnap
	}
	for cursor := ""; ; {
		p, err := st.ListIdentities(ctx, cursor, 100)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		out.Identities = append(out.Identities, p.Items...)
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	for cursor := ""; ; {
		p, err := st.ListGroups(ctx, cursor, 100)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		for _, g := range p.Items {
			m, err := st.Members(ctx, g.ID)
			if err != nil {
				t.Fatalf("snapshot: %v", err)
			}
			out.Groups = append(out.Groups, groupSnap{g, m})
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return string(b)
}
