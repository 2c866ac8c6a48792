// Command reconcilerun measures reconciliation at scale: it seeds N
// identities (bolt), their learners (the Absorb simulator) and their Okta
// users (the Okta simulator), with drift of every kind, runs
// reconciliation and prints the elapsed time, peak memory, the report's
// counts and how many 15-minute Lambda invocations the run would need.
//
//	go run ./infra/reconcilerun -n 10000
//	go run ./infra/reconcilerun -n 100000 -drift 0.005
//	go run ./infra/reconcilerun -n 100000 -slice 2s      # force resumes: a deadline every 2 s
//	go run ./infra/reconcilerun -n 100000 -absorb-latency 500ms -okta-latency 200ms
//
// To keep the numbers about reconciliation, the Absorb simulator runs in
// a child process and the store is seeded by another one; the measuring
// process only opens the store, serves the (generated, storage-free) Okta
// simulator and reconciles. Peak RSS is that process's (getrusage); peak
// heap is sampled with runtime.ReadMemStats. The data lives in a
// temporary directory (under /dev/shm when available, so bolt's fsyncs
// do not dominate seeding) and is removed at the end.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/okta/oktasim"
	"github.com/learnerlink/learnerlink/shared/queue/disk"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/tokencache"
	"github.com/learnerlink/learnerlink/shared/worker"
)

const (
	absorbUser, absorbPass, absorbKey = "api-admin", "pw", "key"
	oktaToken, oktaApp                = "ssws-run", "0oarun"
	groupsField                       = "customFields.string30"
	lambdaTimeout                     = 15 * time.Minute
	lambdaMargin                      = 60 * time.Second // as lambdafn.Reconcile keeps
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "reconcilerun:", err)
		os.Exit(1)
	}
}

type params struct {
	n             int
	drift         float64
	role, dir     string
	slice         time.Duration
	absorbLatency time.Duration
	oktaLatency   time.Duration
	dryRun        bool
	verbose       bool
	cpuProfile    string
}

// k is how many identities each kind of drift gets.
func (p params) k() int { return max(1, int(math.Round(float64(p.n)*p.drift))) }

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("reconcilerun", flag.ContinueOnError)
	var p params
	fs.IntVar(&p.n, "n", 10000, "identities")
	fs.Float64Var(&p.drift, "drift", 0.005, "share of identities given each kind of drift")
	fs.DurationVar(&p.slice, "slice", 0, "give every invocation this long (forces checkpoints and resumes); 0: one go")
	fs.DurationVar(&p.absorbLatency, "absorb-latency", 0, "added to every Absorb answer")
	fs.DurationVar(&p.oktaLatency, "okta-latency", 0, "added to every Okta answer")
	fs.BoolVar(&p.dryRun, "dry-run", false, "report only")
	fs.BoolVar(&p.verbose, "v", false, "print reconciliation's log on stderr")
	fs.StringVar(&p.cpuProfile, "cpuprofile", "", "write a CPU profile of the reconciliation to this file")
	fs.StringVar(&p.role, "role", "", "internal: absorb or seed (child processes)")
	fs.StringVar(&p.dir, "dir", "", "internal: data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if p.n < 100 || p.drift <= 0 || p.drift > 0.05 {
		return errors.New("want -n of at least 100 and -drift in (0, 0.05]")
	}
	switch p.role {
	case "absorb":
		return serveAbsorb(p, out)
	case "seed":
		return seedStore(ctx, p)
	case "":
		return measure(ctx, p, out)
	}
	return fmt.Errorf("unknown role %q", p.role)
}

// ---- the seeded world (a pure function of n and k) ----

type kind int

const (
	kOK kind = iota
	kMissing
	kMismatch
	kInactive
	kAdopt
	kAmbiguous
	kUnassigned
)

// kindOf is identity i's drift: blocks of k identities each, ambiguity a
// tenth of that.
func (p params) kindOf(i int) kind {
	k := p.k()
	blocks := []struct {
		kind kind
		size int
	}{{kMissing, k}, {kMismatch, k}, {kInactive, k}, {kAdopt, k}, {kAmbiguous, max(1, k/10)}, {kUnassigned, k}}
	at := 0
	for _, b := range blocks {
		if i < at+b.size {
			return b.kind
		}
		at += b.size
	}
	return kOK
}

func identityID(i int) string { return fmt.Sprintf("id-%08d", i) }
func userName(i int) string   { return fmt.Sprintf("user%08d@example.com", i) }
func learnerID(i int) string  { return fmt.Sprintf("1ea12e12-0000-4000-8000-%012x", i) }
func groupName(i int) string  { return fmt.Sprintf("Group%02d", i%10) }

