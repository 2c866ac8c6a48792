package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// Target is one target of RunAll.
type Target struct {
	worker.Target
	// GroupsField and GroupsValue are this target's Options.GroupsField
	// and Options.GroupsValue (RunAll ignores those of Options): only an
	// Absorb target carries its groups in a field.
	GroupsField string
	GroupsValue func([]string) string
}

// TargetsError is RunAll's error when some targets failed; the others
// were reconciled. It does not unwrap to the targets' errors, so
// errors.Is(err, ErrBusy) still means "another run over these targets is
// in progress".
type TargetsError struct {
	// Failed maps each failed target to its error.
	Failed map[string]error
}

// Targets names the failed targets, sorted.
func (e *TargetsError) Targets() []string { return slices.Sorted(maps.Keys(e.Failed)) }

func (e *TargetsError) Error() string {
	var b strings.Builder
	b.WriteString("reconcile: failed target(s): ")
	for i, n := range e.Targets() {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", n, e.Failed[n])
	}
	return b.String()
}

// parentView is what a run over several targets hands each target's run:
// its id, and the directory as it read it, once for all of them.
type parentView struct {
	run     string
	started time.Time // when the directory began to be read
	// directory: the directory was read from start to end, so marks can
	// judge unassigned identities.
	directory bool
	marks     map[uint64]uint8 // mAssigned, and mHandled for identities created from the directory
	t         tally            // DirUsers, DirActive and the unknown users
}

func (r *runner) parent() string {
	if r.pv != nil {
		return r.pv.run
	}
	return ""
}

// inherit gives a target's checkpoint its parent's directory view: the
// directory's figures and unknown users appear in every target's report,
// as they would if the target were reconciled alone.
func (r *runner) inherit(cp *checkpoint) {
	if r.pv == nil {
		return
	}
	cp.Parent, cp.Directory = r.pv.run, r.pv.directory
	t := &cp.Tally
	t.DirUsers, t.DirActive = r.pv.t.DirUsers, r.pv.t.DirActive
	delete(t.Counts, Unknown)
	delete(t.Samples, Unknown)
	if n := r.pv.t.Counts[Unknown]; n > 0 {
		if t.Counts == nil {
			t.Counts = map[Kind]int{}
		}
		t.Counts[Unknown] = n
	}
	if s := r.pv.t.Samples[Unknown]; len(s) > 0 {
		if t.Samples == nil {
			t.Samples = map[Kind][]string{}
		}
		t.Samples[Unknown] = slices.Clone(s)
	}
}

// maxErrorLen bounds a target's error kept in the checkpoint.
const maxErrorLen = 500

