// Package sqs implements queue.Queue on an Amazon SQS FIFO queue and its
// FIFO dead-letter queue.
//
// Mapping:
//   - MessageGroupId = IdentityID+"#"+Target for a targeted intent, and
//     IdentityID for an untargeted one (hashed when SQS would reject it;
//     see GroupOf). Producers enqueue through queue.FanOut, so every
//     intent is targeted and a retrying target delays only its own
//     (identity, target) stream. Untargeted intents (a deployment without
//     FanOut) may run beside a targeted one of the same identity; the
//     worker's adopt-by-external-id after a create conflict is what keeps
//     that from duplicating a learner.
//   - MessageDeduplicationId = SHA-256 of Intent.DedupKey (IdentityID,
//     Version, Target, Force and the copy number Retries), so the same
//     intent sent twice within SQS's 5-minute window is delivered once,
//     whatever its Reason, while a worker's re-enqueued copy is not.
//   - Body = the JSON intent plus "sent", the time of the first Enqueue.
//   - Handle = the receipt handle, "|", and the base64url body: Park must
//     copy the message to the dead-letter queue and SQS cannot fetch a
//     message by receipt handle, and this keeps Park working for Lambda
//     workers that never called Receive (see ParseSQSEventMessage).
//
// Semantics that differ from queue/disk, inherent to SQS:
//   - A Receive may return several messages of one identity, in order (a
//     FIFO batch takes as many of a group as it can); no other Receive gets
//     that identity until they are all settled.
//   - Ack of a stale or malformed handle may succeed without deleting
//     anything (DeleteMessage does so); Retry and Park report
//     queue.ErrUnknownHandle.
//   - Delays and visibility are whole seconds (rounded up), at most 12 h.
//   - A message moves to the dead-letter queue on the first receive after
//     its maxReceiveCount-th delivery, not when it is retried.
package sqs

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/learnerlink/learnerlink/shared/queue"
)

const (
	batchSize     = 10 // SendMessageBatch and ReceiveMessage limit
	maxWait       = 20 * time.Second
	maxVisibility = 12 * time.Hour
	// sendAttempts bounds tries of a batch entry SQS failed on its side.
	sendAttempts = 3
	sendBackoff  = 100 * time.Millisecond
	// peekVisibility hides dead letters while DeadLetters pages through
	// them; they are made visible again when it returns.
	peekVisibility = 30 * time.Second
	// parkHold keeps a message in flight while Park copies and deletes it.
	parkHold = 60 * time.Second
	// reasonAttribute carries Park's reason on the dead-letter copy.
	reasonAttribute = "reason"
)

// api is the part of *sqs.Client the queue uses.
type api interface {
	SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	ChangeMessageVisibility(context.Context, *sqs.ChangeMessageVisibilityInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	ChangeMessageVisibilityBatch(context.Context, *sqs.ChangeMessageVisibilityBatchInput, ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
}

// Queue is a queue.Queue on an SQS FIFO queue. It is safe for concurrent
// use.
type Queue struct {
	api      api
	queueURL string
	dlqURL   string
	log      *slog.Logger
	now      func() time.Time
}

var _ queue.Queue = (*Queue)(nil)

// New returns a Queue on existing queues (see CreateQueues). The client is
// the caller's: Close does not touch it.
func New(client *sqs.Client, queueURL, dlqURL string) *Queue {
	return newQueue(client, queueURL, dlqURL)
}

func newQueue(c api, queueURL, dlqURL string) *Queue {
	return &Queue{api: c, queueURL: queueURL, dlqURL: dlqURL, log: slog.Default(), now: time.Now}
}

// envelope is the message body.
type envelope struct {
	queue.Intent
	Sent time.Time `json:"sent"`
}

// GroupID is the MessageGroupId of an identity: the id itself when SQS
// accepts it (1–128 ASCII letters, digits, punctuation), else "sha256:" and
// its hash. A raw id that looks like a hash can only share a group with the
// hashed one, which costs ordering between two identities, nothing more.
func GroupID(identityID string) string {
	if validID(identityID) {
		return identityID
	}
	sum := sha256.Sum256([]byte(identityID))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// GroupOf is the MessageGroupId of an intent: GroupID of IdentityID+"#"+
// Target when it is targeted, else of IdentityID.
func GroupOf(in queue.Intent) string {
	if in.Target != "" {
		return GroupID(in.IdentityID + "#" + in.Target)
	}
	return GroupID(in.IdentityID)
}

// DedupID is the MessageDeduplicationId of an intent: a hash of its
// queue.Intent.DedupKey (identity, version, target, force, copy number).
func DedupID(in queue.Intent) string {
	sum := sha256.Sum256([]byte(in.DedupKey()))
	return hex.EncodeToString(sum[:])
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' { // printable ASCII without space
			return false
		}
	}
	return true
}

// Enqueue sends the intents in batches of 10. Entries SQS failed on its side
// are retried; if some still fail the error says how many were not
// enqueued. Re-sending the whole call is safe within the 5-minute
// deduplication window.
func (q *Queue) Enqueue(ctx context.Context, intents ...queue.Intent) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqs queue: enqueue: %w", err)
	}
	entries := make([]types.SendMessageBatchRequestEntry, len(intents))
	sent := q.now()
	for i, in := range intents {
		if in.IdentityID == "" {
			return fmt.Errorf("sqs queue: enqueue: intent %d has no IdentityID", i)
		}
		body, err := json.Marshal(envelope{Intent: in, Sent: sent})
		if err != nil {
			return fmt.Errorf("sqs queue: enqueue: intent %d: %w", i, err)
		}
		entries[i] = types.SendMessageBatchRequestEntry{
			Id:                     aws.String(strconv.Itoa(i)),
			MessageBody:            aws.String(string(body)),
			MessageGroupId:         aws.String(GroupOf(in)),
			MessageDeduplicationId: aws.String(DedupID(in)),
		}
	}
	var failed int
	var firstErr error
	for start := 0; start < len(entries); start += batchSize {
		chunk := entries[start:min(start+batchSize, len(entries))]
		notSent, callFailed, err := q.sendBatch(ctx, chunk)
		failed += notSent
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if callFailed {
			// The call itself failed (after the SDK's own retries): the
			// next chunks would fail alike.
			failed += len(entries) - start - len(chunk)
			break
		}
	}
	if failed > 0 {
		return fmt.Errorf("sqs queue: enqueue: %d of %d intents not enqueued: %w", failed, len(entries), firstErr)
	}
	return nil
}

