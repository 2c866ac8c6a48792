// Command drain measures the outbound pipeline against a rate-limited
// Absorb: it starts the Absorb simulator admitting R requests per sliding
// second, a local runner (SCIM API, bolt store, disk queue, workers) whose
// target is that simulator, sends a burst of SCIM changes, waits until
// every identity is synced and the queue is empty, and prints what the
// simulator saw: total time, average request rate, the busiest 1-second
// window, 429s, dead letters, and learners versus identities.
//
// It exits non-zero unless every 1-second window stayed at or under R, the
// average rate reached 90% of R, nothing was lost or duplicated, and no
// intent went to the dead-letter queue.
//
//	go run ./infra/drain                      # 2,000 creates at R=20 with 8 workers
//	go run ./infra/drain -changes 500 -identities 100 -rate 50
//	go run ./infra/drain -mode allinone       # through shared/allinone.Start as wired today
//
// -mode direct wires the runner's parts the way shared/allinone does, but
// with the limiter from target.NewLocalLimiter; -mode allinone uses
// allinone.Start unchanged, to check its own limiter wiring.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/learnerlink/learnerlink/shared/allinone"
	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/disk"
	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/target"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/tokencache"
	"github.com/learnerlink/learnerlink/shared/worker"
)

const (
	simUser = "drain-admin"
	simPass = "Drain!Passw0rd"
	simKey  = "drain-private-key"
	token   = "drain-scim-token"
)

type options struct {
	rate       float64
	workers    int
	batch      int
	changes    int
	identities int
	senders    int
	mode       string
	timeout    time.Duration
	verbose    bool
}

func main() {
	var o options
	flag.Float64Var(&o.rate, "rate", 20, "requests per second the simulated Absorb admits (R); also ABSORB_RATE_LIMIT")
	flag.IntVar(&o.workers, "workers", 8, "concurrent queue consumers")
	flag.IntVar(&o.batch, "batch", 10, "messages per receive")
	flag.IntVar(&o.changes, "changes", 2000, "SCIM changes to send")
	flag.IntVar(&o.identities, "identities", 0, "distinct users the changes touch (0: one create per change); the rest are updates")
	flag.IntVar(&o.senders, "senders", 16, "concurrent SCIM clients")
	flag.StringVar(&o.mode, "mode", "direct", "direct (runner parts wired with target.NewLocalLimiter) or allinone (allinone.Start as is)")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	flag.BoolVar(&o.verbose, "v", false, "log warnings from the pipeline")
	flag.Parse()
	if o.identities <= 0 || o.identities > o.changes {
		o.identities = o.changes
	}
	ok, err := run(o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drain:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// pipeline is a running local runner, whichever way it was built.
type pipeline struct {
	url   string
	store *bolt.Store
	queue *disk.Queue
	count *countingQueue    // nil in allinone mode
	lim   *recordingLimiter // nil in allinone mode
	stop  func() error
}

func run(o options, out io.Writer) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	level := slog.LevelError
	if o.verbose {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	sim := absorbsim.New(absorbsim.Options{Username: simUser, Password: simPass, PrivateKey: simKey, RateLimit: o.rate})
	defer sim.Close()
	dir, err := os.MkdirTemp("", "learnerlink-drain-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	env := map[string]string{
		"LEARNERLINK_DATA_DIR":         filepath.Join(dir, "data"),
		"LEARNERLINK_SCIM_TOKEN":       token,
		"LEARNERLINK_TARGET":           "absorb",
		"LEARNERLINK_WORKERS":          strconv.Itoa(o.workers),
		"ABSORB_API_URL":               sim.URL(),
		"ABSORB_USERNAME":              simUser,
		"ABSORB_PASSWORD":              simPass,
		"ABSORB_PRIVATE_KEY":           simKey,
		"ABSORB_RATE_LIMIT":            strconv.FormatFloat(o.rate, 'f', -1, 64),
		"ABSORB_DEFAULT_DEPARTMENT_ID": sim.DefaultDepartmentID(),
	}
	getenv := func(k string) string { return env[k] }
	s, err := config.FromEnv(getenv)
	if err != nil {
		return false, err
	}
	var p *pipeline
	switch o.mode {
	case "direct":
		p, err = startDirect(ctx, s, getenv, o, log)
	case "allinone":
		p, err = startAllinone(ctx, s, getenv, log)
	default:
		err = fmt.Errorf("unknown -mode %q", o.mode)
	}
	if err != nil {
		return false, err
	}
	defer func() { _ = p.stop() }()

	fmt.Fprintf(out, "learnerlink drain: %d SCIM changes over %d users, Absorb sim admitting R=%g req/s, %d workers (batch %d), mode %s\n",
		o.changes, o.identities, o.rate, o.workers, o.batch, o.mode)
	begin := time.Now()
	if err := seed(ctx, p.url, o); err != nil {
		return false, err
	}
	fmt.Fprintf(out, "seeded %d changes in %.1fs\n", o.changes, time.Since(begin).Seconds())
	if err := waitDrained(ctx, p, sim, out, begin); err != nil {
		return false, err
	}
	took := time.Since(begin)
	return report(ctx, out, o, p, sim, took)
}

func startDirect(ctx context.Context, s config.Settings, getenv func(string) string, o options, log *slog.Logger) (*pipeline, error) {
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return nil, err
	}
	st, err := bolt.Open(filepath.Join(s.DataDir, "store.db"))
	if err != nil {
		return nil, err
	}
	q, err := disk.Open(filepath.Join(s.DataDir, "queue.db"), disk.Options{})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	closeAll := func() error { return errors.Join(q.Close(), st.Close()) }
	lim := &recordingLimiter{Limiter: target.NewLocalLimiter(s.Absorb.RateLimit, throttle.WithLogger(log))}
	sh := target.Shared{Limiter: lim, Tokens: tokencache.NewLocal()}
	tgt, err := target.Build(s, sh, getenv, log)
	if err != nil {
		return nil, errors.Join(err, closeAll())
	}
	w, err := worker.New(st, []worker.Target{tgt}, worker.Config{Logger: log})
	if err != nil {
		return nil, errors.Join(err, closeAll())
	}
	cq := &countingQueue{Queue: q}
	api, err := scim.NewHandler(st, cq, scim.Config{Token: token, Logger: log})
	if err != nil {
		return nil, errors.Join(err, closeAll())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, errors.Join(err, closeAll())
	}
	mux := http.NewServeMux()
	mux.Handle("/scim/v2/", api)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(wctx, cq, o.workers, o.batch) })
	wg.Go(func() { _ = srv.Serve(ln) })
	return &pipeline{url: "http://" + ln.Addr().String(), store: st, queue: q, count: cq, lim: lim, stop: func() error {
		err := srv.Shutdown(context.Background())
		stopWorkers()
		wg.Wait()
		return errors.Join(err, closeAll())
	}}, nil
}

