// Package bolt is the embedded, on-disk store.Store on go.etcd.io/bbolt, for
// local runs and tests. Every method runs in exactly one bbolt transaction,
// so each is atomic; bbolt serialises writers, so the store is safe for
// concurrent use by one process (a second process opening the same file
// fails after a short timeout instead of hanging).
//
// Layout (top-level buckets; "→" is key → value; "/" a nested bucket per
// owner; • is a one-byte marker):
//
//	identities   id → identityRec JSON            live identities only
//	tombstones   id → identityRec JSON            deleted identities
//	usernames    FoldUserName(userName) → id      live identities only
//	externalids  externalId/ id → •               live identities only
//	tombexternalids  externalId/ id → •           tombstones, by the externalId they carried
//	groups       id → groupRec JSON
//	groupnames   FoldUserName(displayName) → id
//	members      groupId/ userId → •
//	memberof     userId/ groupId → •
//	links        target/ identityId → Link JSON
//	pending      since(fixed-width UTC) 0x00 id → version
//	audit        "#"+identityId/ time 0x00 seq → AuditRecord JSON
//	docs         "<kind>/<id>" → docRec JSON      expired ones too, until overwritten or deleted
//
// Times are stored in UTC; the pending and audit keys use a fixed-width
// RFC 3339 form so that byte order is time order.
package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/learnerlink/learnerlink/shared/store"
)

// lockTimeout bounds how long Open waits for the file lock held by another
// process (or another Open of the same file).
const lockTimeout = time.Second

// present is the value of index entries whose key is the whole fact; not
// empty, because bbolt's Get cannot tell an empty value from a missing key.
const marker = "\x01"

// defaultLimit applies when a listing is asked for limit <= 0.
const defaultLimit = 100

// timeKey is RFC 3339 with a fixed nine-digit fraction: it parses with
// time.RFC3339Nano and sorts bytewise in time order (UTC only).
const timeKey = "2006-01-02T15:04:05.000000000Z"

const (
	bIdentities  = "identities"
	bTombstones  = "tombstones"
	bUserNames   = "usernames"
	bExternalIDs = "externalids"
	// bTombExternalIDs indexes tombstones by the externalId they carried.
	// Files written before it existed have no entries for older tombstones.
	bTombExternalIDs = "tombexternalids"
	bGroups          = "groups"
	bGroupNames      = "groupnames"
	bMembers         = "members"
	bMemberOf        = "memberof"
	bLinks           = "links"
	bPending         = "pending"
	bAudit           = "audit"
	bDocs            = "docs"
)

func allBuckets() []string {
	return []string{bIdentities, bTombstones, bUserNames, bExternalIDs, bTombExternalIDs, bGroups,
		bGroupNames, bMembers, bMemberOf, bLinks, bPending, bAudit, bDocs}
}

// Store is a store.Store in one bbolt file.
type Store struct {
	db  *bbolt.DB
	now func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store file at path, with mode 0600
// and its parent directory. It fails with bbolt's ErrTimeout after about a
// second if another process holds the file.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store/bolt: create directory: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets() {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store/bolt: init %s: %w", path, err)
	}
	return &Store{db: db, now: time.Now}, nil
}

// Close releases the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store/bolt: close: %w", err)
	}
	return nil
}

// clock returns the store's notion of now: UTC, no monotonic reading.
func (s *Store) clock() time.Time { return s.now().UTC() }

