package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/learnerlink/learnerlink/shared/store"
)

// Limits on documents. maxDocKey matches the DynamoDB store's, whose sort
// key cannot exceed 1 KiB, so both stores accept the same keys.
const (
	maxDocValue = 64 << 10
	maxDocKey   = 1024
)

type docRec struct {
	Value   []byte    `json:"value"`
	Version int64     `json:"version"`
	Expires time.Time `json:"expires,omitzero"`
}

// live says whether the document still exists at now.
func (r *docRec) live(now time.Time) bool { return r.Expires.IsZero() || r.Expires.After(now) }

func (r *docRec) doc(key string) *store.Doc {
	return &store.Doc{Key: key, Value: r.Value, Version: r.Version, Expires: r.Expires}
}

// checkDocKey accepts "<kind>/<id>" with both parts non-empty; the id may
// hold further slashes.
func checkDocKey(key string) error {
	kind, id, ok := strings.Cut(key, "/")
	if !ok || kind == "" || id == "" {
		return fmt.Errorf("doc key %q: want <kind>/<id>", key)
	}
	if len(key) > maxDocKey {
		return fmt.Errorf("doc key of %d bytes: longer than %d", len(key), maxDocKey)
	}
	return nil
}

// expiry keeps an expiry to the whole second, rounded up, as the DynamoDB
// store must (its TTL attribute is epoch seconds): both stores then agree
// on when a document goes.
func expiry(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	r := t.UTC().Truncate(time.Second)
	if r.Before(t) {
		r = r.Add(time.Second)
	}
	return r
}

// GetDoc implements store.Docs.
func (s *Store) GetDoc(ctx context.Context, key string) (*store.Doc, error) {
	if err := checkDocKey(key); err != nil {
		return nil, fmt.Errorf("store/bolt: get doc: %w", err)
	}
	now := s.clock()
	var out *store.Doc
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var r docRec
		ok, err := getJSON(tx.Bucket([]byte(bDocs)), key, &r)
		if err != nil {
			return err
		}
		if !ok || !r.live(now) {
			return notFound("doc", key)
		}
		out = r.doc(key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: get doc: %w", err)
	}
	return out, nil
}

// PutDoc implements store.Docs. Expires is kept to the second, rounded up,
// and written back into d.
func (s *Store) PutDoc(ctx context.Context, d *store.Doc, expectedVersion int64) error {
	if err := checkDocKey(d.Key); err != nil {
		return fmt.Errorf("store/bolt: put doc: %w", err)
	}
	if len(d.Value) > maxDocValue {
		return fmt.Errorf("store/bolt: put doc %q: value of %d bytes: larger than %d", d.Key, len(d.Value), maxDocValue)
	}
	if expectedVersion < 0 {
		return fmt.Errorf("store/bolt: put doc %q: negative expected version %d", d.Key, expectedVersion)
	}
	now := s.clock()
	r := &docRec{Value: bytes.Clone(d.Value), Version: expectedVersion + 1, Expires: expiry(d.Expires)}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bDocs))
		var old docRec
		ok, err := getJSON(b, d.Key, &old)
		if err != nil {
			return err
		}
		// An expired document is absent: version 0.
		var have int64
		if ok && old.live(now) {
			have = old.Version
		}
		if have != expectedVersion {
			return conflict("doc", d.Key, expectedVersion, have)
		}
		return putJSON(b, d.Key, r)
	})
	if err != nil {
		return fmt.Errorf("store/bolt: put doc: %w", err)
	}
	d.Version, d.Expires = r.Version, r.Expires
	return nil
}

// DeleteDoc implements store.Docs.
func (s *Store) DeleteDoc(ctx context.Context, key string) error {
	if err := checkDocKey(key); err != nil {
		return fmt.Errorf("store/bolt: delete doc: %w", err)
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bDocs)).Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("store/bolt: delete doc: %w", err)
	}
	return nil
}

// ListDocs implements store.Docs. The cursor is the last key of the
// previous page; Next is set only when a live document follows.
func (s *Store) ListDocs(ctx context.Context, kind, cursor string, limit int) (store.Page[*store.Doc], error) {
	var page store.Page[*store.Doc]
	if kind == "" || strings.Contains(kind, "/") {
		return page, fmt.Errorf("store/bolt: list docs: bad kind %q", kind)
	}
	prefix := []byte(kind + "/")
	if cursor != "" && !bytes.HasPrefix([]byte(cursor), prefix) {
		return page, fmt.Errorf("store/bolt: list docs: cursor %q is not a %s key", cursor, kind)
	}
	limit = limitOr(limit)
	now := s.clock()
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bDocs)).Cursor()
		k, v := c.Seek(prefix)
		if cursor != "" {
			k, v = c.Seek([]byte(cursor))
			if k != nil && string(k) == cursor {
				k, v = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r docRec
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode %q: %w", k, err)
			}
			if !r.live(now) {
				continue
			}
			if len(page.Items) == limit {
				page.Next = page.Items[limit-1].Key
				return nil
			}
			page.Items = append(page.Items, r.doc(string(k)))
		}
		return nil
	})
	if err != nil {
		return store.Page[*store.Doc]{}, fmt.Errorf("store/bolt: list docs: %w", err)
	}
	return page, nil
}