func resource(i int, active bool) json.RawMessage {
	res := map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User", mapping.EnterpriseURN},
		"id":         identityID(i),
		"userName":   userName(i),
		"externalId": oktasim.GeneratedID(i),
		"name":       map[string]any{"givenName": fmt.Sprintf("First%d", i), "familyName": fmt.Sprintf("Last%d", i)},
		"emails":     []any{map[string]any{"value": userName(i), "primary": true, "type": "work"}},
		"title":      fmt.Sprintf("Title%d", i%40),
		"active":     active,
		mapping.EnterpriseURN: map[string]any{
			"department": fmt.Sprintf("Dept%d", i%20), "employeeNumber": fmt.Sprintf("E%08d", i), "costCenter": fmt.Sprintf("CC%d", i%50),
		},
	}
	b, _ := json.Marshal(res)
	return b
}

// learner is what the worker would have written for identity i.
func learner(i int) absorbsim.User {
	return absorbsim.User{
		ID: learnerID(i), Username: userName(i), FirstName: fmt.Sprintf("First%d", i), LastName: fmt.Sprintf("Last%d", i),
		EmailAddress: userName(i), ExternalID: oktasim.GeneratedID(i), JobTitle: fmt.Sprintf("Title%d", i%40),
		EmployeeNumber: fmt.Sprintf("E%08d", i), IsLearner: true,
		CustomFields: map[string]any{"string1": fmt.Sprintf("CC%d", i%50), "string30": reconcile.GroupsValue([]string{groupName(i)})},
	}
}

// learners lists the target's users: identities' learners with their
// drift, pre-existing ones, duplicates and orphans.
func (p params) learners(yield func(absorbsim.User)) {
	k := p.k()
	extra := p.n
	for i := range p.n {
		u := learner(i)
		switch p.kindOf(i) {
		case kMissing:
			continue
		case kMismatch:
			u.JobTitle = "Edited by hand"
		case kInactive:
			// The identity is inactive, the learner was reactivated by hand.
		case kAdopt:
			// It existed before the integration: no external id.
			u.ExternalID, u.FirstName = "", "Legacy"
		case kAmbiguous:
			// Two accounts share the person's email.
			u.ExternalID, u.Username = "", "legacy-a-"+userName(i)
			dup := u
			dup.ID, dup.Username = learnerID(extra), "legacy-b-"+userName(i)
			extra++
			yield(dup)
		}
		yield(u)
	}
	for j := range k { // orphans
		yield(absorbsim.User{ID: learnerID(extra + j), Username: fmt.Sprintf("contractor%d@vendor.example", j), FirstName: "Con", LastName: "Tractor"})
	}
}

func (p params) oktaUser(i int) okta.User {
	status := "ACTIVE"
	if i < p.n {
		switch p.kindOf(i) {
		case kInactive, kUnassigned:
			status = "DEPROVISIONED"
		}
	}
	return okta.User{ID: oktasim.GeneratedID(i), Status: status, Profile: okta.Profile{
		Login: userName(i), Email: userName(i), FirstName: fmt.Sprintf("First%d", i), LastName: fmt.Sprintf("Last%d", i)}}
}

// ---- child: the Absorb simulator ----

func serveAbsorb(p params, out io.Writer) error {
	sim := absorbsim.New(absorbsim.Options{Username: absorbUser, Password: absorbPass, PrivateKey: absorbKey,
		Faults: absorbsim.Faults{Latency: p.absorbLatency}})
	defer sim.Close()
	p.learners(func(u absorbsim.User) { sim.SeedUser(u) })
	runtime.GC()
	fmt.Fprintf(out, "%s %s\n", sim.URL(), sim.DefaultDepartmentID())
	_, _ = io.Copy(io.Discard, os.Stdin) // serve until the parent closes stdin
	return nil
}

// ---- child: seeding the store ----

func seedStore(ctx context.Context, p params) error {
	st, err := bolt.Open(filepath.Join(p.dir, "store.db"))
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	members := map[string][]string{}
	for i := range p.n {
		active := p.kindOf(i) != kInactive
		id := &store.Identity{ID: identityID(i), UserName: userName(i), ExternalID: oktasim.GeneratedID(i), Active: active, Resource: resource(i, active)}
		if err := st.CreateIdentity(ctx, id); err != nil {
			return fmt.Errorf("seed identity %d: %w", i, err)
		}
		members[groupName(i)] = append(members[groupName(i)], id.ID)
	}
	names := make([]string, 0, len(members))
	for g := range members {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		if _, err := st.CreateGroup(ctx, &store.Group{ID: "g-" + g, DisplayName: g}, members[g]); err != nil {
			return fmt.Errorf("seed group: %w", err)
		}
	}
	for i := range p.n {
		switch p.kindOf(i) {
		case kMissing, kAdopt, kAmbiguous:
			continue // never synced
		}
		// Version 2: created, then added to its group.
		l := &store.Link{IdentityID: identityID(i), Target: "absorb", LearnerID: learnerID(i), ExternalID: oktasim.GeneratedID(i), SyncedVersion: 2}
		if err := st.PutLink(ctx, l); err != nil {
			return fmt.Errorf("seed link %d: %w", i, err)
		}
	}
	return nil
}

