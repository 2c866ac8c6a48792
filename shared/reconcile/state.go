package reconcile

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/store"
)

// Doc kinds.
const (
	checkpointKind = "reconcile"       // "reconcile/<target>": the run's progress
	stateKind      = "reconcilestate"  // "reconcilestate/<target>/<run>/<gen>/<n>": marks of a suspended run
	ReportKind     = "reconcilereport" // "reconcilereport/<target>-<time>": finished runs

	// allKey stands for the target in the Docs of a run over several
	// targets ("reconcile/@all", "reconcilestate/@all/…"); a target's
	// name cannot contain "@".
	allKey = "@all"
)

// Phases, in order.
const (
	phaseIdle      = ""
	phaseDirectory = "directory"
	phaseLearners  = "learners"
	phaseFinalize  = "finalize"
	phaseTargets   = "targets" // a run over several targets, after the directory
)

// checkpoint is the "reconcile/<target>" Doc: where a run stands, and the
// lease that keeps two runs of one target apart.
type checkpoint struct {
	RunID       string    `json:"runId,omitempty"`
	Phase       string    `json:"phase,omitempty"`
	Cursor      string    `json:"cursor,omitempty"`
	Started     time.Time `json:"started,omitzero"`
	Invocations int       `json:"invocations,omitempty"`
	// Directory: the run reads the directory (unassigned identities can
	// only be judged when it did, from start to end).
	Directory bool  `json:"directory,omitempty"`
	Tally     tally `json:"tally,omitzero"`
	// MarkGen names the saved marks (the invocation that saved them);
	// MarkChunks is how many Docs hold them.
	MarkGen    int `json:"markGen,omitempty"`
	MarkChunks int `json:"markChunks,omitempty"`

	Lease      string    `json:"lease,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`

	LastCompleted time.Time `json:"lastCompleted,omitzero"`
	LastReport    string    `json:"lastReport,omitempty"`

	// Parent, in a target's checkpoint, is the run over several targets
	// its run belongs to ("" for Run).
	Parent string `json:"parent,omitempty"`
	// Targets, in the checkpoint of a run over several targets, is where
	// each target stands in it.
	Targets map[string]targetProgress `json:"targets,omitempty"`
}

// targetProgress is one target's part in a run over several targets.
type targetProgress struct {
	Done   bool   `json:"done,omitempty"`
	Report string `json:"report,omitempty"` // the key of its stored report
	Error  string `json:"error,omitempty"`  // it failed in this run (its own checkpoint keeps its progress)
}

// tally is what a run has counted so far.
type tally struct {
	Counts         map[Kind]int      `json:"counts,omitempty"`
	Samples        map[Kind][]string `json:"samples,omitempty"`
	Learners       int               `json:"learners,omitempty"`
	ActiveLearners int               `json:"activeLearners,omitempty"`
	DirUsers       int               `json:"dirUsers,omitempty"`
	DirActive      int               `json:"dirActive,omitempty"`
	Enqueued       int               `json:"enqueued,omitempty"`
	Created        int               `json:"created,omitempty"`
	Deactivated    int               `json:"deactivated,omitempty"`
	Parked         int               `json:"parked,omitempty"`
	Failed         int               `json:"failed,omitempty"`
}

func (t *tally) add(k Kind, sample string, samples int) {
	if t.Counts == nil {
		t.Counts = map[Kind]int{}
	}
	t.Counts[k]++
	if sample == "" || len(t.Samples[k]) >= samples {
		return
	}
	if t.Samples == nil {
		t.Samples = map[Kind][]string{}
	}
	t.Samples[k] = append(t.Samples[k], sample)
}

// merge adds o into t.
func (t *tally) merge(o *tally, samples int) {
	for k, n := range o.Counts {
		if t.Counts == nil {
			t.Counts = map[Kind]int{}
		}
		t.Counts[k] += n
	}
	for k, ss := range o.Samples {
		for _, s := range ss {
			if len(t.Samples[k]) < samples {
				if t.Samples == nil {
					t.Samples = map[Kind][]string{}
				}
				t.Samples[k] = append(t.Samples[k], s)
			}
		}
	}
	t.Learners += o.Learners
	t.ActiveLearners += o.ActiveLearners
	t.DirUsers += o.DirUsers
	t.DirActive += o.DirActive
	t.Enqueued += o.Enqueued
	t.Created += o.Created
	t.Deactivated += o.Deactivated
	t.Parked += o.Parked
	t.Failed += o.Failed
}

