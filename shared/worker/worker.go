// Package worker turns sync intents into target writes.
//
// For every intent it reads the identity's *latest* desired state, maps it
// to the learner the target should have, compares that with what the link
// says was last pushed, and calls the connector only for what differs.
// Intents are triggers, not data: a duplicate, a retry or an out-of-order
// delivery of an old version finds the link already at the latest version
// and costs no target write, and several changes queued for one identity
// cost one write (coalescing). A Force intent (reconciliation found the
// target drifted) re-reads the learner from the target and repairs it even
// when the link says it is up to date.
//
// No duplicate learner is ever created:
//   - before creating, the worker looks the learner up by the external id
//     it writes (the IdP's user id), so a worker that died between the
//     target's create and the link write adopts its own learner on the
//     next attempt;
//   - the learner id is written to the link right after the create, before
//     anything else can fail;
//   - two syncs of one identity to one target never run at once in one
//     Worker (a per-(identity, target) lock), and the queue delivers one
//     message per (identity, target) group at a time; should two
//     processes race anyway (a visibility timeout
//     ran out mid-sync), the loser's create fails on the target's
//     uniqueness of username or external id, and the loser then finds and
//     adopts the winner's learner instead of failing.
//
// A person deleted and provisioned again (Entra restore, Okta unassign
// with delete then re-assign) is a tombstone and a live identity with the
// same external id, synced in different queue groups, maybe at once in
// different processes; deleted again, it is two tombstones. The newest
// incarnation owns the learner: a live identity, else the tombstone
// created last (Created, then ID). A tombstone's sync does not write the
// learner when a newer incarnation exists, and when one appears while its
// deactivation is under way, it re-checks after the target acknowledged
// it and pushes the newest one's state again (Force, Reason
// "worker.handover"): active for a live identity, the newer tombstone's
// own inactive profile otherwise. Either way the tombstone's link then
// lets go of the learner ("learner.release").
//
// An ambiguous match (several learners, or one carrying another external
// id) is never guessed at: it goes to Config.OnConflict for a human when
// set, else the intent is parked in the dead-letter queue.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/retry"
	"github.com/learnerlink/learnerlink/shared/rules"
	"github.com/learnerlink/learnerlink/shared/store"
)

// Store is what the worker needs of the desired-state store.
type Store interface {
	GetIdentity(ctx context.Context, id string) (*store.Identity, error)
	FindIdentitiesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error)
	FindTombstonesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error)
	GetIdentityByUserName(ctx context.Context, userName string) (*store.Identity, error)
	GroupsOf(ctx context.Context, userID string) ([]store.Member, error)
	GetLink(ctx context.Context, identityID, target string) (*store.Link, error)
	PutLink(ctx context.Context, l *store.Link) error
	ClearPending(ctx context.Context, id string, version int64) error
	AppendAudit(ctx context.Context, r *store.AuditRecord) error
}

// Target is one system learners are projected to.
type Target struct {
	Name    string
	Conn    connector.Connector
	Mapping mapping.Config
	Rules   rules.Config
	// AdoptBy lists the keys, in order, by which an unlinked learner that
	// existed before the integration is adopted. The external id is always
	// tried first (it is how we find our own earlier creates).
	AdoptBy []connector.KeyKind
	// Context, if set, derives the context of this target's connector
	// calls for one identity (OneLogin stamps its writes with the
	// identity's version this way, see onelogin.WithOrigin).
	Context func(ctx context.Context, ident *store.Identity) context.Context
}

// ConflictFunc receives an identity whose learner cannot be matched
// unambiguously in a target: reason says why (no attribute values) and
// candidateIDs are the target's ids of the learners involved.
type ConflictFunc func(ctx context.Context, identityID, target, reason string, candidateIDs []string) error

// Config tunes the worker.
type Config struct {
	Backoff retry.Backoff // for retryable failures without a Retry-After
	Logger  *slog.Logger
	Now     func() time.Time
	// Rand is the jitter source, values in [0, 1); it must be safe for
	// concurrent use (Process syncs identities in parallel).
	Rand func() float64
	// Parallel bounds how many identities of one batch Process syncs at
	// once (default 4). Messages of one identity are always coalesced
	// into one sync.
	Parallel int
	// OnConflict, if set, is called when an unlinked identity matches
	// several learners, or one that carries another external id. The
	// identity is then left for a human (its message is acknowledged,
	// nothing is written to the target) instead of being dead-lettered.
	// An error from it makes the message retry.
	OnConflict ConflictFunc
	// MaxReceives is the queue's delivery budget (SQS maxReceiveCount,
	// queue/disk's MaxReceives); 0 means unknown. A retryable failure on
	// a message's last delivery is not left to the queue, which would
	// dead-letter good work during a long target outage: the message is
	// acknowledged and a fresh copy enqueued (verdict Requeue).
	MaxReceives int
	// RetryFor is how long a retryable failure is retried, counted from
	// the first copy's enqueue, before the intent is parked after all
	// (default 24h): a target down for a day is an incident the
	// dead-letter alarm should raise.
	RetryFor time.Duration
}