func startAllinone(ctx context.Context, s config.Settings, getenv func(string) string, log *slog.Logger) (*pipeline, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r, err := allinone.Start(ctx, s, allinone.Options{Getenv: getenv, Logger: log, Listener: ln})
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	return &pipeline{url: r.URL(), store: r.Store, queue: r.Queue, stop: r.Stop}, nil
}

// recordingLimiter remembers when it let each request go, to tell the
// limiter's own pacing from delays on the way to the target.
type recordingLimiter struct {
	throttle.Limiter
	mu     sync.Mutex
	grants []time.Time
}

func (l *recordingLimiter) Wait(ctx context.Context) error {
	err := l.Limiter.Wait(ctx)
	if err == nil {
		now := time.Now()
		l.mu.Lock()
		l.grants = append(l.grants, now)
		l.mu.Unlock()
	}
	return err
}

func (l *recordingLimiter) times() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.SortedFunc(slices.Values(l.grants), time.Time.Compare)
}

// countingQueue counts what goes through the queue, to tell "empty" from
// "everything synced" and to see redeliveries.
type countingQueue struct {
	*disk.Queue
	enqueued, acked, retried, parked, redelivered atomic.Int64
}

func (c *countingQueue) Enqueue(ctx context.Context, in ...queue.Intent) error {
	err := c.Queue.Enqueue(ctx, in...)
	if err == nil {
		c.enqueued.Add(int64(len(in)))
	}
	return err
}

func (c *countingQueue) Receive(ctx context.Context, max int, wait time.Duration) ([]queue.Message, error) {
	msgs, err := c.Queue.Receive(ctx, max, wait)
	for _, m := range msgs {
		if m.Receives > 1 {
			c.redelivered.Add(1)
		}
	}
	return msgs, err
}

func (c *countingQueue) Ack(ctx context.Context, h string) error {
	err := c.Queue.Ack(ctx, h)
	if err == nil {
		c.acked.Add(1)
	}
	return err
}

func (c *countingQueue) Retry(ctx context.Context, h string, d time.Duration) error {
	err := c.Queue.Retry(ctx, h, d)
	if err == nil {
		c.retried.Add(1)
	}
	return err
}

