// Package review keeps the list of identities whose learner could not be
// matched unambiguously in a target, for a human to decide.
//
// An entry is parked by the worker (worker.Config.OnConflict is List.Park)
// or by reconciliation when an unlinked identity matches several learners,
// or a learner carrying another external id, or when one learner matches
// several identities. Nothing is written to the target for a parked
// identity until an admin resolves it:
//
//   - Link: the chosen learner is recorded in the identity's store.Link
//     (hash cleared) and a Force intent is queued, so the next sync repairs
//     exactly that learner instead of searching again;
//   - CreateNew: the learner is created now through the target's connector
//     (the worker cannot be told "do not adopt": its link has no such
//     state), linked the same way, and a Force intent brings its groups and
//     enrollments;
//   - Ignore: the entry stays, marked ignored, so later conflicts for the
//     identity do not reopen it and reconciliation leaves it alone.
//
// Entries are store Docs keyed "review/<target>/<identityID>". Every park
// and resolution is audited; entries hold ids and reasons, never
// attribute values.
package review

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// Kind is the Doc kind of review entries.
const Kind = "review"

// Errors Resolve returns (possibly wrapped); test with errors.Is.
var (
	ErrNotFound       = errors.New("review: no such review entry")
	ErrInvalid        = errors.New("review: invalid resolution")
	ErrLearnerUnknown = errors.New("review: the target has no such learner")
	ErrLearnerTaken   = errors.New("review: the learner is already linked to another identity")
	ErrUnsupported    = errors.New("review: the target is not configured here")
)

// Status of an entry.
type Status string

const (
	Open    Status = "open"
	Ignored Status = "ignored"
)

// Entry is one identity waiting for (or set aside by) a human.
type Entry struct {
	IdentityID string `json:"identityId"`
	Target     string `json:"target"`
	Status     Status `json:"status"`
	// Reason says why no learner was chosen (no attribute values).
	Reason string `json:"reason"`
	// Candidates are the target ids of the learners involved, sorted.
	Candidates []string  `json:"candidates"`
	Parked     time.Time `json:"parked"`  // first parked
	Updated    time.Time `json:"updated"` // last parked or resolved
	Times      int       `json:"times"`   // how often it was parked
	ResolvedBy string    `json:"resolvedBy,omitempty"`
	// Version is the Doc's version, for optimistic updates.
	Version int64 `json:"-"`
}

// Resolution is an admin's decision; exactly one field is set.
type Resolution struct {
	Link      string `json:"link,omitempty"` // the target's learner id to link
	CreateNew bool   `json:"createNew,omitempty"`
	Ignore    bool   `json:"ignore,omitempty"`
}

func (r Resolution) valid() error {
	n := 0
	if r.Link != "" {
		n++
	}
	if r.CreateNew {
		n++
	}
	if r.Ignore {
		n++
	}
	if n != 1 {
		return fmt.Errorf("%w: set exactly one of link, createNew, ignore", ErrInvalid)
	}
	return nil
}

func (r Resolution) String() string {
	switch {
	case r.Link != "":
		return "link learner " + r.Link
	case r.CreateNew:
		return "create a new learner"
	case r.Ignore:
		return "ignore"
	}
	return "none"
}

// Store is what the review list needs of the desired-state store.
type Store interface {
	GetDoc(ctx context.Context, key string) (*store.Doc, error)
	PutDoc(ctx context.Context, d *store.Doc, expectedVersion int64) error
	DeleteDoc(ctx context.Context, key string) error
	ListDocs(ctx context.Context, kind, cursor string, limit int) (store.Page[*store.Doc], error)
	GetIdentity(ctx context.Context, id string) (*store.Identity, error)
	FindIdentitiesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error)
	GetIdentityByUserName(ctx context.Context, userName string) (*store.Identity, error)
	GroupsOf(ctx context.Context, userID string) ([]store.Member, error)
	GetLink(ctx context.Context, identityID, target string) (*store.Link, error)
	PutLink(ctx context.Context, l *store.Link) error
	ListLinks(ctx context.Context, target, cursor string, limit int) (store.Page[*store.Link], error)
	AppendAudit(ctx context.Context, r *store.AuditRecord) error
}

// Config configures a List.
type Config struct {
	// Queue receives the Force intent after a Link or CreateNew; nil
	// leaves the next sync to the identity's next change (or the sweeper).
	Queue queue.Enqueuer
	// Targets lets Resolve check a linked learner exists and create new
	// ones; a target missing here can still be linked (unchecked) and
	// ignored, not created.
	Targets []worker.Target
	Logger  *slog.Logger
	Now     func() time.Time
}

// List is the review list. It holds no state of its own and is safe for
// concurrent use.
type List struct {
	st  Store
	cfg Config
}