// Worker syncs identities to targets. It is safe for concurrent use; its
// only state is the set of identities being synced right now.
type Worker struct {
	st      Store
	targets []Target
	cfg     Config
	busy    keyLocks
}

// New returns a worker over the given targets.
func New(st Store, targets []Target, cfg Config) (*Worker, error) {
	if st == nil {
		return nil, errors.New("worker: no store")
	}
	if len(targets) == 0 {
		return nil, errors.New("worker: no targets")
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if t.Name == "" || t.Conn == nil {
			return nil, errors.New("worker: target needs a name and a connector")
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("worker: duplicate target %q", t.Name)
		}
		seen[t.Name] = true
	}
	if cfg.Backoff.Base == 0 {
		cfg.Backoff = retry.Backoff{Base: time.Second, Max: 5 * time.Minute}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Parallel < 1 {
		cfg.Parallel = 4
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 24 * time.Hour
	}
	return &Worker{st: st, targets: slices.Clone(targets), cfg: cfg}, nil
}

// Verdict is what to do with a message after processing.
type Verdict int

const (
	Ack   Verdict = iota // done (or nothing to do)
	Retry                // try again after Delay
	Park                 // permanent failure: dead-letter it with Reason
	// Requeue: a retryable failure on the message's last allowed
	// delivery. Enqueue Outcome.Next, then acknowledge the message; if
	// the enqueue fails, Retry it instead (the identity stays pending, so
	// the sweeper re-queues it should the queue dead-letter it).
	Requeue
)

func (v Verdict) String() string {
	switch v {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	case Park:
		return "park"
	case Requeue:
		return "requeue"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Outcome is the verdict for one message.
type Outcome struct {
	Message queue.Message
	Verdict Verdict
	Delay   time.Duration
	Reason  string
	// Next is the copy to enqueue (Requeue only). Every message of a
	// coalesced group carries the same copy; the queue's deduplication
	// keeps one.
	Next *queue.Intent
}

// Process handles a batch. Messages for the same identity and target are
// coalesced: the identity is synced once and every one of its messages
// gets the same verdict, which keeps a FIFO group's order intact when a
// sync fails.
// Different identities are synced in parallel, at most Config.Parallel at
// a time. Outcomes are in the order of msgs.
func (w *Worker) Process(ctx context.Context, msgs []queue.Message) []Outcome {
	type group struct {
		intent   queue.Intent
		idx      []int
		receives int       // most deliveries of one message, this one included
		retries  int       // most deliveries spent by earlier copies
		since    time.Time // earliest first enqueue
	}
	var order []*group
	groups := map[string]*group{}
	for i, m := range msgs {
		// One group per (identity, target): a failing target's messages
		// must not drag another target's into a retry.
		key := m.IdentityID + "\x00" + m.Target
		g, ok := groups[key]
		if !ok {
			g = &group{intent: m.Intent}
			groups[key] = g
			order = append(order, g)
		} else {
			g.intent.Force = g.intent.Force || m.Force
			if m.Version > g.intent.Version {
				g.intent.Version, g.intent.Reason, g.intent.RequestID = m.Version, m.Reason, m.RequestID
			}
		}
		g.idx = append(g.idx, i)
		g.receives = max(g.receives, m.Receives)
		g.retries = max(g.retries, m.Retries)
		since := m.Since
		if since.IsZero() {
			since = m.Sent
		}
		if g.since.IsZero() || (!since.IsZero() && since.Before(g.since)) {
			g.since = since
		}
	}
	out := make([]Outcome, len(msgs))
	sem := make(chan struct{}, w.cfg.Parallel)
	var wg sync.WaitGroup
	for _, g := range order {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			o := w.classify(w.Sync(ctx, g.intent), g.receives, g.retries, g.since)
			if o.Verdict == Requeue {
				next := g.intent
				next.Retries, next.Since = g.retries+g.receives, g.since
				o.Next = &next
			}
			for _, i := range g.idx { // each goroutine writes its own indices
				o.Message = msgs[i]
				out[i] = o
			}
		}()
	}
	wg.Wait()
	return out
}

// classify turns a sync's result into a verdict. receives is the most
// deliveries of the messages synced, retries those spent by earlier
// copies, since the first copy's enqueue time (zero if unknown).
func (w *Worker) classify(err error, receives, retries int, since time.Time) Outcome {
	if err == nil {
		return Outcome{Verdict: Ack}
	}
	if permanent(err) {
		return Outcome{Verdict: Park, Reason: err.Error()}
	}
	if !since.IsZero() && w.cfg.Now().Sub(since) >= w.cfg.RetryFor {
		return Outcome{Verdict: Park, Reason: fmt.Sprintf("still failing after %v of retries: %v", w.cfg.RetryFor, err)}
	}
	d := connector.RetryAfterOf(err)
	if d <= 0 {
		d = w.cfg.Backoff.Delay(max(retries+receives-1, 0), w.cfg.Rand)
	}
	v := Retry
	if w.cfg.MaxReceives > 0 && receives >= w.cfg.MaxReceives {
		v = Requeue
	}
	return Outcome{Verdict: v, Delay: d, Reason: err.Error()}
}

// permanent reports a failure that retrying will not heal. An interrupted
// sync (shutdown, a cancelled request) is never permanent: parking it
// would dead-letter good work on every restart.
func permanent(err error) bool {
	return !connector.IsRetryable(err) && !errors.Is(err, context.Canceled)
}

// Sync brings one identity up to date in its targets (or in intent.Target).
// The identity's pending mark is cleared only once every target's link is
// at its version, so the sweeper re-queues an identity a failing target
// has not caught up with.
func (w *Worker) Sync(ctx context.Context, in queue.Intent) error {
	if in.Target != "" && !slices.ContainsFunc(w.targets, func(t Target) bool { return t.Name == in.Target }) {
		w.cfg.Logger.WarnContext(ctx, "intent for an unknown target dropped", "identity", in.IdentityID, "target", in.Target)
		return nil // a target removed from the config: nothing to do
	}
	ident, err := w.st.GetIdentity(ctx, in.IdentityID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // never existed here (e.g. a hand-made intent): nothing to project
	}
	if err != nil {
		return fmt.Errorf("worker: load identity: %w", err)
	}
	groups, err := w.st.GroupsOf(ctx, ident.ID)
	if err != nil {
		return fmt.Errorf("worker: load groups: %w", err)
	}
	var errs []error
	done := map[string]bool{} // targets this sync settled
	for i := range w.targets {
		t := &w.targets[i]
		if in.Target != "" && in.Target != t.Name {
			continue
		}
		done[t.Name] = true
		if err := w.lockedSyncTarget(ctx, t, in, ident, groups); err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", t.Name, err))
		}
	}
	if len(errs) > 0 {
		err := joinClassified(errs)
		if permanent(err) {
			// The intent goes to the dead-letter queue; clearing the mark
			// (once the other targets are done) keeps the sweeper from
			// retrying a permanent failure forever. The next change, or a
			// redrive, marks it again.
			if cerr := w.clearPending(ctx, ident, done); cerr != nil {
				w.cfg.Logger.WarnContext(ctx, "clear pending failed", "identity", ident.ID, "err", cerr)
			}
		}
		return err
	}
	if err := w.clearPending(ctx, ident, done); err != nil {
		return fmt.Errorf("worker: clear pending: %w", err)
	}
	return nil
}

// lockedSyncTarget runs syncTarget holding the (identity, target) lock:
// two syncs of one identity to one target never run at once in this
// Worker, while another target's sync of it goes ahead (a target that is
// down must not hold up the others).
func (w *Worker) lockedSyncTarget(ctx context.Context, t *Target, in queue.Intent, ident *store.Identity, groups []store.Member) error {
	unlock, err := w.busy.lock(ctx, lockKey(ident, t))
	if err != nil {
		return fmt.Errorf("worker: wait for a concurrent sync of the identity: %w", err)
	}
	defer unlock()
	return w.targetSync(ctx, t, in, ident, groups)
}

func lockKey(ident *store.Identity, t *Target) string { return ident.ID + "#" + t.Name }

// targetSync runs syncTarget in the target's context; the caller holds
// the (identity, target) lock.
func (w *Worker) targetSync(ctx context.Context, t *Target, in queue.Intent, ident *store.Identity, groups []store.Member) error {
	if t.Context != nil {
		ctx = t.Context(ctx, ident)
	}
	return w.syncTarget(ctx, t, in, ident, groups)
}

// clearPending clears the identity's pending mark if every target not
// settled by this sync (done) has its link at the identity's version. One
// GetLink per other target: cheap next to a target write.
func (w *Worker) clearPending(ctx context.Context, ident *store.Identity, done map[string]bool) error {
	for _, t := range w.targets {
		if done[t.Name] {
			continue
		}
		l, err := w.st.GetLink(ctx, ident.ID, t.Name)
		if errors.Is(err, store.ErrNotFound) {
			return nil // that target has not synced it yet
		}
		if err != nil {
			return fmt.Errorf("read link of target %s: %w", t.Name, err)
		}
		if l.SyncedVersion < ident.Version {
			return nil
		}
	}
	if err := w.st.ClearPending(ctx, ident.ID, ident.Version); err != nil && !errors.Is(err, store.ErrVersionConflict) {
		return err
	}
	return nil
}

// joinClassified keeps the most urgent classification: if any target can
// be retried the message is retried (a permanent failure in one target
// must not stop another from converging); the longest Retry-After wins.
func joinClassified(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	retryable := false
	var after time.Duration
	for _, e := range errs {
		if !permanent(e) {
			retryable = true
			after = max(after, connector.RetryAfterOf(e))
		}
	}
	return &connector.Error{Op: "sync", Retryable: retryable, RetryAfter: after, Err: errors.Join(errs...)}
}

// run is one identity's sync to one target.
type run struct {
	w      *Worker
	t      *Target
	in     queue.Intent
	ident  *store.Identity
	groups []store.Member
}

func (r *run) audit(ctx context.Context, action, detail string, err error) {
	r.w.audit(ctx, r.t, r.in, r.ident, action, detail, err)
}

func (w *Worker) syncTarget(ctx context.Context, t *Target, in queue.Intent, ident *store.Identity, groups []store.Member) error {
	r := &run{w: w, t: t, in: in, ident: ident, groups: groups}
	link, err := w.st.GetLink(ctx, ident.ID, t.Name)
	if errors.Is(err, store.ErrNotFound) {
		link = nil
	} else if err != nil {
		return fmt.Errorf("load link: %w", err)
	}
	if link != nil && link.SyncedVersion >= ident.Version && !in.Force {
		return nil // stale or duplicate intent: already at the latest version
	}
	next := &store.Link{IdentityID: ident.ID, Target: t.Name}
	prevHash := ""
	if link != nil {
		*next = *link
		next.Applied = slices.Clone(link.Applied)
		prevHash = link.Hash
	}

	learner, lgroups, err := r.learner(ctx)
	if err != nil {
		if ident.Deleted && next.LearnerID == "" && !connector.IsRetryable(err) {
			// Deleted before it was ever projected: nothing to deactivate.
			return w.putLink(ctx, ident, next, "", next.Applied)
		}
		return err
	}
	hash := mapping.Hash(learner, lgroups)
	next.ExternalID = learner.ExternalID

	if ident.Deleted {
		// Deleted, then provisioned again (Entra restore, Okta re-assign),
		// maybe deleted again: the newest incarnation owns the learner;
		// writing this one's state would undo that identity's sync.
		owners, err := r.newerIncarnations(ctx, learner)
		if err != nil {
			return err
		}
		if len(owners) > 0 {
			return r.release(ctx, next, owners)
		}
	}

	// Which groups to push: an adopted learner's are unknown, so always;
	// a learner created just now has none, so only if it should have some.
	adopted, created := false, false
	if next.LearnerID != "" {
		learner.ID = next.LearnerID
		var gone bool
		switch {
		case in.Force:
			gone, err = r.repair(ctx, learner)
		case prevHash != hash:
			gone, err = r.update(ctx, learner)
		}
		if err != nil {
			return err
		}
		if gone {
			// The learner was deleted by hand in the target: forget it
			// and find or create it again below, in this same sync. The
			// rules applied to the old account start over with the new.
			next.LearnerID, next.Applied, prevHash = "", nil, ""
			reset := *next
			reset.Hash = ""
			if err := w.st.PutLink(ctx, &reset); err != nil && !errors.Is(err, store.ErrVersionConflict) {
				return fmt.Errorf("reset link: %w", err)
			}
		}
	}
	if next.LearnerID == "" {
		id, isNew, err := r.attach(ctx, learner, next)
		var ce *conflictError
		if errors.As(err, &ce) {
			// A match judged on a stale copy (the person was deleted and
			// provisioned again while we looked) is no conflict: judge
			// again on the latest state rather than bother a human.
			if serr := r.stillCurrent(ctx); serr != nil {
				return serr
			}
			// A tombstone whose person was provisioned again after our
			// first look: the new incarnation owns the learner.
			if ident.Deleted {
				owners, oerr := r.newerIncarnations(ctx, learner)
				if oerr != nil {
					return oerr
				}
				if len(owners) > 0 {
					return r.release(ctx, next, owners)
				}
			}
		}
		if errors.As(err, &ce) && w.cfg.OnConflict != nil {
			return r.review(ctx, ce)
		}
		if err != nil {
			return err
		}
		if id == "" {
			// Inactive and never created: never create an account only
			// to switch it off.
			return w.putLink(ctx, ident, next, hash, next.Applied)
		}
		next.LearnerID, learner.ID = id, id
		adopted, created = !isNew, isNew
	}

	push := adopted || in.Force || prevHash != hash
	if created {
		push = len(lgroups) > 0
	}
	if gs, ok := t.Conn.(connector.GroupSetter); ok && push {
		err := gs.SetGroups(ctx, next.LearnerID, lgroups)
		r.audit(ctx, "learner.groups", fmt.Sprintf("%d groups", len(lgroups)), err)
		if err != nil {
			return err
		}
	}

	applied := next.Applied
	if learner.Active {
		applied, err = r.applyRules(ctx, next.LearnerID, applied)
		if err != nil {
			return err
		}
	}
	if ident.Deleted && next.LearnerID != "" {
		// Look again now that the target has acknowledged our writes: a
		// newer incarnation (live, or deleted again since) may have
		// written the learner before our deactivation landed. Its store
		// write precedes its target write, so it always shows up here
		// when that happened.
		owners, err := r.newerIncarnations(ctx, learner)
		if err != nil {
			return err
		}
		if len(owners) > 0 {
			return r.release(ctx, next, owners)
		}
	}
	return w.putLink(ctx, ident, next, hash, applied)
}

// newerIncarnations lists, newest first, the other identities that carry
// a tombstone's external id and own its learner before it does: every live
// identity, then the tombstones newer than this one. It looks only when
// the learner is found by that id (the mapping writes the IdP's id).
func (r *run) newerIncarnations(ctx context.Context, l connector.Learner) ([]*store.Identity, error) {
	ext := r.ident.ExternalID
	if ext == "" || !strings.EqualFold(l.ExternalID, ext) {
		return nil, nil
	}
	live, err := r.w.st.FindIdentitiesByExternalID(ctx, ext)
	if err != nil {
		return nil, fmt.Errorf("look for a live identity with the same external id: %w", err)
	}
	dead, err := r.w.st.FindTombstonesByExternalID(ctx, ext)
	if err != nil {
		return nil, fmt.Errorf("look for newer tombstones with the same external id: %w", err)
	}
	var out []*store.Identity
	for _, id := range live {
		if id.ID != r.ident.ID && !id.Deleted {
			out = append(out, id)
		}
	}
	for _, id := range dead {
		if id.ID != r.ident.ID && id.Deleted && newer(id, r.ident) {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, func(a, b *store.Identity) int {
		switch {
		case a.Deleted != b.Deleted: // live first
			if !a.Deleted {
				return -1
			}
			return 1
		case newer(a, b):
			return -1
		case newer(b, a):
			return 1
		}
		return 0
	})
	return out, nil
}

// stillCurrent re-reads the identity: nil when the sync's copy is still
// its latest version, else a retryable error (the next delivery syncs
// the latest state).
func (r *run) stillCurrent(ctx context.Context) error {
	cur, err := r.w.st.GetIdentity(ctx, r.ident.ID)
	if err != nil {
		return fmt.Errorf("reload identity: %w", err)
	}
	if cur.Version == r.ident.Version {
		return nil
	}
	return &connector.Error{Op: "resolve", Retryable: true,
		Err: fmt.Errorf("the identity changed during the sync (version %d, now %d); judging again", r.ident.Version, cur.Version)}
}

// newer orders incarnations of a person: by Created, then by ID, so that
// the order is total and every process agrees on it.
func newer(a, b *store.Identity) bool {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c > 0
	}
	return a.ID > b.ID
}

// release settles a tombstone that has newer incarnations (owners, newest
// first): it hands the learner over to the newest and records the link
// without it (the row stays, so the version bookkeeping and the pending
// mark still work).
//
// The hand-over pushes the newest one's state with Force even when this
// sync wrote nothing: an earlier attempt may have sent a deactivation that
// landed after that identity's own sync (a crash before the
// acknowledgement leaves no trace), and one repair read per re-provisioned
// person is cheap. Until the push succeeds the tombstone's message
// retries, and its link keeps the learner, so the retry hands over again.
func (r *run) release(ctx context.Context, next *store.Link, owners []*store.Identity) error {
	owner := owners[0]
	if next.LearnerID != "" {
		err := r.w.handover(ctx, r.t, r.in, r.ident, owner)
		var ce *connector.Error
		switch {
		case errors.As(err, &ce) && ce.Conflict:
			// The owner's match is ambiguous and waits for a human (its
			// own sync parks or reviews it the same way): not ours to
			// retry.
			r.w.cfg.Logger.WarnContext(ctx, "hand-over left for review", "identity", r.ident.ID, "owner", owner.ID, "target", r.t.Name)
		case err != nil:
			r.audit(ctx, "learner.release", "hand-over to newer identity "+owner.ID, err)
			return &connector.Error{Op: "handover", Retryable: true, RetryAfter: connector.RetryAfterOf(err),
				Err: fmt.Errorf("push the state of newer identity %s: %w", owner.ID, err)}
		}
		what := "a live identity"
		if owner.Deleted {
			what = "a newer tombstone"
		}
		r.audit(ctx, "learner.release", what+" carries the same external id and owns the learner: "+owner.ID, nil)
	}
	next.LearnerID, next.Applied = "", nil
	return r.w.putLink(ctx, r.ident, next, "", nil)
}

// handover syncs owner, a newer incarnation of the tombstone from, to t
// with Force on its behalf, so its state is pushed after anything the
// tombstone wrote.
//
// No deadlock: a handover waits for the lock of a strictly newer identity
// only (newer: Created, then ID, which never change), and that identity's
// own hand-overs go to still newer ones, so lock waits never close a
// cycle. A live owner may be older (two live identities once shared the
// external id); its lock is only tried, never waited for, and a busy one
// has the tombstone retry.
func (w *Worker) handover(ctx context.Context, t *Target, in queue.Intent, from, owner *store.Identity) error {
	cur, err := w.st.GetIdentity(ctx, owner.ID)
	if err != nil {
		return fmt.Errorf("load newer identity: %w", err)
	}
	if cur.Deleted != owner.Deleted {
		// Deleted meanwhile: another identity may own the learner now.
		return errors.New("the live identity was deleted meanwhile")
	}
	groups, err := w.st.GroupsOf(ctx, cur.ID)
	if err != nil {
		return fmt.Errorf("load groups: %w", err)
	}
	var unlock func()
	if newer(cur, from) {
		unlock, err = w.busy.lock(ctx, lockKey(cur, t))
		if err != nil {
			return fmt.Errorf("wait for a concurrent sync of the newer identity: %w", err)
		}
	} else if unlock = w.busy.tryLock(lockKey(cur, t)); unlock == nil {
		return errors.New("the live identity is being synced")
	}
	defer unlock()
	oin := queue.Intent{IdentityID: cur.ID, Version: cur.Version, Target: t.Name, Force: true,
		Reason: "worker.handover", RequestID: in.RequestID}
	if err := w.targetSync(ctx, t, oin, cur, groups); err != nil {
		return err
	}
	// A change (a delete above all) made while we pushed is synced in the
	// owner's own queue group, which need not run after us: have the
	// tombstone retry and judge again.
	after, err := w.st.GetIdentity(ctx, cur.ID)
	if err != nil {
		return fmt.Errorf("reload newer identity: %w", err)
	}
	if after.Version != cur.Version {
		return errors.New("the newer identity changed during the hand-over")
	}
	return nil
}

// learner maps the identity. A failed store lookup (the manager's
// external id) is retryable; any other mapping failure is a config or
// data problem and permanent.
func (r *run) learner(ctx context.Context) (connector.Learner, []string, error) {
	m := r.t.Mapping
	base := mapping.StoreLookup(ctx, r.w.st)
	var lookupErr error
	m.Lookup = func(ref string) (*store.Identity, error) {
		id, err := base(ref)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			lookupErr = err
		}
		return id, err
	}
	l, groups, err := m.Learner(r.ident, r.groups)
	switch {
	case err != nil && lookupErr != nil:
		return l, nil, fmt.Errorf("map: %w", err)
	case err != nil:
		return l, nil, &connector.Error{Op: "map", Err: err}
	}
	return l, groups, nil
}

