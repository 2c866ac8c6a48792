package bolt_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/store/storetest"
)

func open(t testing.TB, path string) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := open(t, filepath.Join(t.TempDir(), "store.db"))
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "store.db")
	s := open(t, path)
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode = %o, want 600", mode)
	}
	// The file is locked: a second opener fails instead of waiting forever.
	if s2, err := bolt.Open(path); !errors.Is(err, bbolt.ErrTimeout) {
		if err == nil {
			_ = s2.Close()
		}
		t.Errorf("second Open = %v, want ErrTimeout", err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "store.db")
	s := open(t, path)
	id := &store.Identity{ID: "u1", UserName: "Alice@example.com", ExternalID: "00u1", Active: true, Resource: []byte("{ \"a\": 1 }")}
	if err := s.CreateIdentity(ctx, id); err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	if _, err := s.CreateGroup(ctx, &store.Group{ID: "g1", DisplayName: "Team"}, []string{"u1"}); err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if err := s.PutLink(ctx, &store.Link{IdentityID: "u1", Target: "absorb", LearnerID: "L1", SyncedVersion: 2}); err != nil {
		t.Fatalf("PutLink: %v", err)
	}
	if err := s.AppendAudit(ctx, &store.AuditRecord{IdentityID: "u1", Action: "learner.create"}); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	defer s.Close()
	checks := []struct {
		name string
		ok   func() (bool, error)
	}{
		{"identity", func() (bool, error) {
			got, err := s.GetIdentityByUserName(ctx, "alice@example.com")
			return err == nil && got.Version == 2 && bytes.Equal(got.Resource, id.Resource) && got.Created.Equal(id.Created), err
		}},
		{"group", func() (bool, error) {
			m, err := s.Members(ctx, "g1")
			return len(m) == 1 && m[0].UserID == "u1", err
		}},
		{"link", func() (bool, error) {
			l, err := s.GetLink(ctx, "u1", "absorb")
			return err == nil && l.SyncedVersion == 2, err
		}},
		{"pending", func() (bool, error) {
			p, err := s.ListPending(ctx, id.Modified.AddDate(1, 0, 0), 10)
			return len(p) == 1 && p[0].Version == 2, err
		}},
		{"audit", func() (bool, error) {
			a, err := s.ListAudit(ctx, "u1", 10)
			return len(a) == 1 && a[0].Action == "learner.create", err
		}},
		{"counts", func() (bool, error) {
			n, err := s.CountIdentities(ctx)
			return n == 1, err
		}},
	}
	for _, c := range checks {
		if ok, err := c.ok(); !ok || err != nil {
			t.Errorf("%s after reopen: ok=%t err=%v", c.name, ok, err)
		}
	}
}

func benchStore(b *testing.B, n int) *bolt.Store {
	b.Helper()
	s := open(b, filepath.Join(b.TempDir(), "store.db"))
	b.Cleanup(func() { _ = s.Close() })
	for i := range n {
		if err := s.CreateIdentity(b.Context(), benchIdentity(i)); err != nil {
			b.Fatalf("CreateIdentity: %v", err)
		}
	}
	return s
}

func benchIdentity(i int) *store.Identity {
	name := fmt.Sprintf("user%07d@example.com", i)
	return &store.Identity{ID: fmt.Sprintf("id-%07d", i), UserName: name, ExternalID: fmt.Sprintf("00u%07d", i), Active: true,
		Resource: fmt.Appendf(nil, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"name":{"givenName":"Given","familyName":"Family"},"emails":[{"value":%q,"primary":true}],"active":true}`, name, name)}
}

// BenchmarkCreate measures CreateIdentity: one fsync'd bbolt transaction.
func BenchmarkCreate(b *testing.B) {
	s := benchStore(b, 0)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.CreateIdentity(b.Context(), benchIdentity(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdate measures UpdateIdentity (a SCIM PATCH/PUT) on one of 1000
// identities, renaming it each time.
func BenchmarkUpdate(b *testing.B) {
	const n = 1000
	s := benchStore(b, n)
	versions := make([]int64, n)
	for i := range versions {
		versions[i] = 1
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := i % n
		id := benchIdentity(k)
		id.UserName = fmt.Sprintf("renamed%d-%s", i, id.UserName)
		if err := s.UpdateIdentity(b.Context(), id, versions[k]); err != nil {
			b.Fatal(err)
		}
		versions[k] = id.Version
	}
}

// BenchmarkList measures ListIdentities pages of 100 out of 10000.
func BenchmarkList(b *testing.B) {
	const n = 10000
	s := benchStore(b, 0)
	// Bulk-load through the API in one go is not offered; creating 10000
	// identities one transaction each is the slow part of the setup.
	for i := range n {
		if err := s.CreateIdentity(b.Context(), benchIdentity(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	cursor := ""
	for b.Loop() {
		page, err := s.ListIdentities(b.Context(), cursor, 100)
		if err != nil || len(page.Items) == 0 {
			b.Fatalf("ListIdentities: %v", err)
		}
		cursor = page.Next
	}
}
