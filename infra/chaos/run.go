package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/reconcile"
)

// Config is one convergence run.
type Config struct {
	N       int // Okta/Entra changes (delayed duplicates come on top)
	Users   int // people the changes touch (0: N/5)
	Groups  int // pushed groups (0: from Users)
	Clients int // concurrent SCIM clients
	// Spread is how long the changes take to arrive (0: as fast as
	// possible); spread out, syncs interleave with changes and kills hit
	// SCIM writes too.
	Spread time.Duration
	Seed   uint64
	// PDup is the share of changes sent twice (half at once, half later);
	// PReorder the share delayed a little to overtake or be overtaken.
	PDup, PReorder float64
	// Kills is how many times the runner is SIGKILLed, KillMin..KillMax
	// apart, while it works; the run only ends after the last one.
	Kills            int
	KillMin, KillMax time.Duration
	// Faults of the Absorb simulator.
	P429, P5xx, PTimeout float64
	Latency              time.Duration
	Rate                 float64 // ABSORB_RATE_LIMIT
	Workers              int     // LEARNERLINK_WORKERS
	Deadline             time.Duration
	Bin                  string // prebuilt infra/local binary; "" builds one
	Renames, Recreates   bool
	Reconcile            bool // dry-run reconciliation after the check, reported separately
	// StrictDLQ fails the run for any dead letter; otherwise intents that
	// ran out of receives on retryable failures are reported but pass as
	// long as their identities converged anyway (the sweeper re-queued
	// them). Permanent dead letters always fail: these faults are all
	// transient.
	StrictDLQ bool
	Verbose   bool // the runner logs warnings (to its log file)
	Keep      bool // keep the data directory
	Progress  io.Writer
}

// ShortConfig is the run CI does (TestConvergenceShort): a thousand
// changes concentrated on 60 people, arriving over 5 s, three kills, with
// group renames and delete-then-reprovision, under the full Absorb fault
// mix; strict about dead letters.
func ShortConfig() Config {
	return Config{N: 1000, Users: 60, Groups: 6, Clients: 16, Spread: 5 * time.Second, Seed: 1,
		PDup: 0.10, PReorder: 0.10, Kills: 3, KillMin: 1500 * time.Millisecond, KillMax: 4 * time.Second,
		P429: 0.20, P5xx: 0.05, PTimeout: 0.02, Latency: 20 * time.Millisecond,
		Rate: 100, Workers: 8, Deadline: 5 * time.Minute, Reconcile: true, StrictDLQ: true,
		Renames: true, Recreates: true}
}

// LongConfig is the long run: ten thousand changes over a thousand
// people, arriving over ten minutes, a dozen kills.
func LongConfig() Config {
	c := ShortConfig()
	c.N, c.Users, c.Groups = 10000, 0, 0 // users: n/10
	c.Spread = 10 * time.Minute
	c.Kills, c.KillMin, c.KillMax = 12, 10*time.Second, 90*time.Second
	c.Deadline = 3 * time.Hour
	return c
}

// Result is what a run measured and found.
type Result struct {
	Config
	Changes, Requests int // generated changes; SCIM requests planned (with delayed copies)
	Exec              execStats
	Kills, Starts     int
	Checks            int // stop-and-inspect rounds before everything settled
	Final             *outcome
	LMS               lmsStats
	Reconcile         *reconcile.Report
	ReconcileErr      error
	Workload, Elapsed time.Duration
	DataDir           string
}

type lmsStats struct {
	Requests, Status429, Status5xx, Unanswered int
	ByStatus                                   map[int]int
	ByMethod                                   map[string]int
}

const (
	simUser = "chaos-admin"
	simPass = "Chaos!Passw0rd"
	simKey  = "chaos-private-key"
)