// update pushes a changed learner. gone reports that the learner no
// longer exists in the target.
func (r *run) update(ctx context.Context, l connector.Learner) (gone bool, err error) {
	err = r.t.Conn.Update(ctx, l)
	if connector.IsNotFound(err) {
		r.audit(ctx, "learner.update", "learner gone from target; relinking", err)
		return true, nil
	}
	r.audit(ctx, activeAction(l), changedFields(r.ident), err)
	return false, err
}

// repair serves a Force intent: it reads the learner back from the target
// and updates it if it differs from the desired state.
func (r *run) repair(ctx context.Context, l connector.Learner) (gone bool, err error) {
	cur, err := r.t.Conn.Get(ctx, l.ID)
	if connector.IsNotFound(err) {
		r.audit(ctx, "learner.repair", "learner gone from target; relinking", err)
		return true, nil
	}
	if err != nil {
		r.audit(ctx, "learner.repair", "read learner", err)
		return false, err
	}
	diff := drift(l, *cur)
	if len(diff) == 0 {
		r.audit(ctx, "learner.repair", "target matches the desired state", nil)
		return false, nil
	}
	err = r.t.Conn.Update(ctx, l)
	if connector.IsNotFound(err) {
		r.audit(ctx, "learner.repair", "learner gone from target; relinking", err)
		return true, nil
	}
	r.audit(ctx, "learner.repair", "target drifted: "+strings.Join(diff, ", "), err)
	return false, err
}