func (s *Store) view(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// ---- records ----

type identityRec struct {
	ID           string    `json:"id"`
	UserName     string    `json:"userName"`
	ExternalID   string    `json:"externalId,omitempty"`
	Active       bool      `json:"active"`
	Deleted      bool      `json:"deleted,omitempty"`
	Resource     []byte    `json:"resource"` // []byte, not RawMessage: kept byte-for-byte
	Version      int64     `json:"version"`
	Created      time.Time `json:"created"`
	Modified     time.Time `json:"modified"`
	PendingSince time.Time `json:"pendingSince,omitzero"`
}

func recFromIdentity(id *store.Identity) *identityRec {
	return &identityRec{
		ID: id.ID, UserName: id.UserName, ExternalID: id.ExternalID,
		Active: id.Active, Deleted: id.Deleted, Resource: bytes.Clone(id.Resource),
		Version: id.Version, Created: id.Created.UTC(), Modified: id.Modified.UTC(),
	}
}

func (r *identityRec) identity() *store.Identity {
	return &store.Identity{
		ID: r.ID, UserName: r.UserName, ExternalID: r.ExternalID,
		Active: r.Active, Deleted: r.Deleted, Resource: json.RawMessage(r.Resource),
		Version: r.Version, Created: r.Created, Modified: r.Modified,
	}
}

type groupRec struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"displayName"`
	ExternalID  string    `json:"externalId,omitempty"`
	Resource    []byte    `json:"resource"`
	Version     int64     `json:"version"`
	Created     time.Time `json:"created"`
	Modified    time.Time `json:"modified"`
}

func (r *groupRec) group() *store.Group {
	return &store.Group{
		ID: r.ID, DisplayName: r.DisplayName, ExternalID: r.ExternalID,
		Resource: json.RawMessage(r.Resource), Version: r.Version,
		Created: r.Created, Modified: r.Modified,
	}
}

type linkRec struct {
	IdentityID    string    `json:"identityId"`
	Target        string    `json:"target"`
	LearnerID     string    `json:"learnerId"`
	ExternalID    string    `json:"externalId"`
	SyncedVersion int64     `json:"syncedVersion"`
	Hash          string    `json:"hash"`
	Applied       []string  `json:"applied,omitempty"`
	Updated       time.Time `json:"updated"`
}

func putJSON(b *bbolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return b.Put([]byte(key), data)
}

func getJSON(b *bbolt.Bucket, key string, v any) (bool, error) {
	data := b.Get([]byte(key))
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %q: %w", key, err)
	}
	return true, nil
}

func notFound(kind, id string) error { return fmt.Errorf("%s %q: %w", kind, id, store.ErrNotFound) }

func conflict(kind, id string, want, have int64) error {
	return fmt.Errorf("%s %q at version %d, expected %d: %w", kind, id, have, want, store.ErrVersionConflict)
}

func limitOr(n int) int {
	if n <= 0 {
		return defaultLimit
	}
	return n
}

// ---- identities ----

// loadIdentity finds a live identity or a tombstone.
func loadIdentity(tx *bbolt.Tx, id string) (*identityRec, error) {
	var r identityRec
	for _, name := range []string{bIdentities, bTombstones} {
		ok, err := getJSON(tx.Bucket([]byte(name)), id, &r)
		if err != nil {
			return nil, err
		}
		if ok {
			return &r, nil
		}
	}
	return nil, nil
}

func loadLive(tx *bbolt.Tx, id string) (*identityRec, error) {
	var r identityRec
	ok, err := getJSON(tx.Bucket([]byte(bIdentities)), id, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

func saveIdentity(tx *bbolt.Tx, r *identityRec) error {
	live, dead := tx.Bucket([]byte(bIdentities)), tx.Bucket([]byte(bTombstones))
	if r.Deleted {
		if err := live.Delete([]byte(r.ID)); err != nil {
			return err
		}
		return putJSON(dead, r.ID, r)
	}
	return putJSON(live, r.ID, r)
}

func pendingKey(since time.Time, id string) []byte {
	return append([]byte(since.UTC().Format(timeKey)+"\x00"), id...)
}

// markPending moves r's pending entry to since; the caller saves r.
func markPending(tx *bbolt.Tx, r *identityRec, since time.Time) error {
	b := tx.Bucket([]byte(bPending))
	if !r.PendingSince.IsZero() {
		if err := b.Delete(pendingKey(r.PendingSince, r.ID)); err != nil {
			return err
		}
	}
	r.PendingSince = since
	return b.Put(pendingKey(since, r.ID), []byte(strconv.FormatInt(r.Version, 10)))
}

func indexExternalID(tx *bbolt.Tx, ext, id string, add bool) error {
	return indexIn(tx, bExternalIDs, ext, id, add)
}

// indexIn adds or removes id under ext in the index bucket named index.
func indexIn(tx *bbolt.Tx, index, ext, id string, add bool) error {
	if ext == "" {
		return nil
	}
	root := tx.Bucket([]byte(index))
	if !add {
		b := root.Bucket([]byte(ext))
		if b == nil {
			return nil
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		if k, _ := b.Cursor().First(); k == nil {
			return root.DeleteBucket([]byte(ext))
		}
		return nil
	}
	b, err := root.CreateBucketIfNotExists([]byte(ext))
	if err != nil {
		return err
	}
	return b.Put([]byte(id), []byte(marker))
}

// CreateIdentity implements store.Identities. An ID held by a tombstone is
// taken too (ErrExists), so an identity's versions never restart.
func (s *Store) CreateIdentity(ctx context.Context, id *store.Identity) error {
	if id.ID == "" || id.UserName == "" {
		return errors.New("store/bolt: create identity: empty id or userName")
	}
	now := s.clock()
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := loadIdentity(tx, id.ID)
		if err != nil {
			return err
		}
		if old != nil {
			return fmt.Errorf("identity %q: %w", id.ID, store.ErrExists)
		}
		names := tx.Bucket([]byte(bUserNames))
		folded := []byte(store.FoldUserName(id.UserName))
		if names.Get(folded) != nil {
			return fmt.Errorf("identity %q: %w", id.ID, store.ErrUserNameTaken)
		}
		r := recFromIdentity(id)
		r.Deleted, r.Version, r.Created, r.Modified = false, 1, now, now
		if err := names.Put(folded, []byte(r.ID)); err != nil {
			return err
		}
		if err := indexExternalID(tx, r.ExternalID, r.ID, true); err != nil {
			return err
		}
		if err := markPending(tx, r, now); err != nil {
			return err
		}
		return saveIdentity(tx, r)
	})
	if err != nil {
		return fmt.Errorf("store/bolt: create identity: %w", err)
	}
	id.Deleted, id.Version, id.Created, id.Modified = false, 1, now, now
	return nil
}

// GetIdentity implements store.Identities.
func (s *Store) GetIdentity(ctx context.Context, id string) (*store.Identity, error) {
	var out *store.Identity
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		r, err := loadIdentity(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound("identity", id)
		}
		out = r.identity()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: get identity: %w", err)
	}
	return out, nil
}

// GetIdentityByUserName implements store.Identities.
func (s *Store) GetIdentityByUserName(ctx context.Context, userName string) (*store.Identity, error) {
	var out *store.Identity
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		id := tx.Bucket([]byte(bUserNames)).Get([]byte(store.FoldUserName(userName)))
		if id == nil {
			return fmt.Errorf("userName: %w", store.ErrNotFound)
		}
		r, err := loadLive(tx, string(id))
		if err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("userName index names missing identity %q: %w", id, store.ErrNotFound)
		}
		out = r.identity()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: get identity by userName: %w", err)
	}
	return out, nil
}

// FindIdentitiesByExternalID implements store.Identities; results are in ID
// order.
func (s *Store) FindIdentitiesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error) {
	var out []*store.Identity
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if externalID == "" {
			return nil
		}
		b := tx.Bucket([]byte(bExternalIDs)).Bucket([]byte(externalID))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			r, err := loadLive(tx, string(k))
			if err != nil {
				return err
			}
			if r != nil {
				out = append(out, r.identity())
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: find identities by externalId: %w", err)
	}
	return out, nil
}

// FindTombstonesByExternalID implements store.Identities; results are in
// ID order.
func (s *Store) FindTombstonesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error) {
	var out []*store.Identity
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if externalID == "" {
			return nil
		}
		b := tx.Bucket([]byte(bTombExternalIDs)).Bucket([]byte(externalID))
		if b == nil {
			return nil
		}
		dead := tx.Bucket([]byte(bTombstones))
		return b.ForEach(func(k, _ []byte) error {
			var r identityRec
			ok, err := getJSON(dead, string(k), &r)
			if err != nil {
				return err
			}
			if ok {
				out = append(out, r.identity())
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: find tombstones by externalId: %w", err)
	}
	return out, nil
}

// UpdateIdentity implements store.Identities. Created is kept from the
// stored identity; Modified is set to now.
func (s *Store) UpdateIdentity(ctx context.Context, id *store.Identity, expectedVersion int64) error {
	if id.UserName == "" {
		return errors.New("store/bolt: update identity: empty userName")
	}
	now := s.clock()
	var created time.Time
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := loadLive(tx, id.ID)
		if err != nil {
			return err
		}
		if old == nil {
			return notFound("identity", id.ID)
		}
		if old.Version != expectedVersion {
			return conflict("identity", id.ID, expectedVersion, old.Version)
		}
		names := tx.Bucket([]byte(bUserNames))
		oldFold, newFold := []byte(store.FoldUserName(old.UserName)), []byte(store.FoldUserName(id.UserName))
		if !bytes.Equal(oldFold, newFold) {
			if names.Get(newFold) != nil {
				return fmt.Errorf("identity %q: %w", id.ID, store.ErrUserNameTaken)
			}
			if err := names.Delete(oldFold); err != nil {
				return err
			}
			if err := names.Put(newFold, []byte(id.ID)); err != nil {
				return err
			}
		}
		if old.ExternalID != id.ExternalID {
			if err := indexExternalID(tx, old.ExternalID, id.ID, false); err != nil {
				return err
			}
			if err := indexExternalID(tx, id.ExternalID, id.ID, true); err != nil {
				return err
			}
		}
		r := recFromIdentity(id)
		r.Deleted, r.Version, r.Created, r.Modified = false, expectedVersion+1, old.Created, now
		r.PendingSince = old.PendingSince
		created = old.Created
		if err := markPending(tx, r, now); err != nil {
			return err
		}
		return saveIdentity(tx, r)
	})
	if err != nil {
		return fmt.Errorf("store/bolt: update identity: %w", err)
	}
	id.Deleted, id.Version, id.Created, id.Modified = false, expectedVersion+1, created, now
	return nil
}

// DeleteIdentity implements store.Identities. The groups the identity
// leaves keep their versions: a group's version tracks writes to the group.
func (s *Store) DeleteIdentity(ctx context.Context, id string, expectedVersion int64) (*store.Identity, error) {
	now := s.clock()
	var out *store.Identity
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := loadLive(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound("identity", id)
		}
		if r.Version != expectedVersion {
			return conflict("identity", id, expectedVersion, r.Version)
		}
		if err := tx.Bucket([]byte(bUserNames)).Delete([]byte(store.FoldUserName(r.UserName))); err != nil {
			return err
		}
		if err := indexExternalID(tx, r.ExternalID, id, false); err != nil {
			return err
		}
		if err := indexIn(tx, bTombExternalIDs, r.ExternalID, id, true); err != nil {
			return err
		}
		if _, err := dropMemberships(tx, bMemberOf, bMembers, id); err != nil {
			return err
		}
		r.Deleted, r.Version, r.Modified = true, r.Version+1, now
		if err := markPending(tx, r, now); err != nil {
			return err
		}
		out = r.identity()
		return saveIdentity(tx, r)
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: delete identity: %w", err)
	}
	return out, nil
}

// ListIdentities implements store.Identities. The cursor is the last ID of
// the previous page.
func (s *Store) ListIdentities(ctx context.Context, cursor string, limit int) (store.Page[*store.Identity], error) {
	var page store.Page[*store.Identity]
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		page.Items, page.Next, err = listAfter(tx.Bucket([]byte(bIdentities)), cursor, limitOr(limit), func(v []byte) (*store.Identity, error) {
			var r identityRec
			if err := json.Unmarshal(v, &r); err != nil {
				return nil, err
			}
			return r.identity(), nil
		})
		return err
	})
	if err != nil {
		return page, fmt.Errorf("store/bolt: list identities: %w", err)
	}
	return page, nil
}

// listAfter reads up to limit values with keys after cursor; next is the
// last key read when more follow.
func listAfter[T any](b *bbolt.Bucket, cursor string, limit int, decode func([]byte) (T, error)) (items []T, next string, err error) {
	c := b.Cursor()
	k, v := c.First()
	if cursor != "" {
		k, v = c.Seek([]byte(cursor))
		if k != nil && string(k) == cursor {
			k, v = c.Next()
		}
	}
	var last []byte
	for ; k != nil; k, v = c.Next() {
		if len(items) == limit {
			return items, string(last), nil
		}
		item, err := decode(v)
		if err != nil {
			return nil, "", fmt.Errorf("decode %q: %w", k, err)
		}
		items = append(items, item)
		last = k
	}
	return items, "", nil
}

// CountIdentities implements store.Identities.
func (s *Store) CountIdentities(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		n = tx.Bucket([]byte(bIdentities)).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store/bolt: count identities: %w", err)
	}
	return n, nil
}

// ---- groups and memberships ----

func loadGroup(tx *bbolt.Tx, id string) (*groupRec, error) {
	var r groupRec
	ok, err := getJSON(tx.Bucket([]byte(bGroups)), id, &r)
	if err != nil || !ok {
		return nil, err
	}
	return &r, nil
}

func isMember(tx *bbolt.Tx, gid, uid string) bool {
	b := tx.Bucket([]byte(bMembers)).Bucket([]byte(gid))
	return b != nil && b.Get([]byte(uid)) != nil
}

func setMembership(tx *bbolt.Tx, gid, uid string, present bool) error {
	pairs := []struct {
		root     string
		sub, key []byte
	}{
		{bMembers, []byte(gid), []byte(uid)},
		{bMemberOf, []byte(uid), []byte(gid)},
	}
	for _, p := range pairs {
		root := tx.Bucket([]byte(p.root))
		if present {
			b, err := root.CreateBucketIfNotExists(p.sub)
			if err != nil {
				return err
			}
			if err := b.Put(p.key, []byte(marker)); err != nil {
				return err
			}
			continue
		}
		if b := root.Bucket(p.sub); b != nil {
			if err := b.Delete(p.key); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropMemberships drops owner's nested bucket in side and the matching
// entries in the other direction, returning the ids on the other side.
func dropMemberships(tx *bbolt.Tx, side, other string, owner string) ([]string, error) {
	b := tx.Bucket([]byte(side)).Bucket([]byte(owner))
	if b == nil {
		return nil, nil
	}
	var ids []string
	if err := b.ForEach(func(k, _ []byte) error { ids = append(ids, string(k)); return nil }); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if ob := tx.Bucket([]byte(other)).Bucket([]byte(id)); ob != nil {
			if err := ob.Delete([]byte(owner)); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.Bucket([]byte(side)).DeleteBucket([]byte(owner)); err != nil {
		return nil, err
	}
	return ids, nil
}

// bump gives a live identity a new version for a membership change made at
// t, marking it pending since t.
func bump(tx *bbolt.Tx, uid string, t time.Time) (store.Changed, error) {
	r, err := loadLive(tx, uid)
	if err != nil {
		return store.Changed{}, err
	}
	if r == nil {
		return store.Changed{}, notFound("identity", uid)
	}
	r.Version++
	r.Modified = t
	if err := markPending(tx, r, t); err != nil {
		return store.Changed{}, err
	}
	return store.Changed{ID: uid, Version: r.Version}, saveIdentity(tx, r)
}

// bumpMembers bumps every member of gid not in done (those this write
// already bumped for a membership change), so each is bumped once.
func bumpMembers(tx *bbolt.Tx, gid string, t time.Time, done map[string]bool) ([]store.Changed, error) {
	b := tx.Bucket([]byte(bMembers)).Bucket([]byte(gid))
	if b == nil {
		return nil, nil
	}
	var uids []string
	if err := b.ForEach(func(k, _ []byte) error { uids = append(uids, string(k)); return nil }); err != nil {
		return nil, err
	}
	var out []store.Changed
	for _, uid := range uids {
		if done[uid] {
			continue
		}
		c, err := bump(tx, uid, t)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// missingMembers returns the ids, in order and without repeats, that name
// no live identity.
func missingMembers(tx *bbolt.Tx, ids []string) []string {
	var missing []string
	live := tx.Bucket([]byte(bIdentities))
	for _, id := range ids {
		if live.Get([]byte(id)) == nil && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	return missing
}

func sortChanged(c []store.Changed) []store.Changed {
	slices.SortFunc(c, func(a, b store.Changed) int { return strings.Compare(a.ID, b.ID) })
	return c
}

// CreateGroup implements store.Groups. The returned identities are in ID
// order.
func (s *Store) CreateGroup(ctx context.Context, g *store.Group, members []string) ([]store.Changed, error) {
	if g.ID == "" || g.DisplayName == "" {
		return nil, errors.New("store/bolt: create group: empty id or displayName")
	}
	now := s.clock()
	var changed []store.Changed
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte(bGroups)).Get([]byte(g.ID)) != nil {
			return fmt.Errorf("group %q: %w", g.ID, store.ErrExists)
		}
		names := tx.Bucket([]byte(bGroupNames))
		folded := []byte(store.FoldUserName(g.DisplayName))
		if names.Get(folded) != nil {
			return fmt.Errorf("group %q: %w", g.ID, store.ErrDisplayNameTaken)
		}
		if missing := missingMembers(tx, members); len(missing) > 0 {
			return &store.MissingMembersError{IDs: missing}
		}
		r := &groupRec{ID: g.ID, DisplayName: g.DisplayName, ExternalID: g.ExternalID,
			Resource: bytes.Clone(g.Resource), Version: 1, Created: now, Modified: now}
		if err := putJSON(tx.Bucket([]byte(bGroups)), r.ID, r); err != nil {
			return err
		}
		if err := names.Put(folded, []byte(r.ID)); err != nil {
			return err
		}
		for _, uid := range members {
			if isMember(tx, g.ID, uid) {
				continue // a repeated id
			}
			if err := setMembership(tx, g.ID, uid, true); err != nil {
				return err
			}
			c, err := bump(tx, uid, now)
			if err != nil {
				return err
			}
			changed = append(changed, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: create group: %w", err)
	}
	g.Version, g.Created, g.Modified = 1, now, now
	return sortChanged(changed), nil
}

// GetGroup implements store.Groups.
func (s *Store) GetGroup(ctx context.Context, id string) (*store.Group, error) {
	var out *store.Group
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		r, err := loadGroup(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound("group", id)
		}
		out = r.group()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: get group: %w", err)
	}
	return out, nil
}

// GetGroupByDisplayName implements store.Groups.
func (s *Store) GetGroupByDisplayName(ctx context.Context, displayName string) (*store.Group, error) {
	var out *store.Group
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		id := tx.Bucket([]byte(bGroupNames)).Get([]byte(store.FoldUserName(displayName)))
		if id == nil {
			return fmt.Errorf("displayName: %w", store.ErrNotFound)
		}
		r, err := loadGroup(tx, string(id))
		if err != nil {
			return err
		}
		if r == nil {
			return fmt.Errorf("displayName index names missing group %q: %w", id, store.ErrNotFound)
		}
		out = r.group()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: get group by displayName: %w", err)
	}
	return out, nil
}

// UpdateGroup implements store.Groups. Adds are applied before removes, so
// an id in both ends up not a member. A rename bumps the remaining members
// in the same transaction, so it is atomic. The returned identities are in
// ID order.
func (s *Store) UpdateGroup(ctx context.Context, g *store.Group, expectedVersion int64, add, remove []string) ([]store.Changed, error) {
	if g.DisplayName == "" {
		return nil, errors.New("store/bolt: update group: empty displayName")
	}
	now := s.clock()
	var changed []store.Changed
	var created time.Time
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		old, err := loadGroup(tx, g.ID)
		if err != nil {
			return err
		}
		if old == nil {
			return notFound("group", g.ID)
		}
		if old.Version != expectedVersion {
			return conflict("group", g.ID, expectedVersion, old.Version)
		}
		names := tx.Bucket([]byte(bGroupNames))
		oldFold, newFold := []byte(store.FoldUserName(old.DisplayName)), []byte(store.FoldUserName(g.DisplayName))
		if !bytes.Equal(oldFold, newFold) {
			if names.Get(newFold) != nil {
				return fmt.Errorf("group %q: %w", g.ID, store.ErrDisplayNameTaken)
			}
			if err := names.Delete(oldFold); err != nil {
				return err
			}
			if err := names.Put(newFold, []byte(g.ID)); err != nil {
				return err
			}
		}
		if missing := missingMembers(tx, add); len(missing) > 0 {
			return &store.MissingMembersError{IDs: missing}
		}
		// Net effect per identity: final membership against the current one.
		final := map[string]bool{}
		for _, uid := range add {
			final[uid] = true
		}
		for _, uid := range remove {
			final[uid] = false
		}
		for _, uid := range slices.Sorted(maps.Keys(final)) {
			if isMember(tx, g.ID, uid) == final[uid] {
				continue
			}
			if err := setMembership(tx, g.ID, uid, final[uid]); err != nil {
				return err
			}
			c, err := bump(tx, uid, now)
			if err != nil {
				return err
			}
			changed = append(changed, c)
		}
		if old.DisplayName != g.DisplayName {
			// Every member's projected groups carry the name.
			bumped := map[string]bool{}
			for _, c := range changed {
				bumped[c.ID] = true
			}
			more, err := bumpMembers(tx, g.ID, now, bumped)
			if err != nil {
				return err
			}
			changed = append(changed, more...)
		}
		r := &groupRec{ID: g.ID, DisplayName: g.DisplayName, ExternalID: g.ExternalID,
			Resource: bytes.Clone(g.Resource), Version: expectedVersion + 1, Created: old.Created, Modified: now}
		created = old.Created
		return putJSON(tx.Bucket([]byte(bGroups)), r.ID, r)
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: update group: %w", err)
	}
	g.Version, g.Created, g.Modified = expectedVersion+1, created, now
	return sortChanged(changed), nil
}

// DeleteGroup implements store.Groups.
func (s *Store) DeleteGroup(ctx context.Context, id string) ([]store.Changed, error) {
	now := s.clock()
	var changed []store.Changed
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := loadGroup(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound("group", id)
		}
		uids, err := dropMemberships(tx, bMembers, bMemberOf, id)
		if err != nil {
			return err
		}
		for _, uid := range uids {
			c, err := bump(tx, uid, now)
			if err != nil {
				return err
			}
			changed = append(changed, c)
		}
		if err := tx.Bucket([]byte(bGroupNames)).Delete([]byte(store.FoldUserName(r.DisplayName))); err != nil {
			return err
		}
		return tx.Bucket([]byte(bGroups)).Delete([]byte(id))
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: delete group: %w", err)
	}
	return sortChanged(changed), nil
}

// ListGroups implements store.Groups. The cursor is the last ID of the
// previous page.
func (s *Store) ListGroups(ctx context.Context, cursor string, limit int) (store.Page[*store.Group], error) {
	var page store.Page[*store.Group]
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		page.Items, page.Next, err = listAfter(tx.Bucket([]byte(bGroups)), cursor, limitOr(limit), func(v []byte) (*store.Group, error) {
			var r groupRec
			if err := json.Unmarshal(v, &r); err != nil {
				return nil, err
			}
			return r.group(), nil
		})
		return err
	})
	if err != nil {
		return page, fmt.Errorf("store/bolt: list groups: %w", err)
	}
	return page, nil
}

// CountGroups implements store.Groups.
func (s *Store) CountGroups(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		n = tx.Bucket([]byte(bGroups)).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store/bolt: count groups: %w", err)
	}
	return n, nil
}

// Members implements store.Groups: in UserID order, UserDisplay is the
// identity's userName. ErrNotFound for an unknown group.
func (s *Store) Members(ctx context.Context, groupID string) ([]store.Member, error) {
	var out []store.Member
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte(bGroups)).Get([]byte(groupID)) == nil {
			return notFound("group", groupID)
		}
		b := tx.Bucket([]byte(bMembers)).Bucket([]byte(groupID))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			r, err := loadLive(tx, string(k))
			if err != nil || r == nil {
				return err
			}
			out = append(out, store.Member{GroupID: groupID, UserID: r.ID, UserDisplay: r.UserName})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: members: %w", err)
	}
	return out, nil
}

// GroupsOf implements store.Groups: in GroupID order. ErrNotFound for an
// unknown identity; a tombstone has no groups.
func (s *Store) GroupsOf(ctx context.Context, userID string) ([]store.Member, error) {
	var out []store.Member
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		r, err := loadIdentity(tx, userID)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound("identity", userID)
		}
		b := tx.Bucket([]byte(bMemberOf)).Bucket([]byte(userID))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			g, err := loadGroup(tx, string(k))
			if err != nil || g == nil {
				return err
			}
			out = append(out, store.Member{GroupID: g.ID, GroupName: g.DisplayName, UserID: userID, UserDisplay: r.UserName})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: groups of: %w", err)
	}
	return out, nil
}

// ---- links ----

func (r *linkRec) link() *store.Link {
	return &store.Link{IdentityID: r.IdentityID, Target: r.Target, LearnerID: r.LearnerID,
		ExternalID: r.ExternalID, SyncedVersion: r.SyncedVersion, Hash: r.Hash,
		Applied: r.Applied, Updated: r.Updated}
}

// GetLink implements store.Links.
func (s *Store) GetLink(ctx context.Context, identityID, target string) (*store.Link, error) {
	var out *store.Link
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bLinks)).Bucket([]byte(target))
		var r linkRec
		if b != nil {
			ok, err := getJSON(b, identityID, &r)
			if err != nil {
				return err
			}
			if ok {
				out = r.link()
				return nil
			}
		}
		return fmt.Errorf("link %q/%q: %w", identityID, target, store.ErrNotFound)
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: get link: %w", err)
	}
	return out, nil
}

// PutLink implements store.Links. Updated is set to now when zero.
func (s *Store) PutLink(ctx context.Context, l *store.Link) error {
	if l.IdentityID == "" || l.Target == "" {
		return errors.New("store/bolt: put link: empty identity id or target")
	}
	updated := l.Updated.UTC()
	if l.Updated.IsZero() {
		updated = s.clock()
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.Bucket([]byte(bLinks)).CreateBucketIfNotExists([]byte(l.Target))
		if err != nil {
			return err
		}
		var old linkRec
		ok, err := getJSON(b, l.IdentityID, &old)
		if err != nil {
			return err
		}
		if ok && old.SyncedVersion > l.SyncedVersion {
			return fmt.Errorf("link %q/%q synced at %d, not %d: %w", l.IdentityID, l.Target, old.SyncedVersion, l.SyncedVersion, store.ErrVersionConflict)
		}
		return putJSON(b, l.IdentityID, &linkRec{IdentityID: l.IdentityID, Target: l.Target,
			LearnerID: l.LearnerID, ExternalID: l.ExternalID, SyncedVersion: l.SyncedVersion,
			Hash: l.Hash, Applied: slices.Clone(l.Applied), Updated: updated})
	})
	if err != nil {
		return fmt.Errorf("store/bolt: put link: %w", err)
	}
	l.Updated = updated
	return nil
}

// ListLinks implements store.Links, in IdentityID order; the cursor is the
// last IdentityID of the previous page.
func (s *Store) ListLinks(ctx context.Context, target, cursor string, limit int) (store.Page[*store.Link], error) {
	var page store.Page[*store.Link]
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bLinks)).Bucket([]byte(target))
		if b == nil {
			return nil
		}
		var err error
		page.Items, page.Next, err = listAfter(b, cursor, limitOr(limit), func(v []byte) (*store.Link, error) {
			var r linkRec
			if err := json.Unmarshal(v, &r); err != nil {
				return nil, err
			}
			return r.link(), nil
		})
		return err
	})
	if err != nil {
		return page, fmt.Errorf("store/bolt: list links: %w", err)
	}
	return page, nil
}

// ---- pending ----

// ListPending implements store.Sync, oldest first.
func (s *Store) ListPending(ctx context.Context, olderThan time.Time, limit int) ([]store.Pending, error) {
	limit = limitOr(limit)
	bound := []byte(olderThan.UTC().Format(timeKey))
	var out []store.Pending
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bPending)).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) <= len(timeKey) || bytes.Compare(k[:len(timeKey)], bound) >= 0 {
				break
			}
			since, err := time.Parse(time.RFC3339Nano, string(k[:len(timeKey)]))
			if err != nil {
				return fmt.Errorf("pending key %q: %w", k, err)
			}
			ver, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("pending key %q: %w", k, err)
			}
			out = append(out, store.Pending{ID: string(k[len(timeKey)+1:]), Version: ver, Since: since})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: list pending: %w", err)
	}
	return out, nil
}

// FinishGroupWrites implements store.Sync: every group write is one
// transaction here, so none is ever left unfinished.
func (s *Store) FinishGroupWrites(ctx context.Context, _ time.Time, _ int) ([]store.Changed, error) {
	return nil, ctx.Err()
}

// ClearPending implements store.Sync: a no-op when the identity has moved
// past version; ErrNotFound when there is no such identity.
func (s *Store) ClearPending(ctx context.Context, id string, version int64) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		r, err := loadIdentity(tx, id)
		if err != nil {
			return err
		}
		if r == nil {
			return notFound("identity", id)
		}
		if r.Version != version || r.PendingSince.IsZero() {
			return nil
		}
		if err := tx.Bucket([]byte(bPending)).Delete(pendingKey(r.PendingSince, id)); err != nil {
			return err
		}
		r.PendingSince = time.Time{}
		return saveIdentity(tx, r)
	})
	if err != nil {
		return fmt.Errorf("store/bolt: clear pending: %w", err)
	}
	return nil
}

// ---- audit ----

type auditRec struct {
	IdentityID    string    `json:"identityId"`
	Time          time.Time `json:"time"`
	Target        string    `json:"target,omitempty"`
	Actor         string    `json:"actor,omitempty"`
	Action        string    `json:"action,omitempty"`
	Detail        string    `json:"detail,omitempty"`
	SourceVersion int64     `json:"sourceVersion,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	RequestID     string    `json:"requestId,omitempty"`
	Result        string    `json:"result,omitempty"`
}