// Run drives the runner through the changes under faults and kills, waits
// for it to settle, and checks convergence. The error is for harness
// trouble; convergence failures are in Result.Failures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	began := time.Now()
	if cfg.Users <= 0 {
		cfg.Users = max(cfg.N/10, 2)
	}
	if cfg.Groups <= 0 {
		cfg.Groups = min(max(cfg.Users/40, 4), 16)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "[%6.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	dir, err := os.MkdirTemp("", "learnerlink-chaos-")
	if err != nil {
		return nil, err
	}
	res := &Result{Config: cfg, DataDir: dir}
	if !cfg.Keep {
		defer os.RemoveAll(dir)
	}
	bin := cfg.Bin
	if bin == "" {
		if bin, err = buildRunner(ctx, dir); err != nil {
			return nil, err
		}
	}
	sim := absorbsim.New(absorbsim.Options{Username: simUser, Password: simPass, PrivateKey: simKey,
		Faults: absorbsim.Faults{P429: cfg.P429, P5xx: cfg.P5xx, PTimeout: cfg.PTimeout, Latency: cfg.Latency, Seed: int64(cfg.Seed)}})
	defer sim.Close()
	depts := map[string]string{}
	for _, d := range departments() {
		depts[strings.ToLower(d)] = sim.SeedDepartment(absorbsim.Department{Name: d})
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	token, hookSecret := rand.Text(), rand.Text()
	level := "error"
	if cfg.Verbose {
		level = "warn"
	}
	dataDir := filepath.Join(dir, "data")
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"LEARNERLINK_ADDR=" + addr, "LEARNERLINK_DATA_DIR=" + dataDir,
		"LEARNERLINK_SCIM_TOKEN=" + token, "LEARNERLINK_HOOK_SECRET=" + hookSecret,
		"LEARNERLINK_TARGET=absorb", "LEARNERLINK_WORKERS=" + strconv.Itoa(cfg.Workers),
		"LEARNERLINK_LOG_LEVEL=" + level,
		// The shortest allowed: intents lost in a crash come back after
		// a minute, not fifteen.
		"LEARNERLINK_PENDING_THRESHOLD=1m",
		"ABSORB_API_URL=" + sim.URL(), "ABSORB_USERNAME=" + simUser, "ABSORB_PASSWORD=" + simPass,
		"ABSORB_PRIVATE_KEY=" + simKey, "ABSORB_RATE_LIMIT=" + strconv.FormatFloat(cfg.Rate, 'f', -1, 64),
		"ABSORB_DEFAULT_DEPARTMENT_ID=" + sim.DefaultDepartmentID(),
	}
	c := &child{bin: bin, env: env, addr: addr, logPath: filepath.Join(dir, "runner.log")}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	defer func() { _ = c.stop() }()

	prefix := "chaos-" + strings.ToLower(rand.Text()[:6])
	ops := generate(genConfig{N: cfg.N, Users: cfg.Users, Groups: cfg.Groups, Seed: cfg.Seed, PDup: cfg.PDup,
		PReorder: cfg.PReorder, Renames: cfg.Renames, Recreates: cfg.Recreates, Prefix: prefix})
	res.Changes, res.Requests = cfg.N+cfg.Groups, len(ops)
	logf("runner %s on %s; %d changes over %d users and %d groups (%d requests with delayed duplicates), %d clients; Absorb faults 429 %.0f%%, 5xx %.0f%%, timeout %.0f%%, latency %v",
		filepath.Base(bin), addr, res.Changes, cfg.Users, cfg.Groups, len(ops), cfg.Clients, 100*cfg.P429, 100*cfg.P5xx, 100*cfg.PTimeout, cfg.Latency)

	x := newExecutor("http://"+addr, token, hookSecret, ops, cfg.Users, cfg.Groups, cfg.Clients)
	// The killer: SIGKILL at random moments while the runner is busy
	// with the Absorb simulator, then a fresh process on the same data.
	var killErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		r := mrand.New(mrand.NewPCG(cfg.Seed, 0x6b111))
		for res.Kills < cfg.Kills && ctx.Err() == nil {
			gap := cfg.KillMin + time.Duration(r.Int64N(int64(cfg.KillMax-cfg.KillMin)+1))
			sleep(ctx, gap)
			waitBusy(ctx, sim, 5*time.Second)
			if ctx.Err() != nil {
				return
			}
			if err := c.kill(); err != nil {
				killErr = err
				return
			}
			res.Kills++
			logf("kill %d: runner SIGKILLed (%d LMS requests so far, %d/%d SCIM requests answered)", res.Kills, len(sim.Requests()), x.done.Load(), len(ops))
			if err := c.start(ctx); err != nil {
				killErr = err
				return
			}
		}
	})
	err = x.run(ctx, cfg.Clients, cfg.Spread)
	res.Workload = time.Since(began)
	logf("workload sent in %.1fs: %d SCIM requests (%d retried), %d unexpected answers", res.Workload.Seconds(), x.st.requests, x.st.retries, len(x.st.unexpected))
	if err != nil {
		wg.Wait()
		return nil, fmt.Errorf("workload: %w", err)
	}
	wg.Wait()
	if killErr != nil {
		return nil, fmt.Errorf("kill and restart: %w", killErr)
	}

	final, err := settle(ctx, c, x, sim, depts, dataDir, ops, prefix, res, logf)
	if err != nil {
		return nil, err
	}
	res.Final = final
	res.Starts = c.starts
	res.Exec = x.snapshot()
	res.LMS = lmsOf(sim.Requests())
	if cfg.Reconcile {
		// Its own time budget: it also reports on a run that ran out of time.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		res.Reconcile, res.ReconcileErr = dryReconcile(rctx, dataDir, sim)
		cancel()
	}
	res.Elapsed = time.Since(began)
	return res, nil
}