// drift names (never values) the fields of want that cur does not carry.
// Fields the target reports under other names (e.g. a department name it
// answers as an id) count as drifted: the connector's Update is what
// decides, and it writes only what really changed.
func drift(want, cur connector.Learner) []string {
	var out []string
	for _, f := range []struct {
		name     string
		want, is string
	}{
		{"externalId", want.ExternalID, cur.ExternalID},
		{"userName", want.UserName, cur.UserName},
		{"email", want.Email, cur.Email},
		{"firstName", want.FirstName, cur.FirstName},
		{"lastName", want.LastName, cur.LastName},
	} {
		if f.want != f.is {
			out = append(out, f.name)
		}
	}
	if want.Active != cur.Active {
		out = append(out, "active")
	}
	for _, k := range slices.Sorted(maps.Keys(want.Fields)) {
		if want.Fields[k] != cur.Fields[k] {
			out = append(out, k)
		}
	}
	return out
}

// attach finds or creates the learner of an unlinked identity and returns
// its id ("" when the identity is inactive and has no learner yet) and
// whether it was created just now.
func (r *run) attach(ctx context.Context, l connector.Learner, next *store.Link) (string, bool, error) {
	// An inactive identity only looks for its own earlier create: taking
	// over (and switching off) someone's account by username or email on
	// behalf of a person who is not active in the IdP is never right.
	keys := r.keys(l, l.Active)
	id, by, err := r.resolve(ctx, l, keys)
	if err != nil {
		r.audit(ctx, "learner.resolve", "", err)
		return "", false, err
	}
	if id == "" && !l.Active {
		return "", false, nil
	}
	if id == "" {
		l.ID = ""
		id, err = r.t.Conn.Create(ctx, l)
		r.audit(ctx, "learner.create", "", err)
		var ce *connector.Error
		if errors.As(err, &ce) && ce.Conflict {
			// Someone created it meanwhile (a concurrent sync of this
			// identity), or the username is held by a learner the
			// lookups did not match: look again rather than fail.
			id, err := r.afterConflict(ctx, l, keys)
			return id, false, err
		}
		if err != nil {
			return "", false, err
		}
		// Record the id at once (same synced version, no hash) so a
		// later failure here never leads to a second create.
		early := *next
		early.LearnerID, early.Hash = id, ""
		if err := r.w.st.PutLink(ctx, &early); err != nil && !errors.Is(err, store.ErrVersionConflict) {
			return "", false, fmt.Errorf("save link: %w", err)
		}
		return id, true, nil
	}
	return id, false, r.adopt(ctx, l, id, by)
}

