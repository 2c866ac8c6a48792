package disk

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/queue"
)

// Each (identity, target) is its own message group: a target's message in
// flight does not hold back another target's message of the same identity,
// while one target's messages stay in order, one at a time.
func TestGroupPerIdentityAndTarget(t *testing.T) {
	q := open(t, filepath.Join(t.TempDir(), "q.db"), Options{VisibilityTimeout: time.Minute})
	if err := q.Enqueue(t.Context(),
		queue.Intent{IdentityID: "x", Version: 1, Target: "a"},
		queue.Intent{IdentityID: "x", Version: 1, Target: "b"},
		queue.Intent{IdentityID: "x", Version: 2, Target: "a"},
		queue.Intent{IdentityID: "x", Version: 3},
	); err != nil {
		t.Fatal(err)
	}
	got := mustReceive(t, q, 10)
	var keys []string
	for _, m := range got {
		keys = append(keys, groupKey(m.Intent)+"/"+string(rune('0'+m.Version)))
	}
	slices.Sort(keys)
	if want := []string{"x#a/1", "x#b/1", "x/3"}; !slices.Equal(keys, want) {
		t.Fatalf("first receive %v, want %v", keys, want)
	}
	for _, m := range got {
		if err := q.Ack(t.Context(), m.Handle); err != nil {
			t.Fatal(err)
		}
	}
	next := mustReceive(t, q, 10)
	if len(next) != 1 || next[0].Target != "a" || next[0].Version != 2 {
		t.Fatalf("second receive %+v, want x#a v2", next)
	}
}
