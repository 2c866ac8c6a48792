package target

import (
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/learnerlink/learnerlink/shared/throttle"
)

// Keeping a target under its ceiling of C requests per second takes two
// parts here:
//
//   - pacing: a token bucket with a burst of 1 releases requests at most C
//     per second, evenly (LocalLimits; a bucket sized like the ceiling, the
//     obvious wiring, lets nearly 2C through in the first second after an
//     idle spell), and slows down when the target's 429s say we are over
//     its limit (throttle.Guard in front of the bucket: isolated 429s are
//     only retried by the request that got them);
//   - the guarantee: WindowTransport counts each request from when it is
//     sent until its answer arrives, and holds a request back while C
//     others were answered less than a second ago or are still in flight.
//     A request reaches the target after it is sent and before its answer
//     comes back, so however late a goroutine woke up or a packet was
//     delayed, no 1-second window at the target sees more than C of this
//     process's requests. (Pacing alone cannot promise that: on a busy
//     machine a request released on time can be sent 100ms+ later and
//     bunch up with the punctual ones behind it.)
//
// The Lambda workers share one budget across processes (throttle.Shared,
// SharedLimits); there the per-process window is only a backstop.

// Jitter is the slack SharedLimits leaves in every 1-second window for
// requests that reach the target earlier or later than throttle.Shared
// released them: requests released 1/rate apart may arrive up to Jitter
// closer together and the target still sees at most the ceiling.
const Jitter = 75 * time.Millisecond

// SharedLease is the lease SharedLimits sets for throttle.Shared (its
// default is 100ms); a shorter lease lets more of the ceiling be used.
const SharedLease = 50 * time.Millisecond

// Limits is how to configure a token-bucket limiter for a target with a
// ceiling of C requests per second.
type Limits struct {
	Rate  float64       // tokens per second; 0 means unlimited
	Burst int           // bucket size
	Lease time.Duration // throttle.Shared's lease (throttle.WithLease); 0 for Local
}

// LocalLimits is for throttle.Local (one process): the ceiling's rate with
// a burst of 1, so releases are 1/C apart and any 1-second window of
// releases holds at most C. WindowTransport makes that hold at the target.
func LocalLimits(ceiling float64) Limits {
	return Limits{Rate: max(ceiling, 0), Burst: 1}
}

// SharedLimits is for throttle.Shared (every worker process together). Its
// guarantee (see package throttle) adds the lease to the window: a token
// sent in [a, b] owns a slot of 1/rate inside [a-Lease, b+burst/rate], so
// with a burst of 1 a window of 1s+Jitter holds at most
// ⌊rate·(1s+Jitter+Lease)⌋+1 requests; the rate below keeps that at the
// ceiling, using about 89% of it.
func SharedLimits(ceiling float64) Limits {
	if ceiling <= 0 {
		return Limits{Burst: 1, Lease: SharedLease}
	}
	r := ceiling / (1 + (Jitter + SharedLease).Seconds())
	// Just under, so ⌊rate·W⌋ stays below the ceiling when rate·W would
	// land exactly on it.
	return Limits{Rate: r * (1 - 1e-9), Burst: 1, Lease: SharedLease}
}

// NewLocalLimiter is the local runner's limiter for a target with the
// given ceiling (requests per second, summed over every worker): a
// throttle.Local behind a throttle.Guard, so an isolated 429 makes only
// its own request wait, and only dense 429s (or a long Retry-After)
// pause every worker and lower the rate. opts go to both (WithGuard
// tunes the guard).
func NewLocalLimiter(ceiling float64, opts ...throttle.Option) *throttle.Guard {
	l := LocalLimits(ceiling)
	return throttle.NewGuard(throttle.NewLocal(l.Rate, l.Burst, opts...), opts...)
}

// NewSharedLimiter is the Lambda workers' limiter for a target with the
// given ceiling, shared through the item throttle.ItemKey(target) in
// table, behind this process's throttle.Guard (as NewLocalLimiter): one
// Lambda's isolated 429 does not pause every Lambda. Call it once per
// target per process.
func NewSharedLimiter(client throttle.DynamoAPI, table, target string, ceiling float64, opts ...throttle.Option) *throttle.Guard {
	l := SharedLimits(ceiling)
	// Applied last: the rate above is only safe with this lease (a zero
	// horizon keeps whatever horizon opts set).
	opts = append(slices.Clip(opts), throttle.WithLease(l.Lease, 0))
	return throttle.NewGuard(throttle.NewShared(client, table, target, l.Rate, l.Burst, opts...), opts...)
}

// WindowTransport wraps base (nil: http.DefaultTransport) so that at most
// ⌊ceiling⌋ of the requests sent through it can reach the server within
// any 1-second window (see the comment at the top of this file). A
// request counts from when it is sent until one second after its answer
// arrived (or it failed: a failed request may still arrive, so it counts
// for a further second). ceiling <= 0 returns base unchanged.
func WindowTransport(base http.RoundTripper, ceiling float64) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if ceiling <= 0 {
		return base
	}
	return &windowTransport{base: base, max: max(1, int(ceiling)), window: time.Second, now: time.Now, changed: make(chan struct{})}
}

type windowTransport struct {
	base   http.RoundTripper
	max    int
	window time.Duration
	now    func() time.Time

	mu       sync.Mutex
	inflight int
	answered []time.Time   // answers of the last window (unordered)
	changed  chan struct{} // closed and replaced when a request finishes
}

func (t *windowTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.admit(req); err != nil {
		return nil, err
	}
	resp, err := t.base.RoundTrip(req)
	done := t.now()
	if err != nil {
		done = done.Add(t.window)
	}
	t.mu.Lock()
	t.inflight--
	t.answered = append(t.answered, done)
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
	return resp, err
}

// admit waits until fewer than max requests are in flight or were
// answered within the last window, then counts req as in flight.
func (t *windowTransport) admit(req *http.Request) error {
	for {
		t.mu.Lock()
		now := t.now()
		cut := now.Add(-t.window)
		t.answered = slices.DeleteFunc(t.answered, func(at time.Time) bool { return !at.After(cut) })
		if t.inflight+len(t.answered) < t.max {
			t.inflight++
			t.mu.Unlock()
			return nil
		}
		var timer *time.Timer
		var expired <-chan time.Time
		if len(t.answered) > 0 {
			timer = time.NewTimer(slices.MinFunc(t.answered, time.Time.Compare).Sub(cut))
			expired = timer.C
		}
		changed := t.changed
		t.mu.Unlock()
		var err error
		select {
		case <-req.Context().Done():
			err = req.Context().Err()
		case <-expired:
		case <-changed:
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return err
		}
	}
}

// httpClient is the Absorb connector's client with its default timeouts,
// sending through a WindowTransport.
func httpClient(ceiling float64) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = 30 * time.Second
	tr.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: WindowTransport(tr, ceiling), Timeout: 45 * time.Second}
}