// RunAll reconciles every target whose connector can list its learners
// (a connector.Lister); the others are skipped, logged and named in
// Report.NotReconciled. d.Target is ignored.
//
// With a single such target it is Run, with that target's GroupsField:
// the same Docs, report and behaviour. With several, it reads the
// directory once, then reconciles the targets one after the other, each
// with its own checkpoint, lease, guard, stored report and Drift metric,
// its repairs queued for it alone; identities created from the directory
// are queued for every target (Intent.Target ""). The run's own progress
// (directory cursor and marks, which targets are done) is the Doc
// "reconcile/@all", under a lease of its own (ErrBusy); at the deadline it
// stops between pages or targets and the next RunAll resumes it, target by
// target. A target whose run fails does not stop the others: the run
// finishes without it, returns a *TargetsError naming it, and the next
// run resumes that target's own run where it stopped. Options.Every
// applies to the run as a whole.
//
// The report then sums its Targets (a drift found in two targets counts
// twice) except unknown users, counted once; its Guard is refused when
// any target's was; Complete is false while targets remain or when one
// failed (FailedTargets).
func RunAll(ctx context.Context, d Deps, targets []Target, o Options) (*Report, error) {
	if d.Store == nil {
		return nil, errors.New("reconcile: a store is required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	var listers []Target
	var skipped map[string]string
	seen := map[string]bool{}
	for _, t := range targets {
		switch {
		case t.Name == "" || t.Conn == nil:
			return nil, errors.New("reconcile: every target needs a name and a connector")
		case seen[t.Name]:
			return nil, fmt.Errorf("reconcile: target %s given twice", t.Name)
		}
		seen[t.Name] = true
		if _, ok := t.Conn.(connector.Lister); !ok {
			if skipped == nil {
				skipped = map[string]string{}
			}
			skipped[t.Name] = "its connector cannot list learners"
			d.Logger.WarnContext(ctx, "reconcile: target not reconciled: its connector cannot list learners", "target", t.Name)
			continue
		}
		listers = append(listers, t)
	}
	switch len(listers) {
	case 0:
		return &Report{Counts: zeroCounts(), Guard: Guard{Verdict: GuardOK}, NotReconciled: skipped},
			errors.New("reconcile: no target can list its learners")
	case 1:
		t := listers[0]
		d.Target = t.Target
		o.GroupsField, o.GroupsValue = t.GroupsField, t.GroupsValue
		rep, err := Run(ctx, d, o)
		if rep != nil {
			rep.NotReconciled = skipped
		}
		return rep, err
	}
	if d.Queue == nil && !o.DryRun {
		return nil, errors.New("reconcile: a queue is required unless dry-running")
	}
	o.defaults()
	first := phaseTargets
	if d.Directory != nil {
		first = phaseDirectory
	}
	names := make([]string, len(listers))
	for i, t := range listers {
		names[i] = t.Name
	}
	// The run's own runner reads the directory: with no target, what it
	// queues and audits concerns every target.
	ad := d
	ad.Target = worker.Target{}
	m := &multi{
		d: d, o: o, targets: listers, skipped: skipped,
		r:       &runner{d: ad, o: o, name: allKey, first: first, log: d.Logger.With("targets", names), began: d.Now()},
		reports: map[string]*Report{}, failed: map[string]error{},
	}
	return m.run(ctx)
}

// multi is one invocation of a run over several targets.
type multi struct {
	d       Deps
	o       Options
	targets []Target
	skipped map[string]string
	// r holds the run's checkpoint and directory marks, and reads the
	// directory.
	r       *runner
	reports map[string]*Report // this invocation's, by target
	failed  map[string]error   // this invocation's failures
	ran     bool               // a target's run was started in this invocation
}

func (m *multi) run(ctx context.Context) (*Report, error) {
	r := m.r
	if m.o.DryRun {
		now := r.now()
		r.cp = &checkpoint{RunID: newRunID(now), Started: now, Invocations: 1, Phase: r.first, Directory: r.d.Directory != nil}
		r.s = newState()
	} else {
		skip, err := r.claim(ctx)
		if err != nil {
			return nil, err
		}
		if skip != "" {
			return &Report{Skipped: skip, Counts: zeroCounts(), Guard: Guard{Verdict: GuardOK}, NotReconciled: m.skipped}, nil
		}
	}
	if r.cp.Targets == nil {
		r.cp.Targets = map[string]targetProgress{}
	}
	if r.cp.Phase == phaseDirectory {
		if stop, err := m.directory(ctx); err != nil || stop {
			return m.suspend(ctx, err)
		}
	}
	if r.cp.Phase != phaseTargets {
		return m.suspend(ctx, fmt.Errorf("reconcile: checkpoint in unknown phase %q", r.cp.Phase))
	}
	pv := &parentView{run: r.cp.RunID, started: r.cp.Started, directory: r.cp.Directory, marks: r.s.marks, t: r.cp.Tally}
	for _, t := range m.targets {
		p := r.cp.Targets[t.Name]
		if p.Done || p.Error != "" {
			continue
		}
		// Between targets, stop at the deadline once this invocation has
		// made progress (a target's run does at least one page).
		if (r.pages > 0 || m.ran) && !m.o.Deadline.IsZero() && !r.now().Before(m.o.Deadline) {
			return m.suspend(ctx, nil)
		}
		m.ran = true
		rep, err := m.runTarget(ctx, t, pv)
		if rep != nil {
			m.reports[t.Name] = rep
		}
		switch {
		case err != nil:
			m.failed[t.Name] = err
			msg := err.Error()
			p.Error = msg[:min(len(msg), maxErrorLen)]
			r.log.ErrorContext(ctx, "reconcile: target failed; the others go on", "target", t.Name, "err", err)
		case rep.Complete:
			p.Done, p.Report = true, rep.Key
		}
		r.cp.Targets[t.Name] = p
		if err == nil && !rep.Complete {
			return m.suspend(ctx, nil) // the target's run reached the deadline
		}
	}
	return m.finish(ctx)
}

// directory reads the directory's assignments once for every target.
func (m *multi) directory(ctx context.Context) (bool, error) {
	r := m.r
	if r.d.Directory == nil {
		// Resumed without a directory: judge without it.
		r.cp.Directory, r.cp.Phase, r.cp.Cursor = false, phaseTargets, ""
		return false, nil
	}
	x, err := r.directoryIndex(ctx)
	if err != nil {
		return false, err
	}
	r.x = x
	stop, err := r.directoryPhase(ctx)
	if err != nil || stop {
		return stop, err
	}
	r.cp.Phase = phaseTargets // directoryPhase moves on to a target's learners
	r.x = nil                 // each target's run builds its own index
	return false, nil
}

func (m *multi) runTarget(ctx context.Context, t Target, pv *parentView) (*Report, error) {
	d := m.d
	d.Target, d.Directory = t.Target, nil
	o := m.o
	o.GroupsField, o.GroupsValue, o.Every = t.GroupsField, t.GroupsValue, 0
	r, err := newRunner(d, o)
	if err != nil {
		return nil, err
	}
	r.pv = pv
	return r.run(ctx)
}

// suspend saves the run's progress and answers what it has so far.
func (m *multi) suspend(ctx context.Context, cause error) (*Report, error) {
	err := cause
	if !m.o.DryRun {
		_, err = m.r.suspend(ctx, cause)
	}
	return m.summary(ctx, false), errors.Join(err, m.targetsError(false))
}

// finish closes the run once every target is done or failed.
func (m *multi) finish(ctx context.Context) (*Report, error) {
	r := m.r
	rep := m.summary(ctx, true)
	var err error
	if !m.o.DryRun {
		done := &checkpoint{LastCompleted: rep.Finished}
		if _, err = saveCheckpoint(ctx, r.d.Store, allKey, done, r.cpVersion); err == nil {
			if derr := dropState(ctx, r.d.Store, allKey, "", 0); derr != nil {
				r.log.WarnContext(ctx, "reconcile: could not drop saved state", "err", derr)
			}
		}
	}
	r.log.InfoContext(ctx, "reconcile: run over several targets finished", "run", rep.RunID, "dry_run", rep.DryRun,
		"drift", rep.Drift, "failed_targets", rep.FailedTargets, "guard", rep.Guard.Verdict, "enqueued", rep.Enqueued,
		"seconds", rep.Seconds, "invocations", rep.Invocations)
	return rep, errors.Join(err, m.targetsError(true))
}

// targetsError names the targets that failed in this invocation, or, with
// all, in the whole run.
func (m *multi) targetsError(all bool) error {
	failed := maps.Clone(m.failed)
	if all {
		for name, p := range m.r.cp.Targets {
			if _, ok := failed[name]; !ok && p.Error != "" && slices.ContainsFunc(m.targets, func(t Target) bool { return t.Name == name }) {
				failed[name] = errors.New(p.Error)
			}
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &TargetsError{Failed: failed}
}

// summary is the run's report: its targets' reports and their sums.
func (m *multi) summary(ctx context.Context, finished bool) *Report {
	r, cp := m.r, m.r.cp
	now := r.now()
	rep := &Report{
		RunID: cp.RunID, DryRun: m.o.DryRun, Started: cp.Started, Invocations: cp.Invocations, Counts: zeroCounts(),
		Seconds: now.Sub(cp.Started).Seconds(), InvocationSeconds: now.Sub(r.began).Seconds(),
		Enqueued: cp.Tally.Enqueued, Created: cp.Tally.Created, Failed: cp.Tally.Failed,
		DirectoryUsers: cp.Tally.DirUsers, DirectoryActive: cp.Tally.DirActive,
		Guard:         Guard{Verdict: GuardOK, MaxShare: m.o.MaxDeactivateShare},
		NotReconciled: m.skipped,
	}
	rep.Counts[Unknown] = cp.Tally.Counts[Unknown]
	if s := cp.Tally.Samples[Unknown]; len(s) > 0 {
		rep.Samples = map[Kind][]string{Unknown: s}
	}
	if r.x != nil {
		rep.Identities = r.x.live
	}
	var refused []string
	for _, t := range m.targets {
		p := cp.Targets[t.Name]
		tr := m.targetReport(ctx, t.Name, p)
		if p.Error != "" {
			tr.Error = p.Error
			rep.FailedTargets = append(rep.FailedTargets, t.Name)
		}
		for k, n := range tr.Counts {
			if k != Unknown {
				rep.Counts[k] += n
			}
		}
		rep.Enqueued += tr.Enqueued
		rep.Parked += tr.Parked
		rep.Deactivated += tr.Deactivated
		rep.Failed += tr.Failed
		rep.Learners += tr.Learners
		rep.ActiveLearners += tr.ActiveLearners
		rep.Links += tr.Links
		rep.Identities = max(rep.Identities, tr.Identities)
		rep.Unmapped = max(rep.Unmapped, tr.Unmapped)
		rep.Guard.Deactivations += tr.Guard.Deactivations
		rep.Guard.ActiveLearners += tr.Guard.ActiveLearners
		if tr.Guard.Verdict == GuardRefused {
			refused = append(refused, t.Name+": "+tr.Guard.Reason)
		}
		rep.Targets = append(rep.Targets, *tr)
	}
	for _, n := range rep.Counts {
		rep.Drift += n
	}
	switch {
	case len(refused) > 0:
		rep.Guard.Verdict, rep.Guard.Reason = GuardRefused, strings.Join(refused, "; ")
	case !finished:
		rep.Guard.Verdict = GuardPending
	}
	rep.Complete = finished && len(rep.FailedTargets) == 0
	if finished {
		rep.Finished = now
	} else {
		rep.Phase = cp.Phase
	}
	return rep
}

// targetReport is a target's report: this invocation's, else the one it
// stored when it finished earlier in the run, else a placeholder.
func (m *multi) targetReport(ctx context.Context, name string, p targetProgress) *Report {
	if rep, ok := m.reports[name]; ok {
		return rep
	}
	if p.Done && p.Report != "" {
		if d, err := m.d.Store.GetDoc(ctx, p.Report); err == nil {
			var rep Report
			if json.Unmarshal(d.Value, &rep) == nil {
				return &rep
			}
		}
	}
	rep := &Report{Target: name, Complete: p.Done, Key: p.Report, Counts: zeroCounts()}
	if !p.Done {
		rep.Guard.Verdict = GuardPending
		if p.Error == "" {
			rep.Phase = "pending" // not begun in this run
		}
	}
	return rep
}