// afterConflict handles a create the target refused as a duplicate.
func (r *run) afterConflict(ctx context.Context, l connector.Learner, keys []connector.Key) (string, error) {
	id, by, err := r.resolve(ctx, l, keys)
	if err != nil {
		r.audit(ctx, "learner.resolve", "after a create conflict", err)
		return "", err
	}
	if id != "" {
		return id, r.adopt(ctx, l, id, by+" after a create conflict")
	}
	// Nothing adoptable matched: who holds the username?
	found, err := r.t.Conn.Find(ctx, connector.Key{Kind: connector.KeyUserName, Value: l.UserName})
	if err != nil {
		return "", err
	}
	if len(found) > 0 {
		err := conflict(ids(found), "the username is held by %d learner(s) that cannot be adopted", len(found))
		r.audit(ctx, "learner.resolve", "after a create conflict", err)
		return "", err
	}
	return "", &connector.Error{Op: "create", Retryable: true, Err: errors.New("the target reported a duplicate, but no matching learner is visible yet")}
}

// adopt links an existing learner and brings it to the desired state.
func (r *run) adopt(ctx context.Context, l connector.Learner, id, by string) error {
	r.audit(ctx, "learner.adopt", "matched by "+by, nil)
	l.ID = id
	err := r.t.Conn.Update(ctx, l)
	r.audit(ctx, "learner.update", "adopted learner brought to desired state", err)
	return err
}

