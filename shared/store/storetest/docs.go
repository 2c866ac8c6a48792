package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/store"
)

// maxDocValue is the contract's limit on Doc.Value.
const maxDocValue = 64 << 10

// putDoc writes a doc and returns it as written back by the store.
func putDoc(t *testing.T, s store.Store, key string, value []byte, expires time.Time, expected int64) *store.Doc {
	t.Helper()
	d := &store.Doc{Key: key, Value: value, Expires: expires}
	if err := s.PutDoc(t.Context(), d, expected); err != nil {
		t.Fatalf("PutDoc(%s, %d): %v", key, expected, err)
	}
	return d
}

func checkDoc(t *testing.T, got *store.Doc, key string, value []byte, version int64) {
	t.Helper()
	if got.Key != key || got.Version != version || !bytes.Equal(got.Value, value) {
		t.Errorf("doc = %s v%d %q, want %s v%d %q", got.Key, got.Version, got.Value, key, version, value)
	}
}

// plainErr says err is a refusal of bad input, not a store outcome.
func plainErr(t *testing.T, what string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s: accepted", what)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrVersionConflict):
		t.Errorf("%s: err = %v, want a plain error", what, err)
	}
}

func docKeys(items []*store.Doc) []string {
	return ids(items, func(d *store.Doc) string { return d.Key })
}

func testDocWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	const key = "recon/absorb"
	binary := []byte{0, 1, 0xfe, 0xff, '\n', 'Z', 0xc3} // not UTF-8, not JSON
	big := bytes.Repeat([]byte{0xa5}, maxDocValue)
	steps := []struct {
		name        string
		value       []byte
		expected    int64
		wantErr     error // nil: the put succeeds
		wantVersion int64 // stored afterwards
		wantValue   []byte
	}{
		{"update missing", []byte("x"), 1, store.ErrVersionConflict, 0, nil},
		{"create", []byte(`{"a":1}`), 0, nil, 1, []byte(`{"a":1}`)},
		{"create again", []byte("x"), 0, store.ErrVersionConflict, 1, []byte(`{"a":1}`)},
		{"update from future version", []byte("x"), 2, store.ErrVersionConflict, 1, []byte(`{"a":1}`)},
		{"update", binary, 1, nil, 2, binary},
		{"stale update", []byte("x"), 1, store.ErrVersionConflict, 2, binary},
		{"empty value", []byte{}, 2, nil, 3, nil},
		{"largest value", big, 3, nil, 4, big},
		{"value too large", append(big, 0), 4, nil, 4, big},
	}
	for _, st := range steps {
		d := &store.Doc{Key: key, Value: bytes.Clone(st.value)}
		err := s.PutDoc(ctx, d, st.expected)
		switch {
		case st.name == "value too large":
			plainErr(t, st.name, err)
		case st.wantErr != nil:
			wantErr(t, st.name, err, st.wantErr)
		case err != nil:
			t.Fatalf("%s: PutDoc: %v", st.name, err)
		case d.Version != st.wantVersion:
			t.Errorf("%s: written back Version = %d, want %d", st.name, d.Version, st.wantVersion)
		}
		if err == nil {
			// The store keeps its own copy.
			for i := range d.Value {
				d.Value[i] = '!'
			}
		}
		got, err := s.GetDoc(ctx, key)
		if st.wantVersion == 0 {
			wantErr(t, st.name+": GetDoc", err, store.ErrNotFound)
			continue
		}
		if err != nil {
			t.Fatalf("%s: GetDoc: %v", st.name, err)
		}
		checkDoc(t, got, key, st.wantValue, st.wantVersion)
		if !got.Expires.IsZero() {
			t.Errorf("%s: Expires = %v, want zero", st.name, got.Expires)
		}
	}
	if _, err := s.GetDoc(ctx, "recon/other"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDoc(missing) = %v, want ErrNotFound", err)
	}
}

func testDocExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)

	// A doc written already expired is absent at once.
	putDoc(t, s, "seen/evt-1", []byte("1"), past, 0)
	if _, err := s.GetDoc(ctx, "seen/evt-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDoc(expired) = %v, want ErrNotFound", err)
	}
	wantErr(t, "update expired doc", s.PutDoc(ctx, &store.Doc{Key: "seen/evt-1", Value: []byte("2")}, 1), store.ErrVersionConflict)
	// Absent, so it can be created again, from version 1.
	d := putDoc(t, s, "seen/evt-1", []byte("again"), future, 0)
	if d.Version != 1 {
		t.Errorf("recreated Version = %d, want 1", d.Version)
	}
	// Expires is kept to within a second, never earlier than asked, and
	// the stored value is written back.
	if d.Expires.Before(future) || d.Expires.Sub(future) >= time.Second || d.Expires.Location() != time.UTC {
		t.Errorf("written back Expires = %v, want UTC in [%v, +1s)", d.Expires, future)
	}
	got, err := s.GetDoc(ctx, "seen/evt-1")
	if err != nil {
		t.Fatalf("GetDoc(live): %v", err)
	}
	checkDoc(t, got, "seen/evt-1", []byte("again"), 1)
	if !got.Expires.Equal(d.Expires) || got.Expires.Location() != time.UTC {
		t.Errorf("Expires = %v, want %v (UTC)", got.Expires, d.Expires)
	}
	// A live doc with an expiry blocks a create.
	wantErr(t, "create over live doc", s.PutDoc(ctx, &store.Doc{Key: "seen/evt-1"}, 0), store.ErrVersionConflict)
	// An update may drop the expiry, or set one in the past.
	putDoc(t, s, "seen/evt-1", []byte("forever"), time.Time{}, 1)
	if got, err := s.GetDoc(ctx, "seen/evt-1"); err != nil || !got.Expires.IsZero() || got.Version != 2 {
		t.Errorf("after dropping expiry: %+v, %v; want version 2, zero Expires", got, err)
	}
	putDoc(t, s, "seen/evt-1", []byte("gone"), past, 2)
	if _, err := s.GetDoc(ctx, "seen/evt-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetDoc(expired by update) = %v, want ErrNotFound", err)
	}
	page, err := s.ListDocs(ctx, "seen", "", 0)
	if err != nil || len(page.Items) != 0 || page.Next != "" {
		t.Errorf("ListDocs(only expired) = %v, %q, %v; want empty", docKeys(page.Items), page.Next, err)
	}
}

func testDocDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	putDoc(t, s, "review/u1", []byte("a"), time.Time{}, 0)
	putDoc(t, s, "review/u1", []byte("b"), time.Time{}, 1)
	putDoc(t, s, "review/u2", []byte("c"), time.Time{}, 0)
	putDoc(t, s, "review/old", []byte("d"), time.Now().Add(-time.Hour), 0)
	tests := []struct{ name, key string }{
		{"live", "review/u1"},
		{"again", "review/u1"},
		{"never existed", "review/nobody"},
		{"expired", "review/old"},
	}
	for _, tc := range tests {
		if err := s.DeleteDoc(ctx, tc.key); err != nil {
			t.Errorf("DeleteDoc(%s) %s: %v", tc.key, tc.name, err)
		}
		if _, err := s.GetDoc(ctx, tc.key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetDoc(%s) after delete = %v, want ErrNotFound", tc.key, err)
		}
	}
	// Deleted means absent: a create starts over at version 1.
	if d := putDoc(t, s, "review/u1", []byte("e"), time.Time{}, 0); d.Version != 1 {
		t.Errorf("recreated Version = %d, want 1", d.Version)
	}
	if got, err := s.GetDoc(ctx, "review/u2"); err != nil {
		t.Errorf("neighbour lost: %v", err)
	} else {
		checkDoc(t, got, "review/u2", []byte("c"), 1)
	}
}

func testListDocsPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	past := time.Now().Add(-time.Hour)
	// Created out of order; ids with slashes and digits test byte order.
	live := []string{"a/x2", "a/x10", "a/x/y", "a/x1", "a/b", "a/x/a", "a/z"}
	for i, k := range live {
		putDoc(t, s, k, []byte(fmt.Sprint(i)), time.Time{}, 0)
	}
	// Expired among them and after the last live one; other kinds, one of
	// them sharing the prefix "a".
	for _, k := range []string{"a/c", "a/x3", "a/zz"} {
		putDoc(t, s, k, []byte("expired"), past, 0)
	}
	for _, k := range []string{"ab/a", "ab/b", "b/a", "A/a"} {
		putDoc(t, s, k, []byte("other"), time.Time{}, 0)
	}
	putDoc(t, s, "a/x1", []byte("v2"), time.Time{}, 1)

	want := slices.Sorted(slices.Values(live))
	// listWith asks for limit (maybe <= 0); pageIDs checks page sizes
	// against the limit in effect.
	listWith := func(limit int) func(string, int) (store.Page[*store.Doc], error) {
		return func(cursor string, _ int) (store.Page[*store.Doc], error) {
			return s.ListDocs(ctx, "a", cursor, limit)
		}
	}
	tests := []struct {
		limit     int
		wantSizes []int
	}{
		{1, []int{1, 1, 1, 1, 1, 1, 1}},
		{2, []int{2, 2, 2, 1}},
		{3, []int{3, 3, 1}},
		{6, []int{6, 1}},
		{7, []int{7}},
		{0, []int{7}},
		{-1, []int{7}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("limit", tc.limit), func(t *testing.T) {
			effective := tc.limit
			if effective <= 0 {
				effective = 100
			}
			got, sizes := pageIDs(t, listWith(tc.limit), func(d *store.Doc) string { return d.Key }, effective)
			if !slices.Equal(got, want) || !slices.Equal(sizes, tc.wantSizes) {
				t.Errorf("pages = %v sizes %v, want %v sizes %v", got, sizes, want, tc.wantSizes)
			}
		})
	}
	// Items are whole documents.
	page, err := s.ListDocs(ctx, "a", "a/x/y", 1)
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("ListDocs after a/x/y = %v, %v", page, err)
	}
	checkDoc(t, page.Items[0], "a/x1", []byte("v2"), 2)
	if page.Next != "a/x1" {
		t.Errorf("Next = %q, want the last key a/x1", page.Next)
	}

	kinds := []struct {
		kind string
		want []string
	}{
		{"ab", []string{"ab/a", "ab/b"}},
		{"b", []string{"b/a"}},
		{"A", []string{"A/a"}},
		{"none", nil},
	}
	for _, tc := range kinds {
		page, err := s.ListDocs(ctx, tc.kind, "", 0)
		if err != nil || !slices.Equal(docKeys(page.Items), tc.want) || page.Next != "" {
			t.Errorf("ListDocs(%s) = %v, %q, %v; want %v", tc.kind, docKeys(page.Items), page.Next, err, tc.want)
		}
	}
	bad := []struct{ name, kind, cursor string }{
		{"empty kind", "", ""},
		{"kind with slash", "a/x", ""},
		{"cursor of another kind", "a", "ab/a"},
	}
	for _, tc := range bad {
		_, err := s.ListDocs(ctx, tc.kind, tc.cursor, 0)
		plainErr(t, "ListDocs "+tc.name, err)
	}
}

func testDocBadKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	keys := []struct{ name, key string }{
		{"empty", ""},
		{"no slash", "recon"},
		{"empty kind", "/x"},
		{"empty id", "recon/"},
		{"slash only", "/"},
		{"too long", "recon/" + strings.Repeat("x", 1100)},
	}
	for _, tc := range keys {
		plainErr(t, "PutDoc "+tc.name, s.PutDoc(ctx, &store.Doc{Key: tc.key, Value: []byte("v")}, 0))
		_, err := s.GetDoc(ctx, tc.key)
		plainErr(t, "GetDoc "+tc.name, err)
		plainErr(t, "DeleteDoc "+tc.name, s.DeleteDoc(ctx, tc.key))
	}
	plainErr(t, "negative expected version", s.PutDoc(ctx, &store.Doc{Key: "recon/x"}, -1))
	plainErr(t, "value too large", s.PutDoc(ctx, &store.Doc{Key: "recon/x", Value: make([]byte, maxDocValue+1)}, 0))
	// Ids may hold slashes and the kind may be repeated in them.
	putDoc(t, s, "recon/a/b", []byte("ok"), time.Time{}, 0)
	putDoc(t, s, "recon//x", []byte("ok"), time.Time{}, 0)
	page, err := s.ListDocs(ctx, "recon", "", 0)
	if want := []string{"recon//x", "recon/a/b"}; err != nil || !slices.Equal(docKeys(page.Items), want) {
		t.Errorf("ListDocs(recon) = %v, %v; want %v", docKeys(page.Items), err, want)
	}
}

// testConcurrentDocWrites races creates, then updates from one version, of
// one key: exactly one of each wins.
func testConcurrentDocWrites(t *testing.T, s store.Store) {
	ctx := t.Context()
	const key = "checkpoint/absorb"
	for _, expected := range []int64{0, 1} {
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				errs[i] = s.PutDoc(ctx, &store.Doc{Key: key, Value: fmt.Appendf(nil, "racer %d", i)}, expected)
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("from version %d: racers %d and %d both won", expected, winner, i)
				}
				winner = i
			case !errors.Is(err, store.ErrVersionConflict):
				t.Errorf("from version %d: racer %d: %v, want nil or ErrVersionConflict", expected, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("from version %d: no racer won", expected)
		}
		got, err := s.GetDoc(ctx, key)
		if err != nil {
			t.Fatalf("GetDoc: %v", err)
		}
		checkDoc(t, got, key, fmt.Appendf(nil, "racer %d", winner), expected+1)
	}
}