// Marks per identity (by key(id)), kept across the invocations of a run.
const (
	mSeen     uint8 = 1 << iota // its learner is in the target
	mAssigned                   // the directory assigns it and it is active there
	mDeact                      // its learner is active but must not be: deactivated at the end, under the guard
	mHandled                    // dealt with already (parked for review, or created from the directory)
)

// maxCandidates bounds the learner ids a claim remembers.
const maxCandidates = 3

// claim is "these learners (N of them) match the identity by this key":
// adoption is decided once every learner has been seen.
type claim struct {
	Rank     uint8 // position of the key: 0 external id, then AdoptBy order
	Key      string
	N        int
	Learners []string
}

// state is a run's memory beyond its counts.
type state struct {
	marks  map[uint64]uint8
	claims map[uint64]*claim
}

func newState() *state { return &state{marks: map[uint64]uint8{}, claims: map[uint64]*claim{}} }

func (s *state) addClaim(h uint64, rank uint8, keyName, learnerID string) {
	c := s.claims[h]
	switch {
	case c == nil || rank < c.Rank:
		s.claims[h] = &claim{Rank: rank, Key: keyName, N: 1, Learners: []string{learnerID}}
	case rank == c.Rank && !slices.Contains(c.Learners, learnerID):
		c.N++
		if len(c.Learners) < maxCandidates {
			c.Learners = append(c.Learners, learnerID)
		}
	}
}

// The marks are saved as binary records in Docs of at most chunkSize
// bytes: 100k identities take about 1 MB, far below what holding their
// records would.
const (
	chunkSize = 60 << 10
	recMark   = 'm'
	recClaim  = 'c'
	stateTTL  = 7 * 24 * time.Hour
)

func (s *state) encode() [][]byte {
	var chunks [][]byte
	var buf []byte
	emit := func(rec []byte) {
		if len(buf)+len(rec) > chunkSize {
			chunks = append(chunks, buf)
			buf = nil
		}
		buf = append(buf, rec...)
	}
	var rec []byte
	for _, h := range slices.Sorted(maps.Keys(s.marks)) {
		rec = append(rec[:0], recMark)
		rec = binary.BigEndian.AppendUint64(rec, h)
		rec = append(rec, s.marks[h])
		emit(rec)
	}
	for _, h := range slices.Sorted(maps.Keys(s.claims)) {
		c := s.claims[h]
		rec = append(rec[:0], recClaim)
		rec = binary.BigEndian.AppendUint64(rec, h)
		rec = append(rec, c.Rank)
		rec = binary.AppendUvarint(rec, uint64(c.N))
		rec = appendStr(rec, c.Key)
		rec = append(rec, byte(len(c.Learners)))
		for _, l := range c.Learners {
			rec = appendStr(rec, l)
		}
		emit(rec)
	}
	if len(buf) > 0 {
		chunks = append(chunks, buf)
	}
	return chunks
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errCorrupt = errors.New("reconcile: saved state is corrupt")

func (s *state) decode(b []byte) error {
	readStr := func() (string, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", errCorrupt
		}
		v := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return v, nil
	}
	for len(b) > 0 {
		tag := b[0]
		if len(b) < 9 {
			return errCorrupt
		}
		h := binary.BigEndian.Uint64(b[1:9])
		b = b[9:]
		switch tag {
		case recMark:
			if len(b) < 1 {
				return errCorrupt
			}
			s.marks[h] |= b[0]
			b = b[1:]
		case recClaim:
			if len(b) < 1 {
				return errCorrupt
			}
			c := &claim{Rank: b[0]}
			b = b[1:]
			n, k := binary.Uvarint(b)
			if k <= 0 {
				return errCorrupt
			}
			c.N, b = int(n), b[k:]
			var err error
			if c.Key, err = readStr(); err != nil {
				return err
			}
			if len(b) < 1 {
				return errCorrupt
			}
			nl := int(b[0])
			b = b[1:]
			for range nl {
				l, err := readStr()
				if err != nil {
					return err
				}
				c.Learners = append(c.Learners, l)
			}
			s.claims[h] = c
		default:
			return errCorrupt
		}
	}
	return nil
}

