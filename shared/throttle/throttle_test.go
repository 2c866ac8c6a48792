package throttle_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/learnerlink/learnerlink/shared/retry"
	"github.com/learnerlink/learnerlink/shared/testenv"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/throttle/throttletest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// scenario: workers goroutines call Wait in a loop for dur of simulated
// time; optionally one more participant calls Pause(pauseFor) at pauseAt.
type scenario struct {
	name     string
	workers  int
	rate     float64
	burst    int
	dur      time.Duration
	pauseAt  time.Duration // 0: no pause
	pauseFor time.Duration // 0: backoff
	// maxCalls bounds Shared's DynamoDB calls per grant (the 4s runs
	// include each worker's lease ramp-up from 1 token).
	maxCalls float64
}

// run returns the grant times as offsets from t0, sorted.
func (sc scenario) run(t *testing.T, clock *throttletest.SimClock, limiter func(i int) throttle.Limiter) []time.Duration {
	t.Helper()
	var side []func(context.Context) error
	if sc.pauseAt > 0 {
		lim := limiter(0)
		side = append(side, func(ctx context.Context) error {
			if clock.Sleep(ctx, sc.pauseAt) != nil {
				return nil
			}
			return lim.Pause(ctx, sc.pauseFor)
		})
	}
	return throttletest.Grants(t, clock, t0, sc.dur, sc.workers, limiter, side...)
}

// maxWindow is the largest number of grants in any half-open window of
// length w (every window that starts at a grant; no other can hold more).
func maxWindow(grants []time.Duration, w time.Duration) int {
	best, j := 0, 0
	for i := range grants {
		for j < len(grants) && grants[j] < grants[i]+w {
			j++
		}
		best = max(best, j-i)
	}
	return best
}

func count(grants []time.Duration, from, to time.Duration) int {
	n := 0
	for _, g := range grants {
		if g >= from && g < to {
			n++
		}
	}
	return n
}

// checkScenario asserts the bounds every limiter must meet; slack is how
// long after Pause grants may still happen (a lease already taken),
// inclusive: grants in (pauseAt+slack, pauseAt+pauseFor) fail.
func checkScenario(t *testing.T, sc scenario, grants []time.Duration, windowMax int, minTotal, maxTotal int, slack time.Duration) {
	t.Helper()
	if got := maxWindow(grants, time.Second); got > windowMax {
		t.Errorf("%d grants in one 1s window, want <= %d", got, windowMax)
	}
	if n := len(grants); n < minTotal || n > maxTotal {
		t.Errorf("%d grants in %v, want %d..%d", n, sc.dur, minTotal, maxTotal)
	}
	for s := time.Duration(0); s < sc.dur; s += time.Second {
		t.Logf("window [%v,%v): %d grants", s, s+time.Second, count(grants, s, s+time.Second))
	}
	if sc.pauseAt > 0 && sc.pauseFor > 0 {
		end := sc.pauseAt + sc.pauseFor
		if n := count(grants, sc.pauseAt+slack+time.Nanosecond, end); n != 0 {
			t.Errorf("%d grants during the pause (%v,%v)", n, sc.pauseAt+slack, end)
		}
		after := count(grants, end, sc.dur)
		if full := int(sc.rate * (sc.dur - end).Seconds()); after == 0 || after > full {
			t.Errorf("%d grants after the pause, want 1..%d (resumed at a reduced rate)", after, full)
		}
	}
}

var scenarios = []scenario{
	{name: "steady", workers: 8, rate: 50, burst: 5, dur: 4 * time.Second, maxCalls: 0.8},
	{name: "pause 1s", workers: 8, rate: 50, burst: 5, dur: 4 * time.Second, pauseAt: 2 * time.Second, pauseFor: time.Second, maxCalls: 1.2},
	{name: "pause backoff", workers: 8, rate: 50, burst: 5, dur: 4 * time.Second, pauseAt: 2 * time.Second, maxCalls: 1.2},
}

func TestLocalAggregate(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			clock := throttletest.NewSimClock(t0)
			lim := throttle.NewLocal(sc.rate, sc.burst, throttle.WithClock(clock), throttle.WithLogger(quiet()),
				throttle.WithRand(func() float64 { return 0.5 }),
				throttle.WithBackoff(retry.Backoff{Base: 2 * time.Second, Max: 2 * time.Second}))
			grants := sc.run(t, clock, func(int) throttle.Limiter { return lim })
			// x/time/rate is exact: burst + rate*W in any window W.
			ideal := int(sc.rate*sc.dur.Seconds()) + sc.burst
			minTotal := ideal * 9 / 10
			if sc.pauseAt > 0 {
				minTotal = int(sc.rate * sc.pauseAt.Seconds()) // at least what came before the pause
			}
			checkScenario(t, sc, grants, sc.burst+int(sc.rate), minTotal, ideal, 0)
			if sc.pauseAt > 0 && sc.pauseFor == 0 { // backoff: 0.5 * 2s = 1s
				if n := count(grants, sc.pauseAt+time.Nanosecond, sc.pauseAt+time.Second); n != 0 {
					t.Errorf("%d grants during the 1s backoff pause", n)
				}
			}
		})
	}
}

func TestLocalWaitHonoursContext(t *testing.T) {
	lim := throttle.NewLocal(1, 1, throttle.WithLogger(quiet()))
	ctx, cancel := context.WithCancel(t.Context())
	if err := lim.Wait(ctx); err != nil { // the burst token
		t.Fatal(err)
	}
	if err := lim.Pause(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := lim.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
	}
}

// --- DynamoDB ---