// sendBatch sends up to 10 entries, retrying the ones SQS failed on its
// side, and returns how many were not sent and whether the call itself
// failed.
func (q *Queue) sendBatch(ctx context.Context, entries []types.SendMessageBatchRequestEntry) (notSent int, callFailed bool, err error) {
	var permanent int
	var lastErr error
	for attempt := 1; attempt <= sendAttempts && len(entries) > 0; attempt++ {
		if attempt > 1 {
			if err := sleep(ctx, time.Duration(attempt-1)*sendBackoff); err != nil {
				return permanent + len(entries), true, err
			}
		}
		out, err := q.api.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &q.queueURL, Entries: entries})
		if err != nil {
			return permanent + len(entries), true, err
		}
		byID := make(map[string]types.SendMessageBatchRequestEntry, len(entries))
		for _, e := range entries {
			byID[*e.Id] = e
		}
		var retry []types.SendMessageBatchRequestEntry
		for _, f := range out.Failed {
			lastErr = fmt.Errorf("entry %s: %s: %s", aws.ToString(f.Id), aws.ToString(f.Code), aws.ToString(f.Message))
			e, known := byID[aws.ToString(f.Id)]
			if f.SenderFault || !known {
				permanent++ // our request is wrong: sending it again cannot help
				continue
			}
			retry = append(retry, e)
		}
		entries = retry
	}
	if n := permanent + len(entries); n > 0 {
		return n, false, lastErr
	}
	return 0, false, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// seconds rounds d up to whole seconds within [0, limit].
func seconds(d, limit time.Duration) int32 {
	d = min(max(d, 0), limit)
	return int32((d + time.Second - 1) / time.Second)
}

var receiveAttributes = []types.MessageSystemAttributeName{
	types.MessageSystemAttributeNameApproximateReceiveCount,
	types.MessageSystemAttributeNameSentTimestamp,
}

// Receive long-polls for up to limit messages (at most 10 per call). The wait
// is rounded up to whole seconds; waits over 20 s take several calls.
// Messages whose body cannot be decoded are logged and left in flight, so
// they reach the dead-letter queue after maxReceiveCount deliveries.
func (q *Queue) Receive(ctx context.Context, limit int, wait time.Duration) ([]queue.Message, error) {
	n := int32(min(max(limit, 1), batchSize))
	deadline := time.Now().Add(wait)
	for {
		out, err := q.api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    &q.queueURL,
			MaxNumberOfMessages:         n,
			WaitTimeSeconds:             seconds(time.Until(deadline), maxWait),
			MessageSystemAttributeNames: receiveAttributes,
		})
		if err != nil {
			return nil, fmt.Errorf("sqs queue: receive: %w", err)
		}
		msgs := make([]queue.Message, 0, len(out.Messages))
		for _, m := range out.Messages {
			msg, err := parse(aws.ToString(m.Body), aws.ToString(m.ReceiptHandle), m.Attributes)
			if err != nil {
				q.log.WarnContext(ctx, "sqs queue: undecodable message left for the dead-letter queue",
					"messageId", aws.ToString(m.MessageId), "error", err)
				continue
			}
			msgs = append(msgs, msg)
		}
		if len(msgs) > 0 || time.Until(deadline) <= 0 {
			return msgs, nil
		}
	}
}