// settle waits until the runner has nothing left to do, then checks: the
// SCIM API and the simulator say when it looks done; the runner is then
// stopped and its store and queue are read. Not settled yet (something
// pending, queued or behind)? Start it again and keep waiting.
func settle(ctx context.Context, c *child, x *executor, sim *absorbsim.Sim, depts map[string]string, dataDir string,
	ops []op, prefix string, res *Result, logf func(string, ...any)) (*outcome, error) {
	deleted := deletedExternalIDs(ops, prefix)
	lastN, lastAt := len(sim.Requests()), time.Now()
	lastLog := time.Now()
	for {
		sleep(ctx, time.Second)
		if err := ctx.Err(); err != nil {
			// Out of time: report what there is.
			_ = c.stop()
			out, cerr := storeCheck(context.WithoutCancel(ctx), dataDir, x.knownIDs(), newSimView(sim, depts))
			if cerr != nil {
				return nil, errors.Join(err, cerr)
			}
			logf("deadline reached before the runner settled")
			return out, nil
		}
		reqs := sim.Requests()
		if len(reqs) != lastN {
			lastN, lastAt = len(reqs), time.Now()
		}
		quiet := time.Since(lastAt)
		pre, err := scimCheck(ctx, x, newSimView(sim, depts), deleted)
		if err != nil {
			return nil, fmt.Errorf("SCIM check: %w", err)
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			logf("waiting: %d LMS requests, %d learners, %d mismatched, %d missing, quiet for %.0fs",
				len(reqs), pre.Learners, len(pre.Mismatches), len(pre.Missing), quiet.Seconds())
		}
		// Looks done, or nothing happened for a while (then a restart's
		// first sweep re-queues whatever was pending over a minute,
		// which the runner's own minute tick would do a little later).
		if !(pre.converged() && quiet >= 2*time.Second) && quiet < 10*time.Second {
			continue
		}
		if err := c.stop(); err != nil {
			return nil, err
		}
		res.Checks++
		out, err := storeCheck(ctx, dataDir, x.knownIDs(), newSimView(sim, depts))
		if err != nil {
			return nil, fmt.Errorf("store check: %w", err)
		}
		if out.settled() {
			logf("settled: nothing pending, queue empty, every link at its identity's version")
			return out, nil
		}
		logf("not settled yet (%d pending, %d queued, %d links behind); restarting the runner", out.Pending, out.QueueLeft, out.Unsynced)
		if err := c.start(ctx); err != nil {
			return nil, err
		}
		lastAt = time.Now()
	}
}

// waitBusy waits (up to limit) until the simulator saw a request in the
// last 50ms: a worker is mid-sync, holding a batch.
func waitBusy(ctx context.Context, sim *absorbsim.Sim, limit time.Duration) {
	end := time.Now().Add(limit)
	for time.Now().Before(end) && ctx.Err() == nil {
		if reqs := sim.Requests(); len(reqs) > 0 && time.Since(reqs[len(reqs)-1].Time) < 50*time.Millisecond {
			return
		}
		sleep(ctx, 10*time.Millisecond)
	}
}

// deletedExternalIDs lists the external ids of users whose last
// existence change is a delete.
func deletedExternalIDs(ops []op, prefix string) []string {
	last := map[int]kind{}
	for _, o := range ops {
		if o.Kind.existence() && !o.Dup {
			last[o.User] = o.Kind
		}
	}
	var out []string
	for _, u := range slices.Sorted(maps.Keys(last)) {
		if last[u] == kDelete {
			out = append(out, externalID(prefix, u))
		}
	}
	return out
}