func checkpointKey(target string) string { return checkpointKind + "/" + target }

func stateKey(target, run string, gen, n int) string {
	return fmt.Sprintf("%s/%s/%s/%06d/%06d", stateKind, target, run, gen, n)
}

// loadCheckpoint reads the target's checkpoint; a missing one is idle.
func loadCheckpoint(ctx context.Context, st Store, target string) (*checkpoint, int64, error) {
	d, err := st.GetDoc(ctx, checkpointKey(target))
	if errors.Is(err, store.ErrNotFound) {
		return &checkpoint{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("reconcile: read checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(d.Value, &cp); err != nil {
		return nil, 0, fmt.Errorf("reconcile: decode checkpoint: %w", err)
	}
	return &cp, d.Version, nil
}

func saveCheckpoint(ctx context.Context, st Store, target string, cp *checkpoint, version int64) (int64, error) {
	b, err := json.Marshal(cp)
	if err != nil {
		return 0, fmt.Errorf("reconcile: encode checkpoint: %w", err)
	}
	d := &store.Doc{Key: checkpointKey(target), Value: b}
	if err := st.PutDoc(ctx, d, version); err != nil {
		return 0, fmt.Errorf("reconcile: save checkpoint: %w", err)
	}
	return d.Version, nil
}

// saveState writes the marks as generation gen and answers the number of
// chunks.
func saveState(ctx context.Context, st Store, target, run string, gen int, s *state, now time.Time) (int, error) {
	chunks := s.encode()
	for n, c := range chunks {
		d := &store.Doc{Key: stateKey(target, run, gen, n), Value: c, Expires: now.Add(stateTTL)}
		if err := putAnyway(ctx, st, d); err != nil {
			return 0, fmt.Errorf("reconcile: save state: %w", err)
		}
	}
	return len(chunks), nil
}

// putAnyway writes d whatever version is stored (a leftover of a crashed
// invocation is simply replaced).
func putAnyway(ctx context.Context, st Store, d *store.Doc) error {
	var v int64
	if cur, err := st.GetDoc(ctx, d.Key); err == nil {
		v = cur.Version
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return st.PutDoc(ctx, d, v)
}

func loadState(ctx context.Context, st Store, target, run string, gen, chunks int) (*state, error) {
	s := newState()
	for n := range chunks {
		d, err := st.GetDoc(ctx, stateKey(target, run, gen, n))
		if err != nil {
			return nil, fmt.Errorf("reconcile: load state: %w", err)
		}
		if err := s.decode(d.Value); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// dropState deletes the target's saved marks except generation keep of
// run (keep "" deletes all).
func dropState(ctx context.Context, st Store, target, run string, keep int) error {
	prefix := stateKind + "/" + target + "/"
	keepPrefix := ""
	if run != "" {
		keepPrefix = fmt.Sprintf("%s%s/%06d/", prefix, run, keep)
	}
	var doomed []string
	err := pages(ctx, func(cursor string) (store.Page[*store.Doc], error) {
		return st.ListDocs(ctx, stateKind, cursor, 200)
	}, func(d *store.Doc) {
		if strings.HasPrefix(d.Key, prefix) && (keepPrefix == "" || !strings.HasPrefix(d.Key, keepPrefix)) {
			doomed = append(doomed, d.Key)
		}
	})
	if err != nil {
		return fmt.Errorf("reconcile: list saved state: %w", err)
	}
	for _, k := range doomed {
		if err := st.DeleteDoc(ctx, k); err != nil {
			return fmt.Errorf("reconcile: drop saved state: %w", err)
		}
	}
	return nil
}