// review hands an ambiguous match to OnConflict and settles the target
// for now: nothing is written until a human resolves it and the identity
// changes or is re-queued.
func (r *run) review(ctx context.Context, ce *conflictError) error {
	err := r.w.cfg.OnConflict(ctx, r.ident.ID, r.t.Name, ce.reason, slices.Clone(ce.candidates))
	r.audit(ctx, "learner.review", "left for review: "+ce.reason, err)
	if err != nil {
		return &connector.Error{Op: "review", Retryable: true, Err: fmt.Errorf("record conflict for review: %w", err)}
	}
	return nil
}

func (r *run) keys(l connector.Learner, adopt bool) []connector.Key {
	keys := []connector.Key{{Kind: connector.KeyExternalID, Value: l.ExternalID}}
	if !adopt {
		return keys
	}
	for _, k := range r.t.AdoptBy {
		if k == connector.KeyExternalID {
			continue
		}
		keys = append(keys, connector.Key{Kind: k, Value: keyValue(l, k)})
	}
	return keys
}

// conflictError is an ambiguous match: a human must decide. It never holds
// attribute values.
type conflictError struct {
	reason     string
	candidates []string
}

func (e *conflictError) Error() string {
	return fmt.Sprintf("%s (learners %s)", e.reason, strings.Join(e.candidates, ", "))
}

