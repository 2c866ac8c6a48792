package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/store"
)

// Guard verdicts.
const (
	GuardOK      = "ok"
	GuardRefused = "refused"
	GuardPending = "pending" // the run has not finished
)

// Guard is the deactivation guard's decision.
type Guard struct {
	Verdict string `json:"verdict"`
	Reason  string `json:"reason,omitempty"`
	// Deactivations is how many learners the run would switch off
	// (inactive plus unassigned).
	Deactivations  int     `json:"deactivations"`
	ActiveLearners int     `json:"activeLearners"`
	MaxShare       float64 `json:"maxShare"`
}

// Report is what a run found and did. Samples hold identity ids, except
// for orphans (learner ids) and unknown (directory user ids).
type Report struct {
	Target   string `json:"target"`
	RunID    string `json:"runId,omitempty"`
	DryRun   bool   `json:"dryRun"`
	Complete bool   `json:"complete"`
	// Phase is where an incomplete run stopped; the next Run resumes it.
	Phase string `json:"phase,omitempty"`
	// Skipped says why no run was due (Options.Every).
	Skipped  string    `json:"skipped,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Seconds is the run's wall time from its start (across invocations);
	// InvocationSeconds this invocation's.
	Seconds           float64           `json:"seconds"`
	InvocationSeconds float64           `json:"invocationSeconds"`
	Invocations       int               `json:"invocations"`
	Drift             int               `json:"drift"`
	Counts            map[Kind]int      `json:"counts"`
	Samples           map[Kind][]string `json:"samples,omitempty"`
	Guard             Guard             `json:"guard"`
	Enqueued          int               `json:"enqueued"`
	Parked            int               `json:"parked"`
	Created           int               `json:"created"`
	Deactivated       int               `json:"deactivated"`
	Failed            int               `json:"failed,omitempty"`
	Identities        int               `json:"identities"`
	Links             int               `json:"links"`
	Unmapped          int               `json:"unmapped,omitempty"`
	Learners          int               `json:"learners"`
	ActiveLearners    int               `json:"activeLearners"`
	DirectoryUsers    int               `json:"directoryUsers"`
	DirectoryActive   int               `json:"directoryActive"`
	// Key is the Doc the report is stored under.
	Key string `json:"key,omitempty"`

	// The fields below are RunAll's. Targets holds each reconciled
	// target's report; the report itself then sums them (see RunAll).
	Targets []Report `json:"targets,omitempty"`
	// FailedTargets names the targets whose run failed.
	FailedTargets []string `json:"failedTargets,omitempty"`
	// NotReconciled maps a target left out to why.
	NotReconciled map[string]string `json:"notReconciled,omitempty"`
	// Error, in an entry of Targets, is why that target's run failed.
	Error string `json:"error,omitempty"`
}

func zeroCounts() map[Kind]int {
	m := map[Kind]int{}
	for _, k := range Kinds() {
		m[k] = 0
	}
	return m
}

func (r *runner) report(complete bool) *Report {
	t := &r.cp.Tally
	now := r.now()
	rep := &Report{
		Target: r.d.Target.Name, RunID: r.cp.RunID, DryRun: r.o.DryRun, Complete: complete,
		Started: r.cp.Started, Invocations: r.cp.Invocations, Counts: zeroCounts(),
		Seconds: now.Sub(r.cp.Started).Seconds(), InvocationSeconds: now.Sub(r.began).Seconds(),
		Enqueued: t.Enqueued, Parked: t.Parked, Created: t.Created, Deactivated: t.Deactivated, Failed: t.Failed,
		Learners: t.Learners, ActiveLearners: t.ActiveLearners, DirectoryUsers: t.DirUsers, DirectoryActive: t.DirActive,
		Guard: Guard{Verdict: GuardPending, MaxShare: r.o.MaxDeactivateShare},
	}
	for k, n := range t.Counts {
		rep.Counts[k] = n
		rep.Drift += n
	}
	if len(t.Samples) > 0 {
		rep.Samples = t.Samples
	}
	if complete {
		rep.Finished = now
	} else {
		rep.Phase = r.cp.Phase
	}
	if r.x != nil {
		rep.Identities, rep.Links, rep.Unmapped = r.x.live, r.x.links, r.x.unmapped
	}
	return rep
}

// finalize decides what needs every view: missing identities, adoptions
// and their ambiguities, and the deactivations under the guard; then it
// stores the report and closes the run.
func (r *runner) finalize(ctx context.Context) (*Report, error) {
	eff := newEffects()
	type deact struct {
		i    int
		kind Kind
	}
	var deacts []deact
	unassigned := 0
	for i := range r.x.idents {
		e := &r.x.idents[i]
		if e.has(fIgnored) {
			continue
		}
		h := key(e.id)
		mk := r.markOf(h)
		switch {
		case mk&mDeact != 0:
			deacts = append(deacts, deact{i, Inactive})
			continue
		case r.cp.Directory && e.has(fLive|fActive|fStable) && mk&mAssigned == 0:
			deacts = append(deacts, deact{i, Unassigned})
			unassigned++
			continue
		case !e.has(fLive|fMapped|fWantActive) || mk&mHandled != 0:
			continue
		}
		c := r.s.claims[h]
		switch {
		case e.has(fInReview) && !e.has(fLinked):
			eff.t.add(Ambiguous, e.id, r.o.Samples) // still waiting for a human
		case c != nil && c.N == 1:
			r.drift(eff, Adopt, e)
		case c != nil:
			r.park(eff, e, fmt.Sprintf("%d learners match by %s", c.N, c.Key), c.Learners)
		case mk&mSeen == 0:
			r.drift(eff, Missing, e)
		}
	}

	g := Guard{Verdict: GuardOK, Deactivations: len(deacts), ActiveLearners: r.cp.Tally.ActiveLearners, MaxShare: r.o.MaxDeactivateShare}
	switch {
	case len(deacts) == 0:
	case r.cp.Directory && r.cp.Tally.DirActive == 0 && r.x.active > 0 && unassigned > 0:
		g.Verdict, g.Reason = GuardRefused, fmt.Sprintf("the directory listed no active assigned user while %d identities are active here", r.x.active)
	case float64(len(deacts)) > r.o.MaxDeactivateShare*float64(g.ActiveLearners):
		g.Verdict, g.Reason = GuardRefused, fmt.Sprintf("%d deactivations exceed %g of the %d active learners", len(deacts), r.o.MaxDeactivateShare, g.ActiveLearners)
	}
	for _, d := range deacts {
		e := &r.x.idents[d.i]
		eff.t.add(d.kind, e.id, r.o.Samples)
		if g.Verdict != GuardOK || r.o.DryRun {
			continue
		}
		switch d.kind {
		case Inactive:
			eff.intents = append(eff.intents, r.intent(e.id, e.version, Inactive))
		case Unassigned:
			v, ok, err := r.deactivate(ctx, e.id)
			if err != nil {
				return r.suspend(ctx, err)
			}
			if ok {
				eff.t.Deactivated++
				eff.intents = append(eff.intents, r.intent(e.id, v, Unassigned))
			}
		}
	}
	if g.Verdict == GuardRefused {
		r.log.ErrorContext(ctx, "reconcile: deactivations refused by the guard", "run", r.cp.RunID, "reason", g.Reason)
	}
	if err := r.commit(ctx, eff); err != nil {
		return r.suspend(ctx, err)
	}

	rep := r.report(true)
	rep.Guard = g
	err := r.storeReport(ctx, rep)
	r.emit(rep)
	r.log.InfoContext(ctx, "reconcile: run finished", "run", rep.RunID, "dry_run", rep.DryRun, "drift", rep.Drift,
		"counts", rep.Counts, "guard", g.Verdict, "enqueued", rep.Enqueued, "seconds", rep.Seconds, "invocations", rep.Invocations)
	if r.o.DryRun {
		return rep, err
	}
	done := &checkpoint{LastCompleted: rep.Finished, LastReport: rep.Key}
	if _, cerr := saveCheckpoint(ctx, r.d.Store, r.name, done, r.cpVersion); cerr != nil {
		err = errors.Join(err, cerr)
	} else if derr := dropState(ctx, r.d.Store, r.name, "", 0); derr != nil {
		r.log.WarnContext(ctx, "reconcile: could not drop saved state", "err", derr)
	}
	return rep, err
}

// deactivate switches off an identity the directory no longer assigns,
// unless it changed since the run started (a fresh assignment wins).
func (r *runner) deactivate(ctx context.Context, id string) (int64, bool, error) {
	ident, err := r.d.Store.GetIdentity(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reconcile: load identity: %w", err)
	}
	if !ident.Active || ident.Deleted || !ident.Modified.Before(r.stableSince()) {
		return 0, false, nil
	}
	res := map[string]any{}
	if len(ident.Resource) > 0 {
		if err := json.Unmarshal(ident.Resource, &res); err != nil {
			return 0, false, fmt.Errorf("reconcile: identity %s: resource: %w", id, err)
		}
	}
	res["active"] = false
	raw, err := json.Marshal(res)
	if err != nil {
		return 0, false, err
	}
	next := *ident
	next.Active, next.Resource = false, raw
	err = r.d.Store.UpdateIdentity(ctx, &next, ident.Version)
	if errors.Is(err, store.ErrVersionConflict) || errors.Is(err, store.ErrNotFound) {
		return 0, false, nil // changed meanwhile: the next run judges it again
	}
	r.audit(ctx, id, next.Version, "identity.deactivate", "not assigned, or deactivated, in the directory", err)
	if err != nil {
		return 0, false, fmt.Errorf("reconcile: deactivate identity: %w", err)
	}
	return next.Version, true, nil
}

// reportKey sorts a target's reports by time.
func reportKey(target string, at time.Time, dry bool) string {
	k := ReportKind + "/" + target + "-" + at.UTC().Format("20060102T150405.000Z")
	if dry {
		k += "-dry"
	}
	return k
}

// storeReport keeps the report as a Doc (samples trimmed if it would not
// fit).
func (r *runner) storeReport(ctx context.Context, rep *Report) error {
	at := rep.Finished
	if at.IsZero() {
		at = r.now()
	}
	rep.Key = reportKey(rep.Target, at, rep.DryRun)
	b, err := json.Marshal(rep)
	for err == nil && len(b) > 60<<10 && len(rep.Samples) > 0 {
		for k, s := range rep.Samples {
			rep.Samples[k] = s[:len(s)/2]
		}
		b, err = json.Marshal(rep)
	}
	if err != nil {
		return fmt.Errorf("reconcile: encode report: %w", err)
	}
	d := &store.Doc{Key: rep.Key, Value: b, Expires: at.Add(r.o.ReportTTL)}
	if err := putAnyway(context.WithoutCancel(ctx), r.d.Store, d); err != nil {
		return fmt.Errorf("reconcile: store report: %w", err)
	}
	return nil
}

// emit writes the CloudWatch Embedded Metric Format line of a finished
// run: metrics Drift and GuardRefused in namespace learnerlink, dimension
// Target, with the counts per kind as plain properties.
func (r *runner) emit(rep *Report) {
	if r.d.Metrics == nil || rep.DryRun {
		return
	}
	refused := 0
	if rep.Guard.Verdict == GuardRefused {
		refused = 1
	}
	line := map[string]any{
		"_aws": map[string]any{
			"Timestamp": rep.Finished.UnixMilli(),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  "learnerlink",
				"Dimensions": [][]string{{"Target"}},
				"Metrics": []any{
					map[string]any{"Name": "Drift", "Unit": "Count"},
					map[string]any{"Name": "GuardRefused", "Unit": "Count"},
				},
			}},
		},
		"Target": rep.Target,
		"Drift":  rep.Drift,
		// 1 when deactivations were refused: worth an alarm.
		"GuardRefused": refused,
		"RunID":        rep.RunID,
	}
	for k, n := range rep.Counts {
		line["drift_"+string(k)] = n
	}
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	_, _ = r.d.Metrics.Write(append(b, '\n'))
}

// ReportLister reads stored reports.
type ReportLister interface {
	ListDocs(ctx context.Context, kind, cursor string, limit int) (store.Page[*store.Doc], error)
}

// LatestReports returns the n newest stored reports of target ("" for
// every target), newest first.
func LatestReports(ctx context.Context, st ReportLister, target string, n int) ([]Report, error) {
	if n <= 0 {
		n = 1
	}
	var out []Report
	err := pages(ctx, func(cursor string) (store.Page[*store.Doc], error) {
		return st.ListDocs(ctx, ReportKind, cursor, 200)
	}, func(d *store.Doc) {
		if target != "" && !strings.HasPrefix(d.Key, ReportKind+"/"+target+"-") {
			return
		}
		// The key's prefix alone would take target "absorb-eu" for "absorb".
		var rep Report
		if json.Unmarshal(d.Value, &rep) == nil && (target == "" || rep.Target == target) {
			out = append(out, rep)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: list reports: %w", err)
	}
	slices.SortFunc(out, func(a, b Report) int { return b.Finished.Compare(a.Finished) })
	return out[:min(n, len(out))], nil
}