// ParseSQSEventMessage turns a record of a Lambda SQS event into a
// queue.Message. Its Handle works with Queue's Ack, Retry and Park.
func ParseSQSEventMessage(m events.SQSMessage) (queue.Message, error) {
	msg, err := parse(m.Body, m.ReceiptHandle, m.Attributes)
	if err != nil {
		return queue.Message{}, fmt.Errorf("sqs queue: message %s: %w", m.MessageId, err)
	}
	return msg, nil
}

// parse decodes a body and its system attributes. Sent comes from the body
// (it survives the copy Park makes); SentTimestamp is the fallback for
// bodies without it. A missing ApproximateReceiveCount counts as 1.
func parse(body, receipt string, attrs map[string]string) (queue.Message, error) {
	if receipt == "" {
		return queue.Message{}, errors.New("no receipt handle")
	}
	var env envelope
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		return queue.Message{}, fmt.Errorf("body: %w", err)
	}
	if env.IdentityID == "" {
		return queue.Message{}, errors.New("body: no identityId")
	}
	m := queue.Message{Intent: env.Intent, Handle: makeHandle(receipt, body), Receives: 1, Sent: env.Sent}
	if v, ok := attrs[string(types.MessageSystemAttributeNameApproximateReceiveCount)]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return queue.Message{}, fmt.Errorf("ApproximateReceiveCount %q: %w", v, err)
		}
		m.Receives = n
	}
	if v, ok := attrs[string(types.MessageSystemAttributeNameSentTimestamp)]; ok && m.Sent.IsZero() {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return queue.Message{}, fmt.Errorf("SentTimestamp %q: %w", v, err)
		}
		m.Sent = time.UnixMilli(ms)
	}
	return m, nil
}

// handleSep never occurs in base64url, so the last one splits a handle.
const handleSep = "|"

func makeHandle(receipt, body string) string {
	return receipt + handleSep + base64.RawURLEncoding.EncodeToString([]byte(body))
}

// splitHandle returns the receipt handle and, if the handle carries it, the
// body. A bare receipt handle is accepted for Ack and Retry.
func splitHandle(handle string) (receipt, body string, ok bool) {
	i := strings.LastIndex(handle, handleSep)
	if i < 0 {
		return handle, "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(handle[i+len(handleSep):])
	if err != nil {
		return handle, "", false
	}
	return handle[:i], string(b), true
}

// unknownHandle maps SQS's answers for a stale or malformed receipt handle
// to queue.ErrUnknownHandle.
func unknownHandle(err error) bool {
	var invalid *types.ReceiptHandleIsInvalid
	var notInflight *types.MessageNotInflight
	if errors.As(err, &invalid) || errors.As(err, &notInflight) {
		return true
	}
	// An expired FIFO receipt handle: InvalidParameterValue, "Value ... for
	// parameter ReceiptHandle is invalid. Reason: The receipt handle has
	// expired."
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	msg := strings.ToLower(ae.ErrorMessage())
	return strings.Contains(msg, "receipthandle") || strings.Contains(msg, "receipt handle")
}

func wrapSettle(what string, err error) error {
	if unknownHandle(err) {
		return fmt.Errorf("sqs queue: %s: %w (%w)", what, queue.ErrUnknownHandle, err)
	}
	return fmt.Errorf("sqs queue: %s: %w", what, err)
}

// Ack deletes the message. SQS accepts stale and malformed receipt handles
// without an error (real SQS rejects malformed ones and expired FIFO ones),
// so nil does not prove this delivery was current.
func (q *Queue) Ack(ctx context.Context, handle string) error {
	receipt, _, _ := splitHandle(handle)
	if receipt == "" {
		return fmt.Errorf("sqs queue: ack: %w", queue.ErrUnknownHandle)
	}
	if _, err := q.api.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &q.queueURL, ReceiptHandle: &receipt}); err != nil {
		return wrapSettle("ack", err)
	}
	return nil
}

// Retry makes the message visible again after delay, rounded up to whole
// seconds (at most 12 h). The dead-letter move after maxReceiveCount
// deliveries happens on the next receive.
func (q *Queue) Retry(ctx context.Context, handle string, delay time.Duration) error {
	receipt, _, _ := splitHandle(handle)
	if receipt == "" {
		return fmt.Errorf("sqs queue: retry: %w", queue.ErrUnknownHandle)
	}
	_, err := q.api.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: &q.queueURL, ReceiptHandle: &receipt, VisibilityTimeout: seconds(delay, maxVisibility),
	})
	if err != nil {
		return wrapSettle("retry", err)
	}
	return nil
}