// New returns the review list kept in st.
func New(st Store, cfg Config) (*List, error) {
	if st == nil {
		return nil, errors.New("review: no store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &List{st: st, cfg: cfg}, nil
}

// Key is the Doc key of an identity's entry in a target.
func Key(target, identityID string) string { return Kind + "/" + target + "/" + identityID }

// attempts bounds retries of optimistic updates that lose a race.
const attempts = 10

// Park records that the identity's learner in target is ambiguous. It has
// the signature of worker.ConflictFunc, so a worker's OnConflict can be
// list.Park. Parking an open entry again merges the candidates; an
// ignored entry stays ignored and unchanged.
func (l *List) Park(ctx context.Context, identityID, target, reason string, candidateIDs []string) error {
	if identityID == "" || target == "" {
		return errors.New("review: park: empty identity or target")
	}
	for range attempts {
		e, err := l.Get(ctx, target, identityID)
		fresh := errors.Is(err, ErrNotFound)
		if err != nil && !fresh {
			return fmt.Errorf("review: park: %w", err)
		}
		now := l.cfg.Now().UTC()
		if fresh {
			e = &Entry{IdentityID: identityID, Target: target, Status: Open, Parked: now}
		}
		if e.Status == Ignored {
			return nil
		}
		e.Reason, e.Updated = reason, now
		e.Times++
		e.Candidates = merge(e.Candidates, candidateIDs)
		err = l.put(ctx, e)
		if errors.Is(err, store.ErrVersionConflict) {
			continue // parked concurrently: merge again
		}
		if err != nil {
			return fmt.Errorf("review: park: %w", err)
		}
		if fresh {
			l.audit(ctx, e, "review.park", reason, "")
			l.cfg.Logger.InfoContext(ctx, "identity parked for review", "identity", identityID, "target", target, "candidates", len(e.Candidates))
		}
		return nil
	}
	return fmt.Errorf("review: park %s/%s: %w", target, identityID, store.ErrVersionConflict)
}

func merge(a, b []string) []string {
	out := slices.Clone(a)
	for _, id := range b {
		if id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func (l *List) put(ctx context.Context, e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	d := &store.Doc{Key: Key(e.Target, e.IdentityID), Value: b}
	if err := l.st.PutDoc(ctx, d, e.Version); err != nil {
		return err
	}
	e.Version = d.Version
	return nil
}

// Get returns one entry, or ErrNotFound.
func (l *List) Get(ctx context.Context, target, identityID string) (*Entry, error) {
	d, err := l.st.GetDoc(ctx, Key(target, identityID))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s/%s: %w", target, identityID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("review: get: %w", err)
	}
	return decode(d)
}

func decode(d *store.Doc) (*Entry, error) {
	var e Entry
	if err := json.Unmarshal(d.Value, &e); err != nil {
		return nil, fmt.Errorf("review: decode %s: %w", d.Key, err)
	}
	e.Version = d.Version
	return &e, nil
}

// List returns the entries of one target ("" for every target), open
// and ignored, in key order.
func (l *List) List(ctx context.Context, target string) ([]Entry, error) {
	prefix := Kind + "/"
	if target != "" {
		prefix += target + "/"
	}
	var out []Entry
	cursor := ""
	for {
		page, err := l.st.ListDocs(ctx, Kind, cursor, 500)
		if err != nil {
			return nil, fmt.Errorf("review: list: %w", err)
		}
		for _, d := range page.Items {
			if !strings.HasPrefix(d.Key, prefix) {
				continue
			}
			e, err := decode(d)
			if err != nil {
				return nil, err
			}
			out = append(out, *e)
		}
		if page.Next == "" {
			return out, nil
		}
		cursor = page.Next
	}
}

// Resolve carries out an admin's decision for a parked identity; by names
// the admin, for the audit trail. It returns the entry as it was before.
func (l *List) Resolve(ctx context.Context, identityID, target string, r Resolution, by string) (*Entry, error) {
	if err := r.valid(); err != nil {
		return nil, err
	}
	if by == "" {
		by = "admin"
	}
	e, err := l.Get(ctx, target, identityID)
	if err != nil {
		return nil, err
	}
	if r.Ignore {
		e.Status, e.ResolvedBy, e.Updated = Ignored, by, l.cfg.Now().UTC()
		if err := l.put(ctx, e); err != nil {
			return nil, fmt.Errorf("review: resolve: %w", err)
		}
		l.audit(ctx, e, "review.resolve", "ignored by "+by, "")
		return e, nil
	}
	ident, err := l.st.GetIdentity(ctx, identityID)
	if err != nil {
		return nil, fmt.Errorf("review: resolve: load identity: %w", err)
	}
	tgt := l.target(target)
	learnerID := r.Link
	if r.CreateNew {
		if tgt == nil {
			return nil, fmt.Errorf("%w: cannot create learners in %q", ErrUnsupported, target)
		}
		if learnerID, err = l.create(ctx, tgt, ident); err != nil {
			l.audit(ctx, e, "learner.create", "review: create new learner, by "+by, err.Error())
			return nil, fmt.Errorf("review: resolve: create learner: %w", err)
		}
		l.audit(ctx, e, "learner.create", "review: create new learner "+learnerID+", by "+by, "")
	} else if err := l.checkLearner(ctx, tgt, target, identityID, learnerID); err != nil {
		return nil, err
	}
	if err := l.link(ctx, ident, target, learnerID); err != nil {
		return nil, err
	}
	if err := l.st.DeleteDoc(ctx, Key(target, identityID)); err != nil {
		return nil, fmt.Errorf("review: resolve: remove entry: %w", err)
	}
	l.audit(ctx, e, "review.resolve", fmt.Sprintf("%s, by %s", r, by), "")
	if l.cfg.Queue != nil {
		reason := "review.link"
		if r.CreateNew {
			reason = "review.create"
		}
		in := queue.Intent{IdentityID: identityID, Version: ident.Version, Target: target, Force: true, Reason: reason}
		if err := l.cfg.Queue.Enqueue(ctx, in); err != nil {
			// The link is written: the sweeper or the next change syncs it.
			return e, fmt.Errorf("review: resolve: queue the sync: %w", err)
		}
	}
	return e, nil
}

func (l *List) target(name string) *worker.Target {
	for i := range l.cfg.Targets {
		if l.cfg.Targets[i].Name == name {
			return &l.cfg.Targets[i]
		}
	}
	return nil
}

// checkLearner makes sure the learner exists (when the target is known)
// and that no other identity is linked to it: two identities sharing one
// learner would overwrite each other forever.
func (l *List) checkLearner(ctx context.Context, tgt *worker.Target, target, identityID, learnerID string) error {
	if tgt != nil {
		_, err := tgt.Conn.Get(ctx, learnerID)
		if connector.IsNotFound(err) {
			return fmt.Errorf("%w: %s", ErrLearnerUnknown, learnerID)
		}
		if err != nil {
			return fmt.Errorf("review: resolve: read learner: %w", err)
		}
	}
	cursor := ""
	for {
		page, err := l.st.ListLinks(ctx, target, cursor, 1000)
		if err != nil {
			return fmt.Errorf("review: resolve: list links: %w", err)
		}
		for _, k := range page.Items {
			if k.IdentityID != identityID && strings.EqualFold(k.LearnerID, learnerID) {
				return fmt.Errorf("%w: learner %s belongs to identity %s", ErrLearnerTaken, learnerID, k.IdentityID)
			}
		}
		if page.Next == "" {
			return nil
		}
		cursor = page.Next
	}
}

// create makes a new learner for the identity, as the worker would.
func (l *List) create(ctx context.Context, tgt *worker.Target, ident *store.Identity) (string, error) {
	groups, err := l.st.GroupsOf(ctx, ident.ID)
	if err != nil {
		return "", fmt.Errorf("load groups: %w", err)
	}
	m := tgt.Mapping
	m.Lookup = mapping.StoreLookup(ctx, l.st)
	learner, _, err := m.Learner(ident, groups)
	if err != nil {
		return "", err
	}
	if !learner.Active {
		return "", fmt.Errorf("%w: the identity is inactive; nothing to create", ErrInvalid)
	}
	return tgt.Conn.Create(ctx, learner)
}

// link records learnerID as the identity's learner. The synced version is
// kept (the store never lowers it) and the hash cleared, so the Force
// intent that follows repairs the learner to the desired state.
func (l *List) link(ctx context.Context, ident *store.Identity, target, learnerID string) error {
	next := &store.Link{IdentityID: ident.ID, Target: target}
	cur, err := l.st.GetLink(ctx, ident.ID, target)
	switch {
	case err == nil:
		*next = *cur
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("review: resolve: load link: %w", err)
	}
	next.LearnerID, next.Hash, next.Updated = learnerID, "", l.cfg.Now().UTC()
	if err := l.st.PutLink(ctx, next); err != nil {
		return fmt.Errorf("review: resolve: save link: %w", err)
	}
	return nil
}

func (l *List) audit(ctx context.Context, e *Entry, action, detail, failure string) {
	result := "ok"
	if failure != "" {
		result = "error: " + failure
	}
	rec := &store.AuditRecord{IdentityID: e.IdentityID, Time: l.cfg.Now().UTC(), Target: e.Target,
		Actor: "review", Action: action, Detail: detail, Result: result}
	if err := l.st.AppendAudit(ctx, rec); err != nil {
		l.cfg.Logger.WarnContext(ctx, "audit write failed", "identity", e.IdentityID, "err", err)
	}
}