func conflict(candidates []string, format string, args ...any) error {
	return &connector.Error{Op: "resolve", Conflict: true,
		Err: &conflictError{reason: fmt.Sprintf(format, args...), candidates: candidates}}
}

func ids(ls []connector.Learner) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.ID
	}
	return out
}

// resolve finds an existing learner for an unlinked identity. It returns
// the learner id ("" if none) and the key that matched.
func (r *run) resolve(ctx context.Context, l connector.Learner, keys []connector.Key) (string, string, error) {
	for _, k := range keys {
		if k.Value == "" {
			continue
		}
		found, err := r.t.Conn.Find(ctx, k)
		if err != nil {
			return "", "", err
		}
		switch {
		case len(found) > 1:
			return "", "", conflict(ids(found), "%d learners match by %s", len(found), k.Kind)
		case len(found) == 0:
			continue
		}
		f := found[0]
		if k.Kind != connector.KeyExternalID && f.ExternalID != "" && !strings.EqualFold(f.ExternalID, l.ExternalID) {
			return "", "", conflict([]string{f.ID}, "a learner matches by %s but carries another external id", k.Kind)
		}
		if err := r.soleOwner(ctx, l, f.ID); err != nil {
			return "", "", err
		}
		return f.ID, string(k.Kind), nil
	}
	return "", "", nil
}