// ---- the measuring process ----

func measure(ctx context.Context, p params, out io.Writer) error {
	root := os.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		root = "/dev/shm"
	}
	dir, err := os.MkdirTemp(root, "reconcilerun-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	common := []string{"-n", fmt.Sprint(p.n), "-drift", fmt.Sprint(p.drift), "-dir", dir}

	fmt.Fprintf(out, "reconcilerun: %d identities, %d per kind of drift, data in %s\n", p.n, p.k(), dir)
	t0 := time.Now()
	absorbURL, deptID, stopAbsorb, err := startAbsorb(ctx, self, append(common, "-role", "absorb", "-absorb-latency", p.absorbLatency.String()))
	if err != nil {
		return err
	}
	defer stopAbsorb()
	seed := exec.CommandContext(ctx, self, append(common, "-role", "seed")...)
	seed.Stderr = os.Stderr
	if err := seed.Run(); err != nil {
		return fmt.Errorf("seed the store: %w", err)
	}
	fmt.Fprintf(out, "seeded in %s (store, %d learners in the Absorb simulator, %d Okta users)\n",
		time.Since(t0).Round(time.Millisecond), p.n+p.k()+max(1, p.k()/10), p.n+p.k())

	deps, closeAll, err := wire(p, dir, absorbURL, deptID)
	if err != nil {
		return err
	}
	defer closeAll()
	opts := reconcile.Options{DryRun: p.dryRun, CreateIdentities: true, GroupsField: groupsField}

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	if p.cpuProfile != "" {
		f, err := os.Create(p.cpuProfile)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	peak := sampleHeap()
	anonPeak := sampleAnon()
	start := time.Now()
	var rep *reconcile.Report
	invocations := 0
	for rep == nil || !rep.Complete {
		invocations++
		o := opts
		if p.slice > 0 {
			o.Deadline = time.Now().Add(p.slice)
		}
		if rep, err = reconcile.Run(ctx, deps, o); err != nil {
			return err
		}
		if invocations > 10000 {
			return errors.New("no progress")
		}
	}
	elapsed := time.Since(start)
	heapPeak, inusePeak := peak()
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)

	fmt.Fprintf(out, "\nreconciliation: %s over %d invocation(s) (%.0f learners/s)\n", elapsed.Round(time.Millisecond), invocations, float64(rep.Learners)/elapsed.Seconds())
	fmt.Fprintf(out, "memory: heap before %.1f MiB, peak heap %.1f MiB (+%.1f MiB), peak heap in use %.1f MiB\n",
		mib(base.HeapAlloc), mib(heapPeak), mib(heapPeak-min(heapPeak, base.HeapAlloc)), mib(inusePeak))
	storeSize := int64(0)
	if fi, err := os.Stat(filepath.Join(dir, "store.db")); err == nil {
		storeSize = fi.Size()
	}
	fmt.Fprintf(out, "        peak RSS %.1f MiB, of which anonymous (not the mmap'ed %.0f MiB bolt file) %.1f MiB\n",
		float64(ru.Maxrss)/1024, mib(uint64(storeSize)), mib(anonPeak()))
	fmt.Fprintf(out, "scanned: %d identities, %d links, %d learners (%d active), %d Okta users (%d active)\n",
		rep.Identities, rep.Links, rep.Learners, rep.ActiveLearners, rep.DirectoryUsers, rep.DirectoryActive)
	kinds := reconcile.Kinds()
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, rep.Counts[k]))
	}
	fmt.Fprintf(out, "drift %d: %s\n", rep.Drift, strings.Join(parts, ", "))
	fmt.Fprintf(out, "guard %s %s; enqueued %d, parked %d, created %d, deactivated %d\n",
		rep.Guard.Verdict, rep.Guard.Reason, rep.Enqueued, rep.Parked, rep.Created, rep.Deactivated)
	budget := lambdaTimeout - lambdaMargin
	fmt.Fprintf(out, "Lambda (15 min, %s margin): %d invocation(s) needed (%.1f%% of one invocation's budget)\n",
		lambdaMargin, int(math.Ceil(elapsed.Seconds()/budget.Seconds())), 100*elapsed.Seconds()/budget.Seconds())
	if err := check(p, rep); err != nil {
		return err
	}
	fmt.Fprintln(out, "counts match the seeded drift")
	return nil
}

