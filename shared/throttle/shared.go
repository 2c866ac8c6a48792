package throttle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DynamoAPI is the part of *dynamodb.Client that Shared uses.
type DynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Key and attribute names of the bucket item (see the package doc). PK and
// SK are the store's single-table key attributes.
const (
	AttrPK      = "PK"
	AttrSK      = "SK"
	attrTAT     = "tat"         // Unix µs
	attrFactor  = "factor"      // rate factor at pausedUntil
	attrPaused  = "pausedUntil" // Unix ms, 0: never
	attrStreak  = "streak"
	attrUpdated = "updatedAt" // Unix ms of the last write (writer's clock), for operators
)

// ItemKey returns the PK and SK values of target's bucket item.
func ItemKey(target string) (pk, sk string) { return "THROTTLE#" + target, "A" }

// Shared is a Limiter whose budget is shared by every worker (every
// process) using the same table and target, through one DynamoDB item.
// See the package doc for the guarantee and the cost. Use one Shared per
// target per process; it is safe for concurrent use.
type Shared struct {
	cfg    config
	client DynamoAPI
	table  string
	key    map[string]types.AttributeValue
	rate   float64
	burst  int

	// sem lets one Wait at a time take tokens, so a process sends one
	// DynamoDB write per lease, not one per waiting goroutine; unlike a
	// mutex, waiting on it honours ctx.
	sem chan struct{}

	mu     sync.Mutex // guards the fields below and cfg.rnd
	seen   *bucket    // the item as last read or written; nil: unknown
	lease  lease
	want   int // lease size to ask for next
	misses int // consecutive times the bucket was booked when we came
}

// bucket is the decoded item; it is never modified once shared.
type bucket struct {
	adapt
	tat    time.Time // GCRA theoretical arrival time
	exists bool
}

// lease is the tokens this process took and has not spent. Token k
// (0-based) is ready at max(taken, first+k*step) and expires Lease later.
type lease struct {
	taken, first time.Time
	step         time.Duration
	left, size   int
	dropped      int       // expired unused
	checked      time.Time // when the item last confirmed no pause began
	paused       time.Time // the item's pausedUntil when the lease was taken
}

func (l *lease) readyAt() time.Time { return laterOf(l.taken, l.first) }

// params are the bucket's numbers at one instant.
type params struct {
	step     time.Duration // emission interval 1/(rate*factor), rounded up to 1µs
	capacity int           // burst at this factor
	tau      time.Duration // capacity*step: how far tat may run ahead of now
	maxLease int
}

func (s *Shared) params(b *bucket, now time.Time) params {
	f := s.cfg.factorAt(b.adapt, now)
	r := s.rate * f
	p := params{
		step:     time.Duration(math.Ceil(1e6/r)) * time.Microsecond,
		capacity: burstAt(s.burst, f),
	}
	p.tau = time.Duration(p.capacity) * p.step
	p.maxLease = max(1, int(r*s.cfg.horizon.Seconds()/2))
	return p
}

// NewShared returns the limiter for target, allowing rate requests per
// second in aggregate with bursts of burst (at least 1), through the item
// ItemKey(target) in table. client is usually a *dynamodb.Client. A rate
// <= 0 disables limiting: Wait never blocks nor calls DynamoDB.
func NewShared(client DynamoAPI, table, target string, rate float64, burst int, opts ...Option) *Shared {
	cfg := newConfig(opts)
	cfg.target = target
	pk, sk := ItemKey(target)
	return &Shared{
		cfg:    cfg,
		client: client,
		table:  table,
		key: map[string]types.AttributeValue{
			AttrPK: &types.AttributeValueMemberS{Value: pk},
			AttrSK: &types.AttributeValueMemberS{Value: sk},
		},
		rate:  rate,
		burst: max(burst, 1),
		sem:   make(chan struct{}, 1),
		want:  1,
	}
}

