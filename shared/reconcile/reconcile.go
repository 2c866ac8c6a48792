// Package reconcile compares, once a day, three views of who should be a
// learner: the IdP's app assignments (a Directory, e.g. Okta), our
// desired state (the store) and the target's learners (a
// connector.Lister); it repairs the drift through the sync queue and
// reports it.
//
// # What it finds
//
//	missing     an active identity with no learner in the target
//	mismatch    a linked learner whose mapped fields or active state differ
//	inactive    a learner still active for an inactive or deleted identity
//	adopt       an unlinked learner matching exactly one unlinked identity
//	            (external id first, then the target's AdoptBy keys)
//	ambiguous   several matches: the identity goes to the review list
//	orphan      an active learner matching no identity: reported only
//	unknown     assigned and active in the directory, unknown to us
//	unassigned  active here, but unassigned or deactivated in the directory
//
// Repairs go only through the queue: Force intents with Reason
// "reconcile.<kind>", which make the worker read the learner back and
// repair, adopt or create it. Reconciliation never writes to a target.
// It writes to the store only to deactivate unassigned identities and,
// with Options.CreateIdentities, to create unknown ones from the
// directory profile — what an IT admin expects when Okta's SCIM push of
// an assignment was lost; Okta later finds the identity by userName and
// links it. Only users active in the directory are created.
//
// Only mapped fields are compared, and only those the target reads back
// under the same name (Options.IgnoreFields; fields using externalIdOf
// are skipped as they need store look-ups per identity). Group names are
// compared through the target's groups field when Options.GroupsField is
// set.
//
// # Safety
//
// Options.DryRun counts and reports without queuing or writing anything
// but the report. Deactivations (inactive and unassigned) wait until every
// view has been read; a guard then refuses all of them when they exceed
// Options.MaxDeactivateShare of the target's active learners, or when the
// directory answered no assigned user at all while identities are active
// (an empty or broken Okta answer must never switch the LMS off). The
// report says "refused" and why; the other repairs still happen.
//
// # Bounded memory, and resuming
//
// The store side is reduced to a compact index (an id and a few hashes per
// identity); directory users and learners are streamed page by page and
// each is decided against the index, leaving a mark per identity. A run
// that reaches Options.Deadline stops between pages and saves its
// progress in the Doc "reconcile/<target>" (phase, cursor, counts) plus
// its marks in "reconcilestate/…" Docs; the next Run resumes there and
// reports the same totals. The checkpoint also holds a lease, so two runs
// of one target never overlap (ErrBusy).
//
// A finished run stores its Report as the Doc
// "reconcilereport/<target>-<time>", logs it, and writes a CloudWatch
// Embedded Metric Format line (namespace "learnerlink", metric "Drift",
// dimension Target) to Deps.Metrics.
//
// # Several targets
//
// Run reconciles one target. RunAll reconciles every configured target
// whose connector can list its learners (the others are named in
// Report.NotReconciled): it reads the directory once per run — unknown
// identities are created once and queued for every target — then runs
// each target in turn as Run would, against that shared directory view:
// per target checkpoint "reconcile/<target>", lease, guard, report Doc and
// Drift metric, repairs queued with Intent.Target set to that target. An
// identity the directory no longer assigns is deactivated in the store by
// the first target whose guard allows it; a target whose guard refused
// gets no intent, and its next run finds the learner "inactive", under
// its guard again. The run's own progress is the Doc "reconcile/@all".
// One failing target does not stop the others (see RunAll). With a single
// listable target RunAll is exactly Run.
package reconcile

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// Kind is a kind of drift.
type Kind string

const (
	Missing    Kind = "missing"
	Mismatch   Kind = "mismatch"
	Inactive   Kind = "inactive"
	Adopt      Kind = "adopt"
	Ambiguous  Kind = "ambiguous"
	Orphan     Kind = "orphan"
	Unknown    Kind = "unknown"
	Unassigned Kind = "unassigned"
)

// Kinds lists every kind, in report order.
func Kinds() []Kind {
	return []Kind{Missing, Mismatch, Inactive, Adopt, Ambiguous, Orphan, Unknown, Unassigned}
}

// ErrBusy means another run of the same target holds the lease.
var ErrBusy = errors.New("reconcile: another run of this target is in progress")