func (c *countingQueue) Park(ctx context.Context, h, reason string) error {
	err := c.Queue.Park(ctx, h, reason)
	if err == nil {
		c.parked.Add(1)
	}
	return err
}

// seed sends the changes: a create per user, then updates round-robin.
func seed(ctx context.Context, base string, o options) error {
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: o.senders}}
	ids := make([]string, o.identities)
	send := func(method, path string, body any) (map[string]any, error) {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, method, base+"/scim/v2"+path, bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		res, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		if err != nil {
			return nil, err
		}
		if res.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, raw)
		}
		var m map[string]any
		err = json.Unmarshal(raw, &m)
		return m, err
	}
	parallel := func(n int, f func(i int) error) error {
		next := atomic.Int64{}
		var mu sync.Mutex
		var first error
		var wg sync.WaitGroup
		for range o.senders {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= n || ctx.Err() != nil {
						return
					}
					if err := f(i); err != nil {
						mu.Lock()
						if first == nil {
							first = err
						}
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		return first
	}
	if err := parallel(o.identities, func(i int) error {
		res, err := send("POST", "/Users", user(i))
		if err != nil {
			return err
		}
		ids[i], _ = res["id"].(string)
		return nil
	}); err != nil {
		return fmt.Errorf("seed creates: %w", err)
	}
	updates := o.changes - o.identities
	// Updates to one user are sent by one sender, in order.
	return parallel(o.identities, func(i int) error {
		for k := i; k < updates; k += o.identities {
			op := map[string]any{"op": "replace", "value": map[string]any{"title": fmt.Sprintf("Title %d", k)}}
			if _, err := send("PATCH", "/Users/"+ids[i], map[string]any{
				"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": []any{op}}); err != nil {
				return fmt.Errorf("seed updates: %w", err)
			}
		}
		return nil
	})
}

func user(i int) map[string]any {
	login := fmt.Sprintf("drain.user%05d@example.com", i)
	return map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName":   login,
		"externalId": fmt.Sprintf("00udrain%05d", i),
		"name":       map[string]any{"givenName": "Drain", "familyName": fmt.Sprintf("User%05d", i)},
		"emails":     []any{map[string]any{"primary": true, "value": login, "type": "work"}},
		"title":      "Tester",
		"active":     true,
	}
}