// Wait blocks until one request may be sent, or ctx is done. It returns
// an error if DynamoDB fails (after the SDK's own retries).
func (s *Shared) Wait(ctx context.Context) error {
	if s.rate <= 0 {
		return ctx.Err()
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()

	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := s.cfg.clock.Now()
		s.mu.Lock()
		act, wait := s.spendLease(now)
		b, jitter := s.seen, s.cfg.rnd()
		s.mu.Unlock()
		switch act {
		case spent:
			return nil
		case sleep: // the next leased token is not ready yet
			if err := s.cfg.clock.Sleep(ctx, wait); err != nil {
				return err
			}
			continue
		case check:
			if err := s.checkLease(ctx, now); err != nil {
				return err
			}
			continue
		}
		if b == nil {
			var err error
			if b, err = s.read(ctx); err != nil {
				return err
			}
			s.replaceSeen(nil, b)
			continue // the read took time
		}
		if now.Before(b.pausedUntil) {
			// Jittered, so the workers do not all come back at once.
			d := b.pausedUntil.Sub(now) + time.Duration(jitter*float64(s.cfg.lease))
			if err := s.cfg.clock.Sleep(ctx, d); err != nil {
				return err
			}
			continue
		}

		p := s.params(b, now)
		horizon := s.cfg.horizon
		s.mu.Lock()
		want := min(max(s.want, 1), p.maxLease)
		s.mu.Unlock()
		// How many tokens fit: tat may run up to tau + horizon ahead of now.
		fit := int((now.Add(p.tau + horizon).Sub(laterOf(b.tat, now))) / p.step)
		if fit < 1 {
			// Booked beyond the horizon: sleep until our lease would fit,
			// plus a jitter that doubles with every consecutive miss so
			// that workers which saw the same item spread out instead of
			// colliding again at the next opening (as in Ethernet).
			s.mu.Lock()
			s.misses = min(s.misses+1, 6)
			spread := min(horizon, time.Duration(want)*p.step<<(s.misses-1))
			s.mu.Unlock()
			d := b.tat.Add(time.Duration(want)*p.step - p.tau - horizon).Sub(now)
			d += time.Duration(jitter * float64(spread))
			if err := s.cfg.clock.Sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		n := min(want, fit)
		tat, cur, err := s.take(ctx, b, now, n, p, horizon)
		if err != nil {
			return err
		}
		if cur != nil { // lost: retry with the item DynamoDB returned
			s.replaceSeen(b, cur)
			continue
		}
		next := *b
		next.tat, next.exists = tat, true
		s.mu.Lock()
		s.misses = 0
		if s.seen == b { // else a local Pause ran meanwhile: its state wins
			s.seen = &next
			// The tokens hold the n emission slots ending at tat; each is
			// ready at its slot minus tau (the token-bucket equivalence).
			first := tat.Add(-time.Duration(n-1)*p.step - p.tau)
			s.lease = lease{taken: now, first: first, step: p.step, left: n, size: n, checked: now, paused: b.pausedUntil}
		}
		s.mu.Unlock()
	}
}

type leaseAction int

const (
	empty leaseAction = iota // take more tokens
	spent                    // one token spent: go
	sleep                    // the next token is not ready yet
	check                    // confirm no pause began before spending more
)

// spendLease spends the next leased token if it is ready and recently
// confirmed; expired tokens are dropped. With nothing left it adapts the
// next lease size to the demand. Called with mu held.
func (s *Shared) spendLease(now time.Time) (leaseAction, time.Duration) {
	l := &s.lease
	for l.left > 0 && now.After(l.readyAt().Add(s.cfg.lease)) {
		l.first = l.first.Add(l.step)
		l.left--
		l.dropped++
	}
	if l.left > 0 {
		if r := l.readyAt(); r.After(now) {
			return sleep, r.Sub(now)
		}
		if now.After(l.checked.Add(s.cfg.lease)) {
			return check, 0
		}
		l.first = l.first.Add(l.step)
		l.left--
		return spent, 0
	}
	if l.size > 0 {
		if l.dropped == 0 {
			s.want = 2 * l.size // all used: ask for more (capped by maxLease)
		} else {
			s.want = max(1, l.size-l.dropped) // ask for what was used
		}
		*l = lease{}
	}
	return empty, 0
}

// checkLease reads the item before spending tokens booked a while ago: if
// a worker elsewhere paused the target meanwhile, the lease is void. This
// read is what makes a Pause reach every worker within Lease.
func (s *Shared) checkLease(ctx context.Context, now time.Time) error {
	cur, err := s.read(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = cur
	if !cur.pausedUntil.Equal(s.lease.paused) {
		s.lease = lease{}
		return nil
	}
	s.lease.checked = now
	return nil
}

// take books n tokens with one conditional UpdateItem. It returns the new
// tat, or the item's current state when the condition failed.
func (s *Shared) take(ctx context.Context, b *bucket, now time.Time, n int, p params, horizon time.Duration) (time.Time, *bucket, error) {
	cost := time.Duration(n) * p.step
	names := map[string]string{"#t": attrTAT, "#u": attrUpdated}
	values := map[string]types.AttributeValue{":u": numI(ms(now))}
	in := &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.key,
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueUpdatedNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	switch {
	case !b.exists: // first use of the target: create the item
		in.ConditionExpression = aws.String("attribute_not_exists(#pk)")
		in.UpdateExpression = aws.String("SET #t = :t, #u = :u, #f = :f, #p = :p, #s = :s")
		names["#pk"], names["#f"], names["#p"], names["#s"] = AttrPK, attrFactor, attrPaused, attrStreak
		values[":t"] = numI(us(now.Add(cost)))
		values[":f"], values[":p"], values[":s"] = numF(b.factor), numI(ms(b.pausedUntil)), numI(int64(b.streak))
	case !b.tat.After(now): // idle bucket: full, tat restarts from now
		in.ConditionExpression = aws.String("#t <= :now AND #p = :p")
		in.UpdateExpression = aws.String("SET #t = :t, #u = :u")
		names["#p"] = attrPaused
		values[":t"], values[":now"], values[":p"] = numI(us(now.Add(cost))), numI(us(now)), numI(ms(b.pausedUntil))
	default: // busy bucket: append to tat, whatever others appended since we looked
		in.ConditionExpression = aws.String("#t > :now AND #t <= :hi AND #p = :p")
		in.UpdateExpression = aws.String("SET #t = #t + :cost, #u = :u")
		names["#p"] = attrPaused
		values[":cost"], values[":now"], values[":p"] = numI(cost.Microseconds()), numI(us(now)), numI(ms(b.pausedUntil))
		values[":hi"] = numI(us(now.Add(p.tau + horizon - cost)))
	}
	out, err := s.client.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		v, ok := out.Attributes[attrTAT].(*types.AttributeValueMemberN)
		if !ok {
			return time.Time{}, nil, fmt.Errorf("throttle %s: take: no %q in the answer", s.cfg.target, attrTAT)
		}
		t, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			return time.Time{}, nil, fmt.Errorf("throttle %s: take: %w", s.cfg.target, err)
		}
		return time.UnixMicro(t), nil, nil
	case errors.As(err, &ccf):
		cur, err := s.decode(ccf.Item)
		return time.Time{}, cur, err
	default:
		return time.Time{}, nil, fmt.Errorf("throttle %s: take tokens: %w", s.cfg.target, err)
	}
}