// Store is what reconciliation needs of the desired-state store.
type Store interface {
	ListIdentities(ctx context.Context, cursor string, limit int) (store.Page[*store.Identity], error)
	ListLinks(ctx context.Context, target, cursor string, limit int) (store.Page[*store.Link], error)
	ListGroups(ctx context.Context, cursor string, limit int) (store.Page[*store.Group], error)
	Members(ctx context.Context, groupID string) ([]store.Member, error)
	GetIdentity(ctx context.Context, id string) (*store.Identity, error)
	CreateIdentity(ctx context.Context, id *store.Identity) error
	UpdateIdentity(ctx context.Context, id *store.Identity, expectedVersion int64) error
	AppendAudit(ctx context.Context, r *store.AuditRecord) error
	GetDoc(ctx context.Context, key string) (*store.Doc, error)
	PutDoc(ctx context.Context, d *store.Doc, expectedVersion int64) error
	DeleteDoc(ctx context.Context, key string) error
	ListDocs(ctx context.Context, kind, cursor string, limit int) (store.Page[*store.Doc], error)
}

// Reviews is the review list (*review.List).
type Reviews interface {
	List(ctx context.Context, target string) ([]review.Entry, error)
	Park(ctx context.Context, identityID, target, reason string, candidateIDs []string) error
}

var _ Reviews = (*review.List)(nil)

// Directory lists the users assigned to our app in the IdP, one page at a
// time: after is "" for the first page, then the previous answer's next;
// next is "" after the last page.
type Directory interface {
	AppUsers(ctx context.Context, after string) (users []DirUser, next string, err error)
}

// DirUser is one assignment as the directory reports it.
type DirUser struct {
	// ID is the IdP's user id; our identities carry it as externalId.
	ID string
	// Login is the IdP login, our identities' userName.
	Login string
	// Active: assigned and not deactivated in the IdP. An identity whose
	// user is not Active here (or not listed) is "unassigned".
	Active bool
	// Provision: a person active in the IdP (not staged or suspended),
	// whose identity may be created when it is unknown to us.
	Provision bool

	// Profile attributes, for an identity created from the directory.
	Email, FirstName, LastName, DisplayName                                          string
	Title, Department, EmployeeNumber, CostCenter, Division, Organization, ManagerID string
}

// Deps are what Run works with.
type Deps struct {
	Store Store
	// Queue receives the repairs; not needed for a dry run.
	Queue queue.Enqueuer
	// Target is the target Run reconciles; its Conn must be a
	// connector.Lister. RunAll takes its targets apart and ignores it.
	Target worker.Target
	// Directory, if set, adds the IdP's view (unknown and unassigned).
	Directory Directory
	// Reviews, if set, is read (ignored and open entries) and receives
	// ambiguous identities.
	Reviews Reviews
	Logger  *slog.Logger
	// Metrics receives the Embedded Metric Format line of a finished run
	// (os.Stdout in Lambda); nil writes none.
	Metrics io.Writer
	Now     func() time.Time
}

// Options tune a run.
type Options struct {
	// DryRun reports without queuing or writing (the report is stored).
	DryRun bool
	// MaxDeactivateShare is the largest share of the target's active
	// learners one run may deactivate (default 0.1).
	MaxDeactivateShare float64
	// Deadline is when a run must stop and save its progress (the
	// Lambda's deadline minus a margin); zero runs to the end. At least
	// one page is processed per invocation, so a run always advances.
	Deadline time.Time
	// Samples is how many example ids the report keeps per kind
	// (default 20).
	Samples int
	// PageSize is the store listing page size (default 500).
	PageSize int
	// CreateIdentities creates identities for directory users unknown
	// to us (see the package doc).
	CreateIdentities bool
	// GroupsField is the target field carrying the learner's group names
	// (ABSORB_GROUPS_FIELD); empty: groups are not compared.
	GroupsField string
	// GroupsValue renders group names as the target stores them in
	// GroupsField (default GroupsValue, the Absorb format).
	GroupsValue func([]string) string
	// IgnoreFields are mapped fields not compared (nil:
	// DefaultIgnoreFields).
	IgnoreFields []string
	// Every skips a new run when the last one finished less than Every
	// ago (a schedule can then fire often to resume suspended runs).
	Every time.Duration
	// ReportTTL is how long reports are kept (default 90 days).
	ReportTTL time.Duration
}

