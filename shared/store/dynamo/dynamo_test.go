package dynamo_test

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/dynamo"
	"github.com/learnerlink/learnerlink/shared/store/storetest"
	"github.com/learnerlink/learnerlink/shared/testenv"
)

// newTable creates a uniquely named table on DynamoDB Local and drops it
// after the test; the server is shared with other suites.
func newTable(t testing.TB) (*dynamodb.Client, string) {
	t.Helper()
	client := testenv.DynamoClient(t)
	return client, testenv.StoreTable(t, client, "learnerlink-storetest-")
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		client, table := newTable(t)
		return dynamo.New(client, table)
	})
}

func TestCreateTableIsIdempotent(t *testing.T) {
	client, table := newTable(t)
	if err := dynamo.CreateTable(t.Context(), client, table); err != nil {
		t.Fatalf("second CreateTable: %v", err)
	}
}

// TestLargeMembership crosses the 100-item transaction limit: membership
// changes are applied in several chunks yet every identity is bumped once.
func TestLargeMembership(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	client, table := newTable(t)
	s := dynamo.New(client, table)
	const n = 70 // 3 chunks: 32 in the first, 33 in later ones
	var ids []string
	for i := range n {
		id := fmt.Sprintf("u%03d", i)
		ids = append(ids, id)
		if err := s.CreateIdentity(ctx, &store.Identity{ID: id, UserName: id + "@example.com", Active: true, Resource: []byte(`{}`)}); err != nil {
			t.Fatalf("CreateIdentity: %v", err)
		}
	}
	steps := []struct {
		name        string
		run         func() ([]store.Changed, error)
		wantChanged int
		wantMembers int
		wantVersion int64
	}{
		{"create with all", func() ([]store.Changed, error) {
			return s.CreateGroup(ctx, &store.Group{ID: "g1", DisplayName: "Big"}, ids)
		}, n, n, 2},
		{"remove most", func() ([]store.Changed, error) {
			return s.UpdateGroup(ctx, &store.Group{ID: "g1", DisplayName: "Big"}, 1, nil, ids[10:])
		}, n - 10, 10, 3},
		{"delete group", func() ([]store.Changed, error) { return s.DeleteGroup(ctx, "g1") }, 10, -1, 3},
	}
	for _, st := range steps {
		changed, err := st.run()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if len(changed) != st.wantChanged {
			t.Errorf("%s: %d changed, want %d", st.name, len(changed), st.wantChanged)
		}
		if st.wantMembers >= 0 {
			m, err := s.Members(ctx, "g1")
			if err != nil || len(m) != st.wantMembers {
				t.Errorf("%s: Members = %d, %v; want %d", st.name, len(m), err, st.wantMembers)
			}
		}
		for _, c := range changed {
			if c.Version != st.wantVersion {
				t.Errorf("%s: %s at version %d, want %d", st.name, c.ID, c.Version, st.wantVersion)
				break
			}
		}
	}
	// An identity in more groups than one transaction can leave (49).
	for i := range 50 {
		if _, err := s.CreateGroup(ctx, &store.Group{ID: fmt.Sprintf("g%03d", i), DisplayName: fmt.Sprint("G", i)}, []string{"u000"}); err != nil {
			t.Fatalf("CreateGroup: %v", err)
		}
	}
	u, err := s.GetIdentity(ctx, "u000")
	if err != nil {
		t.Fatalf("GetIdentity: %v", err)
	}
	if _, err := s.DeleteIdentity(ctx, "u000", u.Version); err != nil {
		t.Fatalf("DeleteIdentity: %v", err)
	}
	if of, err := s.GroupsOf(ctx, "u000"); err != nil || len(of) != 0 {
		t.Errorf("GroupsOf(deleted) = %d, %v", len(of), err)
	}
	if m, err := s.Members(ctx, "g049"); err != nil || len(m) != 0 {
		t.Errorf("Members(g049) = %v, %v", m, err)
	}
}