// Pause stops every worker's Wait for d (0: backoff) and lowers the
// shared rate, with a conditional write of the bucket item.
func (s *Shared) Pause(ctx context.Context, d time.Duration) error {
	if s.rate <= 0 {
		return nil
	}
	setTAT := true
	for {
		s.mu.Lock()
		b := s.seen
		s.mu.Unlock()
		if b == nil {
			var err error
			if b, err = s.read(ctx); err != nil {
				return err
			}
		}
		now := s.cfg.clock.Now()
		next := *b
		s.mu.Lock()
		next.adapt = s.cfg.pause(b.adapt, now, d)
		s.mu.Unlock()
		next.pausedUntil = ceilMs(next.pausedUntil)
		if next.adapt.equal(b.adapt) {
			s.dropLease()
			return nil // an equal or longer pause is already in force
		}
		// One token at the end of the pause, none saved up before it:
		// tat = pausedUntil + tau - step.
		p := s.params(&next, next.pausedUntil)
		next.tat = next.pausedUntil.Add(p.tau - p.step)
		cur, err := s.writePause(ctx, b, &next, now, setTAT)
		if err != nil {
			return err
		}
		if cur != nil {
			if cur.adapt.equal(b.adapt) && setTAT {
				// Only "tat < new tat" failed: tokens are booked beyond
				// the pause already; keep them, write the rest.
				setTAT = false
			}
			s.replaceSeen(b, cur)
			continue
		}
		if !setTAT {
			next.tat = laterOf(next.tat, b.tat)
		}
		s.mu.Lock()
		s.seen = &next
		s.lease = lease{}
		s.mu.Unlock()
		s.cfg.logger.LogAttrs(ctx, slog.LevelWarn, "throttle: target asked to slow down",
			slog.String("target", s.cfg.target),
			slog.Duration("pause", next.pausedUntil.Sub(now)),
			slog.Float64("rateFactor", next.factor),
			slog.Int("streak", next.streak))
		return nil
	}
}