// wire opens the seeded store and a queue, starts the Okta simulator and
// returns reconciliation's deps over them and the Absorb simulator.
func wire(p params, dir, absorbURL, deptID string) (reconcile.Deps, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (reconcile.Deps, func(), error) {
		closeAll()
		return reconcile.Deps{}, nil, err
	}
	st, err := bolt.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = st.Close() })
	q, err := disk.Open(filepath.Join(dir, "queue.db"), disk.Options{})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = q.Close() })
	org := oktasim.New(oktasim.Options{APIToken: oktaToken, PageSize: 500, Latency: p.oktaLatency})
	closers = append(closers, org.Close)
	org.CreateApp(oktaApp)
	org.Populate(p.n+p.k(), p.oktaUser) // the last k are unknown to us
	org.AssignPopulation(oktaApp)
	oc, err := okta.New(okta.Config{OrgURL: org.URL(), APIToken: oktaToken, PageSize: 500})
	if err != nil {
		return fail(err)
	}
	// Absorb's default ceiling (ABSORB_RATE_LIMIT=10): listing 100k
	// learners is about 100 requests.
	conn, err := absorb.New(absorb.Config{BaseURL: absorbURL, Username: absorbUser, Password: absorbPass, PrivateKey: absorbKey,
		Limiter: throttle.NewLocal(10, 1), Tokens: tokencache.NewLocal(), DefaultDepartmentID: deptID, GroupsField: groupsField})
	if err != nil {
		return fail(err)
	}
	tgt := worker.Target{Name: "absorb", Conn: conn, Mapping: mapping.Default(),
		AdoptBy: []connector.KeyKind{connector.KeyExternalID, connector.KeyUserName, connector.KeyEmail}}
	reviews, err := review.New(st, review.Config{Queue: q})
	if err != nil {
		return fail(err)
	}
	deps := reconcile.Deps{Store: st, Queue: q, Target: tgt, Directory: reconcile.OktaDirectory{Client: oc, AppID: oktaApp},
		Reviews: reviews, Logger: slog.New(slog.DiscardHandler)}
	if p.verbose {
		deps.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return deps, closeAll, nil
}

// check compares the report with what was seeded.
func check(p params, rep *reconcile.Report) error {
	k := p.k()
	want := map[reconcile.Kind]int{
		reconcile.Missing: k, reconcile.Mismatch: k, reconcile.Inactive: k, reconcile.Adopt: k,
		reconcile.Ambiguous: max(1, k/10), reconcile.Orphan: k, reconcile.Unknown: k, reconcile.Unassigned: k,
	}
	for kd, n := range want {
		if rep.Counts[kd] != n {
			return fmt.Errorf("%s: reported %d, seeded %d", kd, rep.Counts[kd], n)
		}
	}
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// sampleHeap polls the heap until the returned func is called, which
// answers the peaks.
func sampleHeap() func() (uint64, uint64) {
	var mu sync.Mutex
	var heap, inuse uint64
	done := make(chan struct{})
	stopped := make(chan struct{})
	read := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		mu.Lock()
		heap, inuse = max(heap, m.HeapAlloc), max(inuse, m.HeapInuse)
		mu.Unlock()
	}
	go func() {
		defer close(stopped)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		<-stopped
		read()
		mu.Lock()
		defer mu.Unlock()
		return heap, inuse
	}
}

// startAbsorb starts the simulator child and reads its URL.
func startAbsorb(ctx context.Context, self string, args []string) (string, string, func(), error) {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", "", nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", "", nil, err
	}
	stop := func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		return "", "", nil, fmt.Errorf("start the Absorb simulator: %w", err)
	}
	url, dept, ok := strings.Cut(strings.TrimSpace(line), " ")
	if !ok {
		stop()
		return "", "", nil, fmt.Errorf("start the Absorb simulator: unexpected %q", line)
	}
	return url, dept, stop, nil
}

// sampleAnon polls the process's anonymous resident memory (Linux
// /proc/self/status RssAnon: heap, stacks, the runtime; not the store's
// memory-mapped file) until the returned func is called; 0 elsewhere.
func sampleAnon() func() uint64 {
	var mu sync.Mutex
	var peak uint64
	read := func() {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
				var kb uint64
				if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb); err == nil {
					mu.Lock()
					peak = max(peak, kb<<10)
					mu.Unlock()
				}
			}
		}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				read()
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-stopped
		read()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