// waitDrained waits until no identity is pending and (when counted) every
// queued intent was settled, printing progress every 10 seconds.
func waitDrained(ctx context.Context, p *pipeline, sim *absorbsim.Sim, out io.Writer, begin time.Time) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	lastReport := time.Now()
	for {
		pend, err := p.store.ListPending(ctx, time.Now().Add(time.Hour), 1_000_000)
		if err != nil {
			return err
		}
		settled := true
		if p.count != nil {
			settled = p.count.acked.Load()+p.count.parked.Load() == p.count.enqueued.Load()
		}
		if len(pend) == 0 && settled {
			return nil
		}
		if time.Since(lastReport) >= 10*time.Second {
			lastReport = time.Now()
			fmt.Fprintf(out, "  %4.0fs: %d identities pending, %d learners, %d requests\n",
				time.Since(begin).Seconds(), len(pend), len(sim.Users()), len(sim.Requests()))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not drained: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func report(ctx context.Context, out io.Writer, o options, p *pipeline, sim *absorbsim.Sim, took time.Duration) (bool, error) {
	reqs := sim.Requests()
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].Time.Before(reqs[j].Time) })
	if len(reqs) == 0 {
		return false, errors.New("the simulator saw no request")
	}
	var statuses = map[int]int{}
	byMethod := map[string]int{}
	times := make([]time.Time, len(reqs))
	for i, r := range reqs {
		statuses[r.Status]++
		byMethod[r.Method]++
		times[i] = r.Time
	}
	span := reqs[len(reqs)-1].Time.Sub(reqs[0].Time)
	avg := float64(len(reqs)) / span.Seconds()
	busiest, at := maxWindow(times, time.Second)
	lo, hi := secondBuckets(times)

	dead, err := p.queue.DeadLetters(ctx, 1_000_000)
	if err != nil {
		return false, err
	}
	// Whatever is still visible in the queue now is left over.
	left, err := p.queue.Receive(ctx, 100, 0)
	if err != nil {
		return false, err
	}
	idents, err := p.store.CountIdentities(ctx)
	if err != nil {
		return false, err
	}
	users := sim.Users()
	exts := map[string]int{}
	for _, u := range users {
		exts[u.ExternalID]++
	}
	dups := 0
	for _, n := range exts {
		dups += n - 1
	}
	unsynced, err := unsyncedLinks(ctx, p.store, idents)
	if err != nil {
		return false, err
	}

	fmt.Fprintf(out, "drained in %.1fs (first SCIM request to every identity synced)\n", took.Seconds())
	fmt.Fprintf(out, "requests to Absorb: %d (%.2f per change; by method %v; by status %v)\n", len(reqs), float64(len(reqs))/float64(o.changes), byMethod, statuses)
	fmt.Fprintf(out, "average rate: %.2f req/s over %.1fs = %.1f%% of R\n", avg, span.Seconds(), 100*avg/o.rate)
	fmt.Fprintf(out, "busiest 1-second window: %d requests (starting %.3fs in); whole-second buckets min %d max %d\n",
		busiest, at.Sub(reqs[0].Time).Seconds(), lo, hi)
	if p.lim != nil {
		g := p.lim.times()
		gb, gat := maxWindow(g, time.Second)
		fmt.Fprintf(out, "limiter releases: %d; busiest 1-second window of releases: %d (starting %.3fs in)\n", len(g), gb, gat.Sub(reqs[0].Time).Seconds())
		if len(g) == len(times) {
			d := make([]time.Duration, len(g))
			for i := range g {
				d[i] = times[i].Sub(g[i])
			}
			slices.Sort(d)
			fmt.Fprintf(out, "release to arrival (k-th release vs k-th arrival): p50 %v p99 %v max %v\n", d[len(d)/2], d[len(d)*99/100], d[len(d)-1])
		}
	}
	fmt.Fprintf(out, "429 answers: %d\n", statuses[http.StatusTooManyRequests])
	fmt.Fprintf(out, "dead letters: %d; messages left in the queue: %d\n", len(dead), len(left))
	if p.count != nil {
		fmt.Fprintf(out, "queue: %d enqueued, %d acked, %d retried, %d parked, %d redelivered\n",
			p.count.enqueued.Load(), p.count.acked.Load(), p.count.retried.Load(), p.count.parked.Load(), p.count.redelivered.Load())
	}
	fmt.Fprintf(out, "learners in Absorb: %d; identities: %d; duplicate learners: %d; identities not synced: %d\n",
		len(users), idents, dups, unsynced)

	checks := []struct {
		ok   bool
		what string
	}{
		{busiest <= int(o.rate), fmt.Sprintf("every 1-second window <= R (%d <= %g)", busiest, o.rate)},
		{avg >= 0.9*o.rate, fmt.Sprintf("average >= 0.9 R (%.2f >= %.2f)", avg, 0.9*o.rate)},
		{len(users) == idents && idents == o.identities && unsynced == 0, "zero lost: one learner per identity, every identity synced"},
		{dups == 0, "no duplicate learner"},
		{len(dead) == 0, "zero dead letters"},
		{len(left) == 0, "queue empty"},
	}
	all := true
	for _, c := range checks {
		mark := "PASS"
		if !c.ok {
			mark, all = "FAIL", false
		}
		fmt.Fprintf(out, "%s  %s\n", mark, c.what)
	}
	return all, nil
}

// maxWindow is the most requests in any half-open window [t, t+w) and
// where the first such window starts.
func maxWindow(ts []time.Time, w time.Duration) (int, time.Time) {
	best, j := 0, 0
	var at time.Time
	for i := range ts {
		for j < len(ts) && ts[j].Before(ts[i].Add(w)) {
			j++
		}
		if j-i > best {
			best, at = j-i, ts[i]
		}
	}
	return best, at
}

// secondBuckets is the fewest and most requests in the whole seconds
// between the first and the last request (partial ends excluded).
func secondBuckets(ts []time.Time) (lo, hi int) {
	start := ts[0]
	n := int(ts[len(ts)-1].Sub(start) / time.Second)
	if n < 1 {
		return len(ts), len(ts)
	}
	counts := make([]int, n)
	for _, t := range ts {
		if k := int(t.Sub(start) / time.Second); k < n {
			counts[k]++
		}
	}
	return slices.Min(counts), slices.Max(counts)
}

// unsyncedLinks counts identities whose link is missing or behind.
func unsyncedLinks(ctx context.Context, st *bolt.Store, want int) (int, error) {
	n, cursor := 0, ""
	seen := 0
	for {
		page, err := st.ListIdentities(ctx, cursor, 500)
		if err != nil {
			return 0, err
		}
		for _, id := range page.Items {
			seen++
			l, err := st.GetLink(ctx, id.ID, "absorb")
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return 0, err
			}
			if l == nil || l.SyncedVersion < id.Version || l.LearnerID == "" {
				n++
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	return n + (want - seen), nil
}