func (o *Options) defaults() {
	if o.MaxDeactivateShare <= 0 {
		o.MaxDeactivateShare = 0.1
	}
	if o.Samples <= 0 {
		o.Samples = 20
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.IgnoreFields == nil {
		o.IgnoreFields = DefaultIgnoreFields()
	}
	if o.ReportTTL <= 0 {
		o.ReportTTL = 90 * 24 * time.Hour
	}
}

// runner is one invocation of a run.
type runner struct {
	d      Deps
	o      Options
	lister connector.Lister
	cmp    *comparer
	log    *slog.Logger
	// name keys the run's Docs: the target's name, or allKey for a run
	// over several targets.
	name  string
	first string // the phase a new run starts in
	// pv, for a target's run inside a run over several targets, is that
	// run's directory view; nil for Run.
	pv *parentView

	cp        *checkpoint
	cpVersion int64
	cpLoaded  checkpoint // as read, to fall back to if saving state fails
	x         *index
	s         *state
	keys      []connector.KeyKind
	pages     int // pages processed in this invocation
	began     time.Time
}

// Run reconciles one target: it resumes a suspended run or starts one, and
// returns its report (Complete false when it stopped at the deadline; the
// next Run continues). With Options.Every it may skip (Report.Skipped).
func Run(ctx context.Context, d Deps, o Options) (*Report, error) {
	r, err := newRunner(d, o)
	if err != nil {
		return nil, err
	}
	return r.run(ctx)
}

// newRunner checks d and o and prepares a run of d.Target.
func newRunner(d Deps, o Options) (*runner, error) {
	if d.Store == nil || d.Target.Name == "" || d.Target.Conn == nil {
		return nil, errors.New("reconcile: a store and a target are required")
	}
	lister, ok := d.Target.Conn.(connector.Lister)
	if !ok {
		return nil, fmt.Errorf("reconcile: target %s cannot list its learners", d.Target.Name)
	}
	if d.Queue == nil && !o.DryRun {
		return nil, errors.New("reconcile: a queue is required unless dry-running")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	o.defaults()
	first := phaseLearners
	if d.Directory != nil {
		first = phaseDirectory
	}
	return &runner{
		d: d, o: o, lister: lister, log: d.Logger.With("target", d.Target.Name),
		name: d.Target.Name, first: first,
		cmp:   newComparer(d.Target.Mapping, o.IgnoreFields, o.GroupsField, o.GroupsValue),
		keys:  adoptKeys(d.Target),
		began: d.Now(),
	}, nil
}

func (r *runner) now() time.Time { return r.d.Now().UTC() }

func (r *runner) run(ctx context.Context) (*Report, error) {
	if r.o.DryRun {
		now := r.now()
		r.cp = &checkpoint{RunID: newRunID(now), Started: now, Invocations: 1, Phase: r.first, Directory: r.d.Directory != nil}
		r.inherit(r.cp)
		r.s = newState()
	} else {
		skip, err := r.claim(ctx)
		if err != nil {
			return nil, err
		}
		if skip != "" {
			return &Report{Target: r.d.Target.Name, Skipped: skip, Counts: zeroCounts(), Guard: Guard{Verdict: GuardOK}}, nil
		}
	}
	t0 := r.now()
	x, err := r.buildIndex(ctx)
	if err != nil {
		return r.suspend(ctx, err)
	}
	r.x = x
	r.log.InfoContext(ctx, "reconcile: index built", "run", r.cp.RunID, "phase", r.cp.Phase,
		"identities", x.live, "links", x.links, "invocation", r.cp.Invocations, "seconds", r.now().Sub(t0).Seconds())
	for {
		var stop bool
		switch r.cp.Phase {
		case phaseDirectory:
			if r.d.Directory == nil {
				// Resumed without a directory: judge without it.
				r.cp.Directory, r.cp.Phase, r.cp.Cursor = false, phaseLearners, ""
				continue
			}
			stop, err = r.directoryPhase(ctx)
		case phaseLearners:
			stop, err = r.learnersPhase(ctx)
		case phaseFinalize:
			return r.finalize(ctx)
		default:
			err = fmt.Errorf("reconcile: checkpoint in unknown phase %q", r.cp.Phase)
		}
		if err != nil || stop {
			return r.suspend(ctx, err)
		}
	}
}

// claim takes the lease on the target's checkpoint and loads (or starts)
// the run. It answers a reason when no run is due.
func (r *runner) claim(ctx context.Context) (string, error) {
	st, target := r.d.Store, r.name
	cp, v, err := loadCheckpoint(ctx, st, target)
	if err != nil {
		return "", err
	}
	now := r.now()
	if cp.Lease != "" && cp.LeaseUntil.After(now) {
		return "", fmt.Errorf("%w (run %s, lease until %s)", ErrBusy, cp.RunID, cp.LeaseUntil.Format(time.RFC3339))
	}
	r.cpLoaded = *cp
	r.s = newState()
	if cp.Phase != phaseIdle && (cp.Parent == "") != (r.parent() == "") {
		// A run of this target alone keeps its directory marks, one inside
		// a run over several targets gets them from that run: neither can
		// finish the other's.
		r.log.InfoContext(ctx, "reconcile: the saved run was begun by another kind of run; starting again", "run", cp.RunID)
		cp.Phase = phaseIdle
	}
	if cp.Phase != phaseIdle && cp.MarkChunks > 0 {
		s, err := loadState(ctx, st, target, cp.RunID, cp.MarkGen, cp.MarkChunks)
		if err != nil {
			// Without its marks the run cannot finish correctly: start over.
			r.log.WarnContext(ctx, "reconcile: saved state unreadable; starting the run again", "run", cp.RunID, "err", err)
			cp.Phase = phaseIdle
		} else {
			r.s = s
		}
	}
	if cp.Phase == phaseIdle {
		if r.o.Every > 0 && !cp.LastCompleted.IsZero() && now.Sub(cp.LastCompleted) < r.o.Every {
			return fmt.Sprintf("the last run finished at %s, less than %s ago", cp.LastCompleted.Format(time.RFC3339), r.o.Every), nil
		}
		*cp = checkpoint{RunID: newRunID(now), Phase: r.first, Started: now, Directory: r.d.Directory != nil,
			LastCompleted: cp.LastCompleted, LastReport: cp.LastReport}
		r.inherit(cp)
		r.s = newState()
	} else if cp.Parent != r.parent() {
		// Left unfinished by an earlier run over several targets: go on,
		// judged against this run's (fresher) directory view.
		r.inherit(cp)
	}
	cp.Invocations++
	cp.Lease = rand.Text()
	cp.LeaseUntil = now.Add(time.Hour)
	if !r.o.Deadline.IsZero() {
		cp.LeaseUntil = r.o.Deadline.Add(2 * time.Minute)
	}
	nv, err := saveCheckpoint(ctx, st, target, cp, v)
	if errors.Is(err, store.ErrVersionConflict) {
		return "", fmt.Errorf("%w (claimed concurrently)", ErrBusy)
	}
	if err != nil {
		return "", err
	}
	r.cp, r.cpVersion = cp, nv
	return "", nil
}

func newRunID(now time.Time) string {
	return now.UTC().Format("20060102T150405Z") + "-" + rand.Text()[:6]
}

// stop says whether to suspend before the next page: past the deadline,
// once this invocation has made progress.
func (r *runner) stop() bool {
	return r.pages > 0 && !r.o.Deadline.IsZero() && !r.now().Before(r.o.Deadline)
}

// suspend saves the run's progress (phase, cursor, counts, marks) and
// releases the lease; the next Run resumes. cause is the error that
// stopped it, nil at the deadline.
func (r *runner) suspend(ctx context.Context, cause error) (*Report, error) {
	rep := r.report(false)
	if cause != nil {
		r.log.WarnContext(ctx, "reconcile: run interrupted; it resumes on the next invocation", "run", r.cp.RunID, "phase", r.cp.Phase, "err", cause)
	} else {
		r.log.InfoContext(ctx, "reconcile: deadline reached; progress saved", "run", r.cp.RunID, "phase", r.cp.Phase, "pages", r.pages)
	}
	if r.o.DryRun {
		return rep, errors.Join(cause, r.storeReport(ctx, rep))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	st, target := r.d.Store, r.name
	gen := r.cp.Invocations
	var serr error
	saved := r.pages > 0 // without a page done, the marks are those loaded: keep them
	if saved {
		var n int
		n, serr = saveState(sctx, st, target, r.cp.RunID, gen, r.s, r.now())
		if serr == nil {
			r.cp.MarkGen, r.cp.MarkChunks = gen, n
		}
	}
	if serr != nil {
		// Progress without its marks would be wrong: keep what was saved
		// before this invocation.
		prev := r.cpLoaded
		prev.Invocations = r.cp.Invocations
		r.cp = &prev
	}
	r.cp.Lease, r.cp.LeaseUntil = "", time.Time{}
	_, cerr := saveCheckpoint(sctx, st, target, r.cp, r.cpVersion)
	if saved && serr == nil && cerr == nil {
		if err := dropState(sctx, st, target, r.cp.RunID, gen); err != nil {
			r.log.WarnContext(ctx, "reconcile: could not drop older saved state", "err", err)
		}
	}
	return rep, errors.Join(cause, serr, cerr)
}

// effects are one page's outcome, applied only once the whole page is
// done, so a page that fails half way counts nothing and is redone.
type effects struct {
	t       tally
	marks   map[uint64]uint8
	claims  []claimOp
	intents []queue.Intent
	parks   []parkOp
}

type claimOp struct {
	h       uint64
	rank    uint8
	key     string
	learner string
}

type parkOp struct {
	identity, reason string
	candidates       []string
}

func newEffects() *effects { return &effects{marks: map[uint64]uint8{}} }

func (r *runner) marked(eff *effects, h uint64, m uint8) bool {
	return (r.markOf(h)|eff.marks[h])&m != 0
}

// markOf is an identity's marks: this run's, and its parent's directory
// marks.
func (r *runner) markOf(h uint64) uint8 {
	m := r.s.marks[h]
	if r.pv != nil {
		m |= r.pv.marks[h]
	}
	return m
}

// stableSince is when the directory began to be read: an identity changed
// since then may be assigned after the read, so it is never judged
// unassigned.
func (r *runner) stableSince() time.Time {
	if r.pv != nil {
		return r.pv.started
	}
	return r.cp.Started
}

// drift counts one identity and queues its repair.
func (r *runner) drift(eff *effects, k Kind, e *ident) {
	eff.t.add(k, e.id, r.o.Samples)
	eff.intents = append(eff.intents, r.intent(e.id, e.version, k))
}

func (r *runner) intent(id string, version int64, k Kind) queue.Intent {
	return queue.Intent{IdentityID: id, Version: version, Target: r.d.Target.Name, Force: true,
		Reason: "reconcile." + string(k), RequestID: "reconcile-" + r.cp.RunID}
}

// park sends an identity to the review list (once per run).
func (r *runner) park(eff *effects, e *ident, reason string, candidates []string) {
	h := key(e.id)
	if r.marked(eff, h, mHandled) || e.has(fIgnored) {
		return
	}
	eff.marks[h] |= mHandled
	eff.t.add(Ambiguous, e.id, r.o.Samples)
	eff.parks = append(eff.parks, parkOp{identity: e.id, reason: reason, candidates: candidates})
}

// commit applies a page's effects: queues and parks (unless dry-running),
// then counts and marks.
func (r *runner) commit(ctx context.Context, eff *effects) error {
	if !r.o.DryRun {
		for _, p := range eff.parks {
			if r.d.Reviews == nil {
				break
			}
			if err := r.d.Reviews.Park(ctx, p.identity, r.d.Target.Name, p.reason, p.candidates); err != nil {
				return fmt.Errorf("reconcile: park for review: %w", err)
			}
			eff.t.Parked++
		}
		for start := 0; start < len(eff.intents); start += 100 {
			batch := eff.intents[start:min(start+100, len(eff.intents))]
			if err := r.d.Queue.Enqueue(ctx, batch...); err != nil {
				return fmt.Errorf("reconcile: enqueue repairs: %w", err)
			}
		}
		eff.t.Enqueued += len(eff.intents)
	}
	r.cp.Tally.merge(&eff.t, r.o.Samples)
	for h, m := range eff.marks {
		r.s.marks[h] |= m
	}
	for _, c := range eff.claims {
		r.s.addClaim(c.h, c.rank, c.key, c.learner)
	}
	return nil
}

func (r *runner) audit(ctx context.Context, identityID string, version int64, action, detail string, err error) {
	result := "ok"
	if err != nil {
		result = "error: " + err.Error()
	}
	rec := &store.AuditRecord{IdentityID: identityID, Time: r.now(), Target: r.d.Target.Name, Actor: "reconcile",
		Action: action, Detail: detail, SourceVersion: version, RequestID: "reconcile-" + r.cp.RunID, Result: result}
	if aerr := r.d.Store.AppendAudit(ctx, rec); aerr != nil {
		r.log.WarnContext(ctx, "reconcile: audit write failed", "identity", identityID, "err", aerr)
	}
}
