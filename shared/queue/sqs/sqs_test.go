package sqs

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/queuetest"
	"github.com/learnerlink/learnerlink/shared/testenv"
)

func client(t *testing.T) *sqs.Client {
	t.Helper()
	return testenv.SQSClient(t)
}

// testQueues makes a uniquely named queue pair and deletes it (only it)
// after the test.
func testQueues(t *testing.T, c *sqs.Client, opts CreateOptions) (queueURL, dlqURL string) {
	t.Helper()
	name := "llqt-" + rand.Text()[:16]
	queueURL, dlqURL, err := CreateQueues(t.Context(), c, name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, u := range []string{queueURL, dlqURL} {
			if _, err := c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(u)}); err != nil {
				t.Logf("delete %s: %v", u, err)
			}
		}
	})
	return queueURL, dlqURL
}

func TestConformance(t *testing.T) {
	c := client(t)
	queuetest.Run(t, func(t *testing.T, opts queuetest.Options) queue.Queue {
		queueURL, dlqURL := testQueues(t, c, CreateOptions{
			VisibilityTimeout: opts.VisibilityTimeout,
			MaxReceives:       opts.MaxReceives,
		})
		return New(c, queueURL, dlqURL)
	}, queuetest.AckUnknownHandleMayBeNil)
}

func TestCreateQueues(t *testing.T) {
	c := client(t)
	queueURL, dlqURL := testQueues(t, c, CreateOptions{VisibilityTimeout: 1500 * time.Millisecond, MaxReceives: 7})
	if !strings.HasSuffix(queueURL, ".fifo") || !strings.HasSuffix(dlqURL, "-dlq.fifo") {
		t.Fatalf("urls %s, %s", queueURL, dlqURL)
	}
	out, err := c.GetQueueAttributes(t.Context(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(queueURL), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := out.Attributes
	var redrive struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     any    `json:"maxReceiveCount"` // a string or a number, by server
	}
	if err := json.Unmarshal([]byte(a["RedrivePolicy"]), &redrive); err != nil {
		t.Fatalf("RedrivePolicy %q: %v", a["RedrivePolicy"], err)
	}
	tests := []struct{ name, got, want string }{
		{"FifoQueue", a["FifoQueue"], "true"},
		{"ContentBasedDeduplication", a["ContentBasedDeduplication"], "false"},
		{"VisibilityTimeout", a["VisibilityTimeout"], "2"}, // rounded up
		{"MessageRetentionPeriod", a["MessageRetentionPeriod"], "1209600"},
		{"maxReceiveCount", fmt.Sprint(redrive.MaxReceiveCount), "7"},
		{"deadLetterTarget", fmt.Sprint(strings.HasSuffix(redrive.DeadLetterTargetArn, "-dlq.fifo")), "true"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestCreateQueuesRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "has space", "dot.fifo", strings.Repeat("a", 72)} {
		if _, _, err := createQueues(t.Context(), nil, name, CreateOptions{}); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
}

func TestParseSQSEventMessage(t *testing.T) {
	sent := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	intent := queue.Intent{IdentityID: "00u1", Version: 3, Target: "absorb", Reason: "scim.patch", RequestID: "r1"}
	body := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	withSent := body(envelope{Intent: intent, Sent: sent})
	noSent := body(intent)
	attrs := map[string]string{"ApproximateReceiveCount": "4", "SentTimestamp": "1795435200000"}

	tests := []struct {
		name         string
		msg          events.SQSMessage
		wantErr      bool
		wantReceives int
		wantSent     time.Time
	}{
		{"body sent wins", events.SQSMessage{MessageId: "m1", ReceiptHandle: "rh", Body: withSent, Attributes: attrs}, false, 4, sent},
		{"SentTimestamp fallback", events.SQSMessage{ReceiptHandle: "rh", Body: noSent, Attributes: attrs}, false, 4, time.UnixMilli(1795435200000)},
		{"no attributes", events.SQSMessage{ReceiptHandle: "rh", Body: withSent}, false, 1, sent},
		{"bad receive count", events.SQSMessage{ReceiptHandle: "rh", Body: withSent, Attributes: map[string]string{"ApproximateReceiveCount": "x"}}, true, 0, time.Time{}},
		{"bad SentTimestamp", events.SQSMessage{ReceiptHandle: "rh", Body: noSent, Attributes: map[string]string{"SentTimestamp": "soon"}}, true, 0, time.Time{}},
		{"not JSON", events.SQSMessage{ReceiptHandle: "rh", Body: "hello"}, true, 0, time.Time{}},
		{"no identity", events.SQSMessage{ReceiptHandle: "rh", Body: `{"version":1}`}, true, 0, time.Time{}},
		{"no receipt handle", events.SQSMessage{Body: withSent}, true, 0, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseSQSEventMessage(tc.msg)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want error", m)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Intent != intent || m.Receives != tc.wantReceives || !m.Sent.Equal(tc.wantSent) {
				t.Errorf("got %+v r%d sent %v; want %+v r%d sent %v", m.Intent, m.Receives, m.Sent, intent, tc.wantReceives, tc.wantSent)
			}
			receipt, b, ok := splitHandle(m.Handle)
			if receipt != tc.msg.ReceiptHandle || b != tc.msg.Body || !ok {
				t.Errorf("handle carries %q, %q, %v", receipt, b, ok)
			}
		})
	}
}

func TestHandles(t *testing.T) {
	tests := []struct {
		handle      string
		wantReceipt string
		wantBody    string
		wantOK      bool
	}{
		{makeHandle("AQEB+abc/def==", `{"identityId":"x"}`), "AQEB+abc/def==", `{"identityId":"x"}`, true},
		{makeHandle("with|bar", "b"), "with|bar", "b", true},
		{"bare-receipt", "bare-receipt", "", false},
		{"receipt|not base64!", "receipt|not base64!", "", false},
	}
	for _, tc := range tests {
		r, b, ok := splitHandle(tc.handle)
		if r != tc.wantReceipt || b != tc.wantBody || ok != tc.wantOK {
			t.Errorf("splitHandle(%q) = %q, %q, %v", tc.handle, r, b, ok)
		}
	}
}

func TestGroupAndDedupIDs(t *testing.T) {
	long := strings.Repeat("a", 129)
	tests := []struct {
		id       string
		verbatim bool
	}{
		{"00u1ab2cd3EF4gh5", true},
		{"user@example.com", true},
		{`p!"#$%&'()*+,-./:;<=>?@[\]^_{|}~` + "`", true},
		{strings.Repeat("a", 128), true},
		{long, false},
		{"has space", false},
		{"ünïcode", false},
		{"tab\t", false},
	}
	for _, tc := range tests {
		g := GroupID(tc.id)
		if (g == tc.id) != tc.verbatim {
			t.Errorf("GroupID(%q) = %q, verbatim want %v", tc.id, g, tc.verbatim)
		}
		if !validID(g) {
			t.Errorf("GroupID(%q) = %q is not a valid SQS id", tc.id, g)
		}
	}
	base := queue.Intent{IdentityID: "x", Version: 1}
	variants := []queue.Intent{
		{IdentityID: "x", Version: 2},
		{IdentityID: "x", Version: 1, Target: "absorb"},
		{IdentityID: "x|1", Version: 1},
		{IdentityID: "y", Version: 1},
		{IdentityID: long, Version: 1},
	}
	seen := map[string]bool{DedupID(base): true}
	for _, v := range variants {
		d := DedupID(v)
		if seen[d] || !validID(d) {
			t.Errorf("DedupID(%+v) = %q: duplicate or invalid", v, d)
		}
		seen[d] = true
	}
	if DedupID(queue.Intent{IdentityID: "x", Version: 1, Reason: "other"}) != DedupID(base) {
		t.Error("DedupID depends on Reason; duplicates with another reason would be delivered")
	}
}

// fakeBatch fails chosen entries of SendMessageBatch a number of times.
type fakeBatch struct {
	api
	failures map[string]int // entry id -> times to fail
	sender   map[string]bool
	callErr  error
	sent     []string
	calls    int
}

func (f *fakeBatch) SendMessageBatch(_ context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.calls++
	if len(in.Entries) > 10 {
		return nil, errors.New("too many entries")
	}
	if f.callErr != nil {
		return nil, f.callErr
	}
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		id := *e.Id
		if f.sender[id] || f.failures[id] > 0 {
			f.failures[id]--
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError"), SenderFault: f.sender[id]})
			continue
		}
		f.sent = append(f.sent, id)
	}
	return out, nil
}

