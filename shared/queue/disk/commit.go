package disk

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/learnerlink/learnerlink/shared/queue"
)

// File layout: three buckets. pending and dead map a big-endian sequence
// number (so cursor order is enqueue order) to a JSON stored record; dedup
// maps a dedup key to its big-endian expiry in Unix nanoseconds. pending's
// bucket sequence keeps the last sequence number, so handles are never
// reused across restarts.
var (
	bucketPending = []byte("pending")
	bucketDead    = []byte("dead")
	bucketDedup   = []byte("dedup")
)

// stored is a record as written to the file.
type stored struct {
	Intent     queue.Intent `json:"intent"`
	Sent       int64        `json:"sent"` // Unix nanoseconds
	Receives   int          `json:"receives"`
	VisibleAt  int64        `json:"visibleAt"` // Unix nanoseconds
	ParkReason string       `json:"parkReason,omitempty"`
	// InFlight: received and not yet settled (see Open).
	InFlight bool `json:"inFlight,omitempty"`
}

// op is one change to the file; message values are snapshots taken when the
// change was made, encoded by the committer.
type op struct {
	bucket []byte
	key    []byte
	msg    *stored // put this message, or
	raw    []byte  // put these bytes, or (both nil) delete
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func snapshot(r *record) *stored {
	return &stored{
		Intent:     r.intent,
		Sent:       r.sent.UnixNano(),
		Receives:   r.receives,
		VisibleAt:  r.visibleAt.UnixNano(),
		ParkReason: r.parkReason,
		InFlight:   r.inFlight,
	}
}

func putPending(r *record) op  { return op{bucket: bucketPending, key: seqKey(r.seq), msg: snapshot(r)} }
func putDead(r *record) op     { return op{bucket: bucketDead, key: seqKey(r.seq), msg: snapshot(r)} }
func delPending(seq uint64) op { return op{bucket: bucketPending, key: seqKey(seq)} }
func delDedup(key string) op   { return op{bucket: bucketDedup, key: []byte(key)} }

func putDedup(key string, expires time.Time) op {
	return op{bucket: bucketDedup, key: []byte(key), raw: binary.BigEndian.AppendUint64(nil, uint64(expires.UnixNano()))}
}

func decode(k, v []byte) (*record, error) {
	if len(k) != 8 {
		return nil, fmt.Errorf("bad key %x", k)
	}
	var s stored
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, fmt.Errorf("record %x: %w", k, err)
	}
	return &record{
		seq:        binary.BigEndian.Uint64(k),
		intent:     s.Intent,
		sent:       time.Unix(0, s.Sent),
		receives:   s.Receives,
		visibleAt:  time.Unix(0, s.VisibleAt),
		parkReason: s.ParkReason,
		inFlight:   s.InFlight,
	}, nil
}

// load reads the file into memory (before the committer starts).
func (q *Queue) load() error {
	now := q.opts.Now()
	return q.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketPending, bucketDead, bucketDedup} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		pb := tx.Bucket(bucketPending)
		q.seq = pb.Sequence()
		err := pb.ForEach(func(k, v []byte) error {
			r, err := decode(k, v)
			if err != nil {
				return err
			}
			if r.inFlight {
				// Received by an earlier Queue on this file, which is gone
				// (bbolt lets one process open it): deliver it again now
				// rather than after its visibility timeout.
				r.inFlight = false
				r.visibleAt = minTime(r.visibleAt, now)
			}
			q.msgs[r.seq] = r
			q.groups[groupKey(r.intent)] = append(q.groups[groupKey(r.intent)], r.seq)
			q.seq = max(q.seq, r.seq)
			return nil
		})
		if err != nil {
			return err
		}
		if k, _ := tx.Bucket(bucketDead).Cursor().Last(); len(k) == 8 {
			q.seq = max(q.seq, binary.BigEndian.Uint64(k))
		}

		db := tx.Bucket(bucketDedup)
		var expired [][]byte
		err = db.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("dedup entry %q: bad value", k)
			}
			exp := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			if !now.Before(exp) {
				expired = append(expired, append([]byte(nil), k...))
				return nil
			}
			q.dedup[string(k)] = exp
			q.dedupOrder = append(q.dedupOrder, dedupEntry{string(k), exp})
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := db.Delete(k); err != nil {
				return err
			}
		}
		slices.SortFunc(q.dedupOrder, func(a, b dedupEntry) int { return a.expires.Compare(b.expires) })
		return nil
	})
}

// appendLocked queues changes for the committer and returns the generation
// to wait for. With no changes it returns the latest generation, so the
// caller still waits for earlier changes it may depend on (a duplicate is
// only "enqueued" once its original is on disk).
func (q *Queue) appendLocked(ops []op) uint64 {
	if len(ops) == 0 {
		return q.logGen
	}
	q.log = append(q.log, ops...)
	q.logGen++
	select {
	case q.kick <- struct{}{}:
	default: // a kick is already pending; the committer takes the whole log
	}
	return q.logGen
}

// durable waits until every change up to gen is on disk. It does not take a
// context: the change is already made in memory and will be written, and
// the wait is one transaction long.
func (q *Queue) durable(gen uint64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.doneGen < gen {
		if q.failed != nil {
			return q.failed
		}
		ch := q.flushed
		q.mu.Unlock()
		<-ch
		q.mu.Lock()
	}
	return nil
}

// commitLoop writes the log, everything pending in one transaction, until
// Close; changes made while a transaction runs go into the next one.
func (q *Queue) commitLoop() {
	defer close(q.stopped)
	for {
		stopping := false
		select {
		case <-q.kick:
		case <-q.stop:
			stopping = true // Close rejects new changes before stopping us
		}
		q.mu.Lock()
		ops, gen, seq := q.log, q.logGen, q.seq
		q.log = nil
		failed := q.failed != nil
		q.mu.Unlock()

		if len(ops) > 0 && !failed {
			err := q.db.Update(func(tx *bolt.Tx) error { return apply(tx, ops, seq) })
			q.mu.Lock()
			if err != nil {
				q.failed = fmt.Errorf("disk queue: commit: %w", err)
			} else {
				q.doneGen = gen
			}
			close(q.flushed)
			q.flushed = make(chan struct{})
			q.mu.Unlock()
		}
		if stopping {
			return
		}
	}
}

func apply(tx *bolt.Tx, ops []op, seq uint64) error {
	for _, o := range ops {
		b := tx.Bucket(o.bucket)
		var err error
		switch {
		case o.msg != nil:
			var v []byte
			if v, err = json.Marshal(o.msg); err == nil {
				err = b.Put(o.key, v)
			}
		case o.raw != nil:
			err = b.Put(o.key, o.raw)
		default:
			err = b.Delete(o.key)
		}
		if err != nil {
			return fmt.Errorf("%s %x: %w", o.bucket, o.key, err)
		}
	}
	return tx.Bucket(bucketPending).SetSequence(seq)
}

// readDead reads up to limit dead letters, oldest first.
func (q *Queue) readDead(limit int) ([]*record, error) {
	var out []*record
	err := q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDead).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			r, err := decode(k, v)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