// writePause stores next's adaptive state (and tat if setTAT and it moves
// forward) if the item's adaptive state is still prev's. It returns the
// current item when the condition failed.
func (s *Shared) writePause(ctx context.Context, prev, next *bucket, now time.Time, setTAT bool) (*bucket, error) {
	names := map[string]string{"#f": attrFactor, "#p": attrPaused, "#s": attrStreak, "#u": attrUpdated}
	values := map[string]types.AttributeValue{
		":f": numF(next.factor), ":p": numI(ms(next.pausedUntil)), ":s": numI(int64(next.streak)), ":u": numI(ms(now)),
	}
	update := "SET #f = :f, #p = :p, #s = :s, #u = :u"
	var cond string
	if !prev.exists {
		cond = "attribute_not_exists(#pk)"
		names["#pk"] = AttrPK
	} else {
		cond = "#f = :of AND #p = :op AND #s = :os"
		values[":of"], values[":op"], values[":os"] = numF(prev.factor), numI(ms(prev.pausedUntil)), numI(int64(prev.streak))
	}
	if setTAT || !prev.exists {
		names["#t"], values[":t"] = attrTAT, numI(us(next.tat))
		update += ", #t = :t"
		if prev.exists {
			cond += " AND #t < :t"
		}
	}
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.key,
		UpdateExpression:                    aws.String(update),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return nil, nil
	case errors.As(err, &ccf):
		return s.decode(ccf.Item)
	default:
		return nil, fmt.Errorf("throttle %s: pause: %w", s.cfg.target, err)
	}
}

func (s *Shared) dropLease() {
	s.mu.Lock()
	s.lease = lease{}
	s.mu.Unlock()
}

// replaceSeen installs cur unless someone already replaced old.
func (s *Shared) replaceSeen(old, cur *bucket) {
	s.mu.Lock()
	if s.seen == old {
		s.seen = cur
	}
	s.mu.Unlock()
}

// read fetches the item; a missing item is a full, never-paused bucket.
func (s *Shared) read(ctx context.Context) (*bucket, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            s.key,
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("throttle %s: read bucket: %w", s.cfg.target, err)
	}
	return s.decode(out.Item)
}

func (s *Shared) decode(item map[string]types.AttributeValue) (*bucket, error) {
	if len(item) == 0 {
		return &bucket{adapt: adapt{factor: 1}}, nil
	}
	var err error
	get := func(name string) float64 {
		n, ok := item[name].(*types.AttributeValueMemberN)
		if !ok {
			err = errors.Join(err, fmt.Errorf("throttle %s: bucket item has no number %q", s.cfg.target, name))
			return 0
		}
		v, perr := strconv.ParseFloat(n.Value, 64)
		err = errors.Join(err, perr)
		return v
	}
	b := bucket{exists: true}
	b.tat = time.UnixMicro(int64(get(attrTAT)))
	b.factor = get(attrFactor)
	b.pausedUntil = fromMs(int64(get(attrPaused)))
	b.streak = int(get(attrStreak))
	if err != nil {
		return nil, err
	}
	return &b, nil
}

func numI(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func numF(f float64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(f, 'f', -1, 64)}
}

// us encodes t as Unix microseconds, rounded up so that storing a time
// never hands out a sliver of it twice.
func us(t time.Time) int64 {
	v := t.UnixMicro()
	if time.UnixMicro(v).Before(t) {
		v++
	}
	return v
}

// ms encodes t as Unix milliseconds; the zero time is 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMs(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// ceilMs rounds t up to a whole millisecond.
func ceilMs(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	tr := t.Truncate(time.Millisecond)
	if tr.Equal(t) {
		return tr
	}
	return tr.Add(time.Millisecond)
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