func TestEnqueueBatchFailures(t *testing.T) {
	intents := make([]queue.Intent, 25)
	for i := range intents {
		intents[i] = queue.Intent{IdentityID: fmt.Sprint("u", i), Version: 1}
	}
	tests := []struct {
		name      string
		fake      *fakeBatch
		wantSent  int
		wantErr   string // substring; empty: success
		wantCalls int
	}{
		{"all succeed", &fakeBatch{}, 25, "", 3},
		{"transient entry failures retried", &fakeBatch{failures: map[string]int{"3": 1, "17": 2}}, 25, "", 6},
		{"persistent failure reported", &fakeBatch{failures: map[string]int{"12": 99}}, 24, "1 of 25 intents not enqueued", 5},
		{"sender fault not retried", &fakeBatch{sender: map[string]bool{"0": true, "24": true}}, 23, "2 of 25 intents not enqueued", 3},
		{"call failure stops", &fakeBatch{callErr: errors.New("boom")}, 0, "25 of 25 intents not enqueued", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fake.failures == nil {
				tc.fake.failures = map[string]int{}
			}
			q := newQueue(tc.fake, "q", "dlq")
			err := q.Enqueue(t.Context(), intents...)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Enqueue = %v, want %q", err, tc.wantErr)
			}
			if len(tc.fake.sent) != tc.wantSent || tc.fake.calls != tc.wantCalls {
				t.Errorf("sent %d in %d calls, want %d in %d", len(tc.fake.sent), tc.fake.calls, tc.wantSent, tc.wantCalls)
			}
		})
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		d, limit time.Duration
		want     int32
	}{
		{-time.Second, time.Hour, 0},
		{0, time.Hour, 0},
		{time.Millisecond, time.Hour, 1},
		{time.Second, time.Hour, 1},
		{1500 * time.Millisecond, time.Hour, 2},
		{25 * time.Second, 20 * time.Second, 20},
		{48 * time.Hour, 12 * time.Hour, 43200},
	}
	for _, tc := range tests {
		if got := seconds(tc.d, tc.limit); got != tc.want {
			t.Errorf("seconds(%v, %v) = %d, want %d", tc.d, tc.limit, got, tc.want)
		}
	}
}

func TestGroupOf(t *testing.T) {
	tests := []struct {
		in   queue.Intent
		want string
	}{
		{queue.Intent{IdentityID: "00u1"}, "00u1"},
		{queue.Intent{IdentityID: "00u1", Target: "absorb"}, "00u1#absorb"},
		{queue.Intent{IdentityID: "has space", Target: "absorb"}, GroupID("has space#absorb")},
	}
	for _, tc := range tests {
		if got := GroupOf(tc.in); got != tc.want || !validID(got) {
			t.Errorf("GroupOf(%+v) = %q, want %q (valid)", tc.in, got, tc.want)
		}
	}
}