// auditBucket names an identity's audit bucket; the prefix allows an empty
// IdentityID (bbolt refuses empty names).
func auditBucket(identityID string) []byte { return []byte("#" + identityID) }

// AppendAudit implements store.Audit. A zero Time is set to now.
func (s *Store) AppendAudit(ctx context.Context, r *store.AuditRecord) error {
	t := r.Time.UTC()
	if r.Time.IsZero() {
		t = s.clock()
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b, err := tx.Bucket([]byte(bAudit)).CreateBucketIfNotExists(auditBucket(r.IdentityID))
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		key := fmt.Sprintf("%s\x00%016x", t.Format(timeKey), seq)
		rec := auditRec(*r)
		rec.Time = t
		return putJSON(b, key, &rec)
	})
	if err != nil {
		return fmt.Errorf("store/bolt: append audit: %w", err)
	}
	r.Time = t
	return nil
}

// ListAudit implements store.Audit, newest first; records with the same
// time come newest-appended first.
func (s *Store) ListAudit(ctx context.Context, identityID string, limit int) ([]store.AuditRecord, error) {
	limit = limitOr(limit)
	var out []store.AuditRecord
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bAudit)).Bucket(auditBucket(identityID))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var r auditRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode audit %q: %w", k, err)
			}
			out = append(out, store.AuditRecord(r))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: list audit: %w", err)
	}
	return out, nil
}