func (x *executor) knownIDs() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.userIDs))
	for _, id := range x.userIDs {
		out = append(out, id)
	}
	return out
}

func (x *executor) snapshot() execStats {
	x.smu.Lock()
	defer x.smu.Unlock()
	s := x.st
	s.byStatus = maps.Clone(x.st.byStatus)
	s.unexpected = slices.Clone(x.st.unexpected)
	return s
}

func lmsOf(reqs []absorbsim.RequestRecord) lmsStats {
	s := lmsStats{Requests: len(reqs), ByStatus: map[int]int{}, ByMethod: map[string]int{}}
	for _, r := range reqs {
		s.ByStatus[r.Status]++
		s.ByMethod[r.Method]++
		switch {
		case r.Status == 429:
			s.Status429++
		case r.Status >= 500:
			s.Status5xx++
		case r.Status == 0:
			s.Unanswered++
		}
	}
	return s
}

// Failures lists what makes the run a failure; none means converged.
func (r *Result) Failures() []string {
	var f []string
	o := r.Final
	add := func(cond bool, format string, args ...any) {
		if cond {
			f = append(f, fmt.Sprintf(format, args...))
		}
	}
	add(!o.settled(), "not settled: %d identities pending, %d messages queued, %d links behind", o.Pending, o.QueueLeft, o.Unsynced)
	add(len(o.Mismatches) > 0, "%d learners differ from their identity's desired state", len(o.Mismatches))
	add(len(o.Missing) > 0, "%d identities that should have a learner have none", len(o.Missing))
	add(len(o.DupExternal)+len(o.DupUserName) > 0, "duplicated learners: %d external ids, %d usernames", len(o.DupExternal), len(o.DupUserName))
	add(len(o.Orphans) > 0, "%d learners belong to no identity", len(o.Orphans))
	add(len(o.MapErrors) > 0, "%d identities cannot be mapped", len(o.MapErrors))
	perm, exhausted := splitDLQ(o.DLQ)
	add(perm > 0, "%d intents parked in the dead-letter queue as permanent failures (these faults are all transient)", perm)
	add(r.StrictDLQ && exhausted > 0, "%d intents in the dead-letter queue after exhausting their receives on retryable failures", exhausted)
	add(len(o.Reviews) > 0, "%d identities left for review", len(o.Reviews))
	add(r.Kills < r.Config.Kills, "only %d of %d kills happened", r.Kills, r.Config.Kills)
	add(len(r.Exec.unexpected) > 0, "%d SCIM answers the IdP would not expect (first: %s)", len(r.Exec.unexpected), first(r.Exec.unexpected))
	return f
}