// soleOwner refuses to adopt when other live identities map to the same
// external id: two identities sharing one learner would overwrite each
// other forever.
func (r *run) soleOwner(ctx context.Context, l connector.Learner, learnerID string) error {
	if l.ExternalID == "" || l.ExternalID != r.ident.ExternalID {
		return nil // the external id is not the IdP's; nothing to check cheaply
	}
	same, err := r.w.st.FindIdentitiesByExternalID(ctx, l.ExternalID)
	if err != nil {
		return fmt.Errorf("check external id: %w", err)
	}
	others := 0
	for _, id := range same {
		if id.ID != r.ident.ID {
			others++
		}
	}
	if others > 0 {
		return conflict([]string{learnerID}, "%d other identities carry the same external id", others)
	}
	return nil
}

func keyValue(l connector.Learner, k connector.KeyKind) string {
	switch k {
	case connector.KeyUserName:
		return l.UserName
	case connector.KeyEmail:
		return l.Email
	case connector.KeyEmployeeNumber:
		return l.Fields["employeeNumber"]
	}
	return ""
}

func (w *Worker) putLink(ctx context.Context, ident *store.Identity, l *store.Link, hash string, applied []string) error {
	l.SyncedVersion = ident.Version
	l.Hash = hash
	l.Applied = applied
	l.Updated = w.cfg.Now().UTC()
	if err := w.st.PutLink(ctx, l); err != nil && !errors.Is(err, store.ErrVersionConflict) {
		return fmt.Errorf("save link: %w", err)
	}
	return nil
}

// applyRules carries out the enrollments the rules call for now and returns
// the applied list to record. A failed enrollment fails the sync; the retry
// plans it again (enrolling twice is harmless in the targets).
func (r *run) applyRules(ctx context.Context, learnerID string, applied []string) ([]string, error) {
	res, err := mapping.Resource(r.ident)
	if err != nil {
		return applied, &connector.Error{Op: "rules", Err: err}
	}
	names := make([]string, 0, len(r.groups))
	for _, g := range r.groups {
		names = append(names, g.GroupName)
	}
	actions := r.t.Rules.Plan(res, names, applied)
	fired := slices.Clone(applied)
	if len(actions) > 0 {
		en, ok := r.t.Conn.(connector.Enroller)
		if !ok {
			r.audit(ctx, "enroll", "target takes no enrollments; rules skipped", nil)
		}
		for _, a := range actions {
			if ok {
				err := en.Enroll(ctx, learnerID, a.Enrollment)
				r.audit(ctx, "enroll", fmt.Sprintf("%s %s: %s", a.Enrollment.Kind, a.Enrollment.ID, a.Why), err)
				if err != nil {
					return applied, err
				}
			}
			fired = append(fired, a.Rule)
		}
	}
	return r.t.Rules.StillMatching(res, names, fired), nil
}

func activeAction(l connector.Learner) string {
	if !l.Active {
		return "learner.deactivate"
	}
	return "learner.update"
}

// changedFields names (never values) what the identity carries; the audit
// says which version caused the write, the store has the rest.
func changedFields(ident *store.Identity) string {
	if ident.Deleted {
		return "identity deleted in IdP"
	}
	return "identity version " + fmt.Sprint(ident.Version)
}

func (w *Worker) audit(ctx context.Context, t *Target, in queue.Intent, ident *store.Identity, action, detail string, err error) {
	result := "ok"
	if err != nil {
		result = "error: " + err.Error()
	}
	rec := &store.AuditRecord{
		IdentityID: ident.ID, Time: w.cfg.Now().UTC(), Target: t.Name, Actor: "worker",
		Action: action, Detail: detail, SourceVersion: ident.Version,
		Reason: in.Reason, RequestID: in.RequestID, Result: result,
	}
	// The target call already happened: record it even if we are shutting
	// down, or the trail would miss an action that took effect.
	if aerr := w.st.AppendAudit(context.WithoutCancel(ctx), rec); aerr != nil {
		w.cfg.Logger.WarnContext(ctx, "audit write failed", "identity", ident.ID, "err", aerr)
	}
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelWarn
	}
	w.cfg.Logger.Log(ctx, lvl, "sync action", "identity", ident.ID, "target", t.Name, "action", action,
		"version", ident.Version, "request_id", in.RequestID, "result", strings.SplitN(result, "\n", 2)[0])
}

// keyLocks serialises work per key (identity id) inside one Worker.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch      chan struct{} // holds a token while locked
	waiters int           // holders and waiters; the entry goes at 0
}

// tryLock takes key if it is free now and returns the unlock, else nil.
func (k *keyLocks) tryLock(key string) func() {
	unlock, _ := k.take(context.Background(), key, false)
	return unlock
}

// lock waits for key to be free (or ctx to end) and returns the unlock.
func (k *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	return k.take(ctx, key, true)
}

// take takes key, waiting for it (or ctx to end) if wait is set; without
// wait it returns nil, nil when the key is held.
func (k *keyLocks) take(ctx context.Context, key string, wait bool) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyLock{ch: make(chan struct{}, 1)}
		k.m[key] = e
	}
	e.waiters++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		e.waiters--
		if e.waiters == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	if !wait {
		select {
		case e.ch <- struct{}{}:
			return func() { <-e.ch; release() }, nil
		default:
			release()
			return nil, nil
		}
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