// Park copies the message to the dead-letter queue with reason as the
// "reason" message attribute, then deletes it. SQS has no "move" call: the
// message is first held in flight (which also rejects a stale handle), and
// the copy keeps the deduplication id, so a Park repeated after a failed
// delete leaves one copy.
func (q *Queue) Park(ctx context.Context, handle, reason string) error {
	receipt, body, ok := splitHandle(handle)
	if !ok || receipt == "" {
		return fmt.Errorf("sqs queue: park: %w: handle carries no message", queue.ErrUnknownHandle)
	}
	var env envelope
	if err := json.Unmarshal([]byte(body), &env); err != nil || env.IdentityID == "" {
		return fmt.Errorf("sqs queue: park: %w: handle carries no intent", queue.ErrUnknownHandle)
	}
	_, err := q.api.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: &q.queueURL, ReceiptHandle: &receipt, VisibilityTimeout: seconds(parkHold, maxVisibility),
	})
	if err != nil {
		return wrapSettle("park", err)
	}
	in := &sqs.SendMessageInput{
		QueueUrl:               &q.dlqURL,
		MessageBody:            &body,
		MessageGroupId:         aws.String(GroupOf(env.Intent)),
		MessageDeduplicationId: aws.String(DedupID(env.Intent)),
	}
	if reason != "" { // SQS rejects empty attribute values
		in.MessageAttributes = map[string]types.MessageAttributeValue{
			reasonAttribute: {DataType: aws.String("String"), StringValue: aws.String(reason)},
		}
	}
	if _, err := q.api.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("sqs queue: park: copy to dead-letter queue: %w", err)
	}
	if _, err := q.api.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &q.queueURL, ReceiptHandle: &receipt}); err != nil {
		return wrapSettle("park: delete", err)
	}
	return nil
}

// DeadLetters peeks at up to limit dead letters: it receives them from the
// dead-letter queue with a 30 s visibility timeout (so paging does not see a
// message twice) and makes them visible again before returning. Handles are
// empty. Receives is the dead-letter queue's ApproximateReceiveCount, which
// also counts earlier peeks. A concurrent peek may see fewer messages, and
// of a FIFO group only the messages one receive returns.
func (q *Queue) DeadLetters(ctx context.Context, limit int) ([]queue.Message, error) {
	var out []queue.Message
	var receipts []string
	defer func() { q.release(ctx, receipts) }()
	for len(out) < limit {
		r, err := q.api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    &q.dlqURL,
			MaxNumberOfMessages:         int32(min(limit-len(out), batchSize)),
			WaitTimeSeconds:             1, // a short poll may miss messages
			VisibilityTimeout:           seconds(peekVisibility, maxVisibility),
			MessageSystemAttributeNames: receiveAttributes,
			MessageAttributeNames:       []string{reasonAttribute},
		})
		if err != nil {
			return nil, fmt.Errorf("sqs queue: dead letters: %w", err)
		}
		if len(r.Messages) == 0 {
			break
		}
		for _, m := range r.Messages {
			receipts = append(receipts, aws.ToString(m.ReceiptHandle))
			msg, err := parse(aws.ToString(m.Body), aws.ToString(m.ReceiptHandle), m.Attributes)
			if err != nil {
				q.log.WarnContext(ctx, "sqs queue: undecodable dead letter", "messageId", aws.ToString(m.MessageId), "error", err)
				continue
			}
			msg.Handle = ""
			if a, ok := m.MessageAttributes[reasonAttribute]; ok {
				msg.ParkReason = aws.ToString(a.StringValue)
			}
			out = append(out, msg)
		}
	}
	return out, nil
}

// release makes peeked dead letters visible again. Failure only delays
// them by peekVisibility, so it is logged, not returned.
func (q *Queue) release(ctx context.Context, receipts []string) {
	ctx = context.WithoutCancel(ctx)
	for start := 0; start < len(receipts); start += batchSize {
		var entries []types.ChangeMessageVisibilityBatchRequestEntry
		for i, r := range receipts[start:min(start+batchSize, len(receipts))] {
			entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(r), VisibilityTimeout: 0,
			})
		}
		out, err := q.api.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: &q.dlqURL, Entries: entries})
		if err == nil && len(out.Failed) > 0 {
			err = fmt.Errorf("%d entries failed, first: %s", len(out.Failed), aws.ToString(out.Failed[0].Code))
		}
		if err != nil {
			q.log.WarnContext(ctx, "sqs queue: dead letters stay hidden until their peek visibility ends", "error", err)
		}
	}
}

// Close does nothing: the client belongs to the caller.
func (q *Queue) Close() error { return nil }