// splitDLQ counts parked (permanent) and receive-exhausted dead letters.
func splitDLQ(dlq []queue.Message) (permanent, exhausted int) {
	for _, m := range dlq {
		if m.ParkReason != "" {
			permanent++
		} else {
			exhausted++
		}
	}
	return permanent, exhausted
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// Print writes the counts.
func (r *Result) Print(w io.Writer) {
	o := r.Final
	perChange := math.NaN()
	if r.Changes > 0 {
		perChange = float64(r.LMS.Requests) / float64(r.Changes)
	}
	e := r.Exec
	fmt.Fprintf(w, "learnerlink convergence run (seed %d)\n", r.Seed)
	rows := [][2]string{
		{"changes (Okta/Entra-shaped)", fmt.Sprintf("%d (%d users, %d groups)", r.Changes, r.Users, r.Groups)},
		{"changes by kind", kindsLine(e.byKind)},
		{"requests sent (SCIM and event hooks)", fmt.Sprintf("%d (%d duplicates, %d retried after kills or 5xx, %d transport errors)", e.requests, e.duplicates, e.retries, e.transportErrors)},
		{"answers (SCIM and event hooks)", statusLine(e.byStatus)},
		{"stale retries (404) / refused members", fmt.Sprintf("%d / %d; creates resolved by userName after a lost answer: %d", e.stale, e.rejected, e.createResolved)},
		{"runner kills (SIGKILL) / starts", fmt.Sprintf("%d / %d; stop-and-check rounds: %d", r.Kills, r.Starts, r.Checks)},
		{"identities (live / deleted)", fmt.Sprintf("%d / %d", o.Identities, o.Tombstones)},
		{"learners in Absorb (active)", fmt.Sprintf("%d (%d)", o.Learners, o.Active)},
		{"mismatched learners", fmt.Sprintf("%d%s", len(o.Mismatches), mismatchLine(o.Mismatches))},
		{"missing learners", fmt.Sprint(len(o.Missing))},
		{"duplicated learners (externalId / username)", fmt.Sprintf("%d / %d", len(o.DupExternal), len(o.DupUserName))},
		{"orphan learners", fmt.Sprint(len(o.Orphans))},
		{"pending / queued / links behind", fmt.Sprintf("%d / %d / %d", o.Pending, o.QueueLeft, o.Unsynced)},
		{"dead-letter queue", dlqLine(o.DLQ)},
		{"review list", fmt.Sprint(len(o.Reviews))},
		{"LMS requests", fmt.Sprintf("%d = %.2f per change; by method %v", r.LMS.Requests, perChange, r.LMS.ByMethod)},
		{"LMS faults seen", fmt.Sprintf("429: %d, 5xx: %d, unanswered (timeouts, kills): %d", r.LMS.Status429, r.LMS.Status5xx, r.LMS.Unanswered)},
		{"elapsed", fmt.Sprintf("%.1fs (workload sent in %.1fs)", r.Elapsed.Seconds(), r.Workload.Seconds())},
	}
	if r.Config.Reconcile {
		rec := "not run"
		switch {
		case r.ReconcileErr != nil:
			rec = "failed: " + r.ReconcileErr.Error()
		case r.Reconcile != nil:
			rec = fmt.Sprintf("drift %d %v (dry run, after the checks; not used to converge)", r.Reconcile.Drift, nonZero(r.Reconcile.Counts))
		}
		rows = append(rows, [2]string{"reconciliation", rec})
	}
	for _, row := range rows {
		fmt.Fprintf(w, "  %-44s %s\n", row[0], row[1])
	}
	for i, m := range o.DLQ {
		if i == 20 {
			fmt.Fprintf(w, "  … %d more dead letters\n", len(o.DLQ)-20)
			break
		}
		reason := m.ParkReason
		if reason == "" {
			reason = "(receives exhausted: a retryable failure, not a permanent one)"
		}
		fmt.Fprintf(w, "  dead letter: identity %s v%d after %d receives: %s\n", m.IdentityID, m.Version, m.Receives, reason)
	}
	for i, m := range o.Mismatches {
		if i == 10 {
			break
		}
		fmt.Fprintf(w, "  mismatch: identity %s: %s\n", m.IdentityID, strings.Join(m.Fields, ", "))
	}
	for i, s := range e.unexpected {
		if i == 10 {
			break
		}
		fmt.Fprintf(w, "  unexpected SCIM answer: %s\n", s)
	}
	if f := r.Failures(); len(f) > 0 {
		fmt.Fprintf(w, "FAIL\n")
		for _, s := range f {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	} else {
		fmt.Fprintf(w, "PASS: every learner matches its identity, nothing duplicated, nothing lost, no permanent dead letters\n")
	}
}

func dlqLine(dlq []queue.Message) string {
	perm, exhausted := splitDLQ(dlq)
	return fmt.Sprintf("%d (%d parked as permanent, %d out of receives after retryable failures)", len(dlq), perm, exhausted)
}

func kindsLine(by [numKinds]int) string {
	var parts []string
	for k, n := range by {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", kind(k), n))
		}
	}
	return strings.Join(parts, ", ")
}

func statusLine(by map[int]int) string {
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, fmt.Sprintf("%d×%d", by[s], s))
	}
	return strings.Join(parts, " ")
}

func mismatchLine(ms []mismatch) string {
	if len(ms) == 0 {
		return ""
	}
	by := map[string]int{}
	for _, m := range ms {
		for _, f := range m.Fields {
			by[f]++
		}
	}
	var parts []string
	for _, f := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, fmt.Sprintf("%s %d", f, by[f]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func nonZero(m map[reconcile.Kind]int) map[reconcile.Kind]int {
	out := map[reconcile.Kind]int{}
	for k, v := range m {
		if v > 0 {
			out[k] = v
		}
	}
	return out
}