// counting wraps the client to measure DynamoDB calls per grant.
type counting struct {
	throttle.DynamoAPI
	gets, updates, lost atomic.Int64
}

func (c *counting) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.gets.Add(1)
	return c.DynamoAPI.GetItem(ctx, in, o...)
}

func (c *counting) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.updates.Add(1)
	out, err := c.DynamoAPI.UpdateItem(ctx, in, o...)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		c.lost.Add(1)
	}
	return out, err
}

// newTable creates a uniquely named table with the store's PK/SK keys on
// the test server and deletes it (only it) afterwards.
func newTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	client := testenv.DynamoClient(t)
	return client, testenv.BareTable(t, client, "throttle-test-")
}

func TestSharedAggregate(t *testing.T) {
	client, table := newTable(t)
	const lease = 100 * time.Millisecond
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			target := "absorb-" + sc.name
			api := &counting{DynamoAPI: client}
			clock := throttletest.NewSimClock(t0)
			limiters := make([]throttle.Limiter, sc.workers)
			for i := range limiters {
				rnd := mrand.New(mrand.NewPCG(uint64(i), 42)).Float64
				if sc.pauseAt > 0 && i == 0 {
					rnd = func() float64 { return 0.5 } // the pauser: backoff pause = 0.5 * 2s
				}
				limiters[i] = throttle.NewShared(api, table, target, sc.rate, sc.burst,
					throttle.WithClock(clock), throttle.WithLogger(quiet()), throttle.WithRand(rnd),
					throttle.WithLease(lease, 0),
					throttle.WithBackoff(retry.Backoff{Base: 2 * time.Second, Max: 2 * time.Second}))
			}
			grants := sc.run(t, clock, func(i int) throttle.Limiter { return limiters[i] })

			// Documented bound: burst + rate*(W + lease) in any window W.
			windowMax := sc.burst + int(sc.rate*(time.Second+lease).Seconds())
			ideal := int(sc.rate*sc.dur.Seconds()) + sc.burst
			minTotal := ideal * 8 / 10
			if sc.pauseAt > 0 {
				minTotal = int(sc.rate*sc.pauseAt.Seconds()) * 8 / 10
			}
			// A Pause reaches every worker within lease, inclusive (see the
			// package doc): a worker whose re-read or booking DynamoDB served
			// just before the pause's write, at the same simulated instant
			// pauseAt, may still send at exactly pauseAt+lease.
			checkScenario(t, sc, grants, windowMax, minTotal, ideal+int(sc.rate*lease.Seconds()), lease)
			if sc.pauseAt > 0 && sc.pauseFor == 0 {
				if n := count(grants, sc.pauseAt+lease+time.Nanosecond, sc.pauseAt+time.Second); n != 0 {
					t.Errorf("%d grants during the 1s backoff pause (%v,%v)", n, sc.pauseAt+lease, sc.pauseAt+time.Second)
				}
			}
			calls := api.gets.Load() + api.updates.Load()
			t.Logf("%d grants, %d DynamoDB calls (%d GetItem, %d UpdateItem of which %d lost the race): %.2f calls per grant",
				len(grants), calls, api.gets.Load(), api.updates.Load(), api.lost.Load(), float64(calls)/float64(max(1, len(grants))))
			if float64(calls) > sc.maxCalls*float64(len(grants)) {
				t.Errorf("%d DynamoDB calls for %d grants, want at most %.1f per grant", calls, len(grants), sc.maxCalls)
			}

			// The item lives where the store's single table expects it.
			pk, sk := throttle.ItemKey(target)
			out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{
				TableName: aws.String(table),
				Key: map[string]types.AttributeValue{
					"PK": &types.AttributeValueMemberS{Value: pk},
					"SK": &types.AttributeValueMemberS{Value: sk},
				},
				ConsistentRead: aws.Bool(true),
			})
			if err != nil || len(out.Item) == 0 {
				t.Fatalf("bucket item %s/%s: %v (found %d attributes)", pk, sk, err, len(out.Item))
			}
			for _, a := range []string{"tat", "updatedAt", "factor", "pausedUntil", "streak"} {
				if _, ok := out.Item[a]; !ok {
					t.Errorf("bucket item lacks %q", a)
				}
			}
		})
	}
}

// TestSharedConcurrentUse runs several goroutines on one Shared in real
// time (for the race detector), and checks a second process sees a pause.
func TestSharedConcurrentUse(t *testing.T) {
	client, table := newTable(t)
	a := throttle.NewShared(client, table, "concurrent", 1000, 20, throttle.WithLogger(quiet()))
	b := throttle.NewShared(client, table, "concurrent", 1000, 20, throttle.WithLogger(quiet()))
	var wg sync.WaitGroup
	var grants atomic.Int64
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if err := a.Wait(t.Context()); err != nil {
					t.Error(err)
					return
				}
				grants.Add(1)
			}
		})
	}
	wg.Wait()
	if grants.Load() != 40 {
		t.Fatalf("%d grants, want 40", grants.Load())
	}
	if err := a.Pause(t.Context(), time.Hour); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait in another process during an hour's pause = %v, want DeadlineExceeded", err)
	}
}

// BenchmarkLocalWait measures the uncontended cost of a grant (the rate is
// high enough never to block).
func BenchmarkLocalWait(b *testing.B) {
	lim := throttle.NewLocal(1e9, 1000, throttle.WithLogger(quiet()))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := lim.Wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalWaitParallel is the same with every P competing.
func BenchmarkLocalWaitParallel(b *testing.B) {
	lim := throttle.NewLocal(1e9, 1000, throttle.WithLogger(quiet()))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := lim.Wait(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
