package lambdafn_test

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/lambdafn"
	"github.com/learnerlink/learnerlink/shared/lambdafn/lambdatest"
	"github.com/learnerlink/learnerlink/shared/queue/sqs"
)

// The sample events' placeholder ids, replaced with the ids the test
// creates.
const (
	placeholderUser  = "2819c223-7f76-453a-919d-413861904646"
	placeholderGroup = "e9e30dba-f08f-4109-8486-d5c6a331660a"
	eventsDir        = "../../events"
	// The simulated Absorb admin's credentials.
	absorbUser, absorbPass, absorbKey = "api-admin", "sim-password", "sim-private-key"
)

// stack is a fresh table and queue pair on the real DynamoDB Local and
// SQS emulator, and the environment a deployed function would see.
type stack struct {
	ddb      *dynamodb.Client
	sqs      *awssqs.Client
	queueURL string
	sim      *absorbsim.Sim
}

func newStack(t *testing.T) *stack {
	t.Helper()
	// Other engineers share these servers: everything is uniquely named
	// and only what this test created is deleted.
	st := lambdatest.New(t, "learnerlink-lambdafn-")
	s := &stack{ddb: st.DDB, sqs: st.SQS, queueURL: st.QueueURL}
	s.sim = absorbsim.New(absorbsim.Options{Username: absorbUser, Password: absorbPass, PrivateKey: absorbKey})
	t.Cleanup(s.sim.Close)

	st.Setenv(t, map[string]string{
		"LEARNERLINK_SCIM_TOKEN":       "test-scim-token",
		"LEARNERLINK_SECRET_ID":        "",
		"LEARNERLINK_CONFIG":           "",
		"LEARNERLINK_LOG_LEVEL":        "error",
		"LEARNERLINK_TARGET":           "absorb",
		"ABSORB_API_URL":               s.sim.URL(),
		"ABSORB_USERNAME":              absorbUser,
		"ABSORB_PASSWORD":              absorbPass,
		"ABSORB_PRIVATE_KEY":           absorbKey,
		"ABSORB_RATE_LIMIT":            "100",
		"ABSORB_DEFAULT_DEPARTMENT_ID": s.sim.DefaultDepartmentID(),
	})
	return s
}

// loadEvent reads a sample event with the placeholders replaced.
func loadEvent[T any](t *testing.T, name string, replace ...string) T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(eventsDir, name))
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	raw := strings.NewReplacer(replace...).Replace(string(b))
	var ev T
	if err := json.Unmarshal([]byte(raw), &ev); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ev
}

// drain receives every queued intent and feeds them, a batch at a time in
// the shape Lambda delivers, through the worker handler; like Lambda it
// then deletes the messages the handler did not report as failures.
func (s *stack) drain(t *testing.T, worker lambdafn.WorkerHandler) (batches, messages int) {
	t.Helper()
	ctx := context.Background()
	for range 50 { // bound: a handful of intents are expected
		out, err := s.sqs.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(s.queueURL),
			MaxNumberOfMessages:         10,
			WaitTimeSeconds:             1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			return batches, messages
		}
		ev := events.SQSEvent{}
		for _, m := range out.Messages {
			ev.Records = append(ev.Records, events.SQSMessage{
				MessageId:      aws.ToString(m.MessageId),
				ReceiptHandle:  aws.ToString(m.ReceiptHandle),
				Body:           aws.ToString(m.Body),
				Attributes:     m.Attributes,
				EventSource:    "aws:sqs",
				EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:test.fifo",
				AWSRegion:      "us-east-1",
			})
		}
		resp, err := worker(ctx, ev)
		if err != nil {
			t.Fatalf("worker: %v", err)
		}
		if len(resp.BatchItemFailures) != 0 {
			t.Fatalf("worker reported failures: %+v", resp.BatchItemFailures)
		}
		for _, m := range out.Messages {
			if _, err := s.sqs.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(s.queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}
		batches++
		messages += len(out.Messages)
	}
	t.Fatal("the queue did not drain")
	return 0, 0
}

// scimResult is a decoded SCIM answer.
type scimResult struct {
	status int
	header map[string]string
	body   map[string]any
}

func invoke(t *testing.T, h lambdafn.SCIMHandler, ev events.APIGatewayV2HTTPRequest) scimResult {
	t.Helper()
	res, err := h(context.Background(), ev)
	if err != nil {
		t.Fatalf("%s %s: handler error: %v", ev.RequestContext.HTTP.Method, ev.RawPath, err)
	}
	r := scimResult{status: res.StatusCode, header: map[string]string{}}
	for k, v := range res.Headers {
		r.header[http.CanonicalHeaderKey(k)] = v
	}
	for k, v := range res.MultiValueHeaders {
		r.header[http.CanonicalHeaderKey(k)] = strings.Join(v, ",")
	}
	if strings.TrimSpace(res.Body) != "" {
		if res.IsBase64Encoded {
			t.Fatalf("%s: unexpected base64 body", ev.RawPath)
		}
		mt, _, _ := mime.ParseMediaType(r.header["Content-Type"])
		if mt != "application/scim+json" {
			t.Errorf("%s %s: Content-Type %q, want application/scim+json", ev.RequestContext.HTTP.Method, ev.RawPath, r.header["Content-Type"])
		}
		if err := json.Unmarshal([]byte(res.Body), &r.body); err != nil {
			t.Fatalf("%s: body is not JSON: %v\n%s", ev.RawPath, err, res.Body)
		}
	}
	return r
}

// path walks a dotted path through a decoded resource.
func path(m map[string]any, p string) any {
	var cur any = m
	for _, k := range strings.Split(p, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[k]
	}
	return cur
}

// department reads the enterprise extension's department (its URN holds a
// dot, so path cannot).
func department(m map[string]any) any {
	ext, _ := m[enterprise].(map[string]any)
	return ext["department"]
}

func resourceIDs(body map[string]any) []string {
	var out []string
	rs, _ := body["Resources"].([]any)
	for _, r := range rs {
		if m, ok := r.(map[string]any); ok {
			id, _ := m["id"].(string)
			out = append(out, id)
		}
	}
	return out
}

const enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// eventStep is one sample SCIM event and what its answer must be.
type eventStep struct {
	file   string
	status int
	check  func(t *testing.T, r scimResult)
	// sync drains the queue through the worker afterwards and checks the
	// learner in Absorb.
	sync func(t *testing.T, u absorbsim.User)
}

// TestFunctions feeds every sample event through the real handlers, built
// once as at cold start, on DynamoDB Local and the SQS emulator: the SCIM
// events in the order Okta would send them, the intents they queue through
// the worker into a simulated Absorb, then the worker and sweeper samples.
func TestFunctions(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	scimH, err := lambdafn.SCIM(ctx, os.Getenv)
	if err != nil {
		t.Fatalf("SCIM: %v", err)
	}
	workerH, err := lambdafn.Worker(ctx, os.Getenv)
	if err != nil {
		t.Fatalf("Worker: %v", err)
	}
	sweeperH, err := lambdafn.Sweeper(ctx, os.Getenv)
	if err != nil {
		t.Fatalf("Sweeper: %v", err)
	}

	var userID, groupID string
	learner := func(t *testing.T) absorbsim.User {
		t.Helper()
		for _, u := range s.sim.Users() {
			if u.Username == "jane.doe@example.com" {
				return u
			}
		}
		t.Fatalf("no learner jane.doe@example.com in Absorb; users: %d", len(s.sim.Users()))
		return absorbsim.User{}
	}
	steps := []eventStep{
		{file: "service-provider-config.json", status: 200, check: func(t *testing.T, r scimResult) {
			if path(r.body, "patch.supported") != true || path(r.body, "filter.supported") != true {
				t.Errorf("ServiceProviderConfig: %v", r.body)
			}
		}},
		{file: "resource-types.json", status: 200, check: func(t *testing.T, r scimResult) {
			if r.body["totalResults"] != float64(2) {
				t.Errorf("ResourceTypes totalResults %v, want 2", r.body["totalResults"])
			}
		}},
		{file: "schemas.json", status: 200, check: func(t *testing.T, r scimResult) {
			if n, _ := r.body["totalResults"].(float64); n < 2 {
				t.Errorf("Schemas totalResults %v, want at least 2", r.body["totalResults"])
			}
		}},
		{file: "create-user.json", status: 201, check: func(t *testing.T, r scimResult) {
			userID, _ = r.body["id"].(string)
			if userID == "" || userID == placeholderUser {
				t.Fatalf("created id %q", userID)
			}
			if want := "https://abc123.execute-api.us-east-1.amazonaws.com/scim/v2/Users/" + userID; r.header["Location"] != want || path(r.body, "meta.location") != want {
				t.Errorf("Location %q, meta.location %v; want %s", r.header["Location"], path(r.body, "meta.location"), want)
			}
			if _, ok := r.body["password"]; ok {
				t.Error("password returned")
			}
			if department(r.body) != "Sales" || r.body["active"] != true {
				t.Errorf("created user: %v", r.body)
			}
		}},
		{file: "get-user.json", status: 200, check: func(t *testing.T, r scimResult) {
			if r.body["id"] != userID || r.body["userName"] != "jane.doe@example.com" || r.header["Etag"] == "" {
				t.Errorf("get user: %v (ETag %q)", r.body, r.header["Etag"])
			}
		}},
		{file: "list-users.json", status: 200, check: func(t *testing.T, r scimResult) {
			if r.body["totalResults"] != float64(1) || !slices.Equal(resourceIDs(r.body), []string{userID}) {
				t.Errorf("list users: %v", r.body)
			}
		}},
		{file: "filter-users-by-username.json", status: 200, check: func(t *testing.T, r scimResult) {
			if r.body["totalResults"] != float64(1) || !slices.Equal(resourceIDs(r.body), []string{userID}) {
				t.Errorf("filter users: %v", r.body)
			}
		}},
		{file: "replace-user.json", status: 200, check: func(t *testing.T, r scimResult) {
			if r.body["id"] != userID || path(r.body, "name.givenName") != "Janet" {
				t.Errorf("replace user: %v", r.body)
			}
		}, sync: func(t *testing.T, u absorbsim.User) {
			if u.FirstName != "Janet" || u.LastName != "Doe" || u.ActiveStatus != 0 || u.ExternalID != "00u1abcd2EFGHijk3l4m" || u.Username != "jane.doe@example.com" {
				t.Errorf("learner after create and replace: %+v", u)
			}
		}},
		{file: "entra-patch-user.json", status: 200, check: func(t *testing.T, r scimResult) {
			if r.body["active"] != false || department(r.body) != "Marketing" {
				t.Errorf("entra patch: %v", r.body)
			}
		}},
		{file: "deactivate-user.json", status: 200, check: func(t *testing.T, r scimResult) {
			if r.body["active"] != false {
				t.Errorf("deactivate: %v", r.body)
			}
		}, sync: func(t *testing.T, u absorbsim.User) {
			if u.ActiveStatus != 1 || u.EmailAddress != "jane.d@example.com" {
				t.Errorf("learner after deactivation: %+v", u)
			}
		}},
		{file: "create-group.json", status: 201, check: func(t *testing.T, r scimResult) {
			groupID, _ = r.body["id"].(string)
			ms, _ := r.body["members"].([]any)
			if groupID == "" || len(ms) != 1 || path(ms[0].(map[string]any), "value") != userID {
				t.Errorf("create group: %v", r.body)
			}
		}},
		{file: "filter-groups.json", status: 200, check: func(t *testing.T, r scimResult) {
			if r.body["totalResults"] != float64(1) || !slices.Equal(resourceIDs(r.body), []string{groupID}) {
				t.Errorf("filter groups: %v", r.body)
			}
		}},
		{file: "get-group.json", status: 200, check: func(t *testing.T, r scimResult) {
			if _, ok := r.body["members"]; ok || r.body["id"] != groupID || r.body["displayName"] != "Sales" {
				t.Errorf("get group without members: %v", r.body)
			}
		}},
		{file: "remove-group-member.json", status: 204},
		{file: "delete-user.json", status: 204, sync: func(t *testing.T, u absorbsim.User) {
			if u.ActiveStatus != 1 {
				t.Errorf("learner after DELETE: %+v, want kept and inactive", u)
			}
		}},
		{file: "get-user.json", status: 404},
	}

	// Every sample is used.
	files, err := filepath.Glob(filepath.Join(eventsDir, "scim", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !slices.ContainsFunc(steps, func(s eventStep) bool { return s.file == filepath.Base(f) }) {
			t.Errorf("events/scim/%s is not exercised", filepath.Base(f))
		}
	}

	for i, st := range steps {
		ok := t.Run(st.file, func(t *testing.T) {
			ev := loadEvent[events.APIGatewayV2HTTPRequest](t, filepath.Join("scim", st.file), placeholderUser, userID, placeholderGroup, groupID)
			r := invoke(t, scimH, ev)
			if r.status != st.status {
				t.Fatalf("status %d, want %d: %v", r.status, st.status, r.body)
			}
			if r.status >= 400 && !slices.Contains(anyStrings(r.body["schemas"]), "urn:ietf:params:scim:api:messages:2.0:Error") {
				t.Errorf("error body: %v", r.body)
			}
			if st.check != nil {
				st.check(t, r)
			}
			if st.sync != nil {
				if _, n := s.drain(t, workerH); n == 0 {
					t.Fatalf("no intents queued before this point")
				}
				st.sync(t, learner(t))
			}
		})
		if !ok && i < 4 {
			t.FailNow() // later steps need the created user
		}
	}

	t.Run("unauthorized", func(t *testing.T) {
		ev := loadEvent[events.APIGatewayV2HTTPRequest](t, "scim/list-users.json", "Bearer test-scim-token", "Bearer wrong")
		if r := invoke(t, scimH, ev); r.status != 401 {
			t.Errorf("status %d, want 401", r.status)
		}
	})

	t.Run("worker-sqs-batch.json", func(t *testing.T) {
		// The sample names an identity this table does not hold: acked.
		ev := loadEvent[events.SQSEvent](t, "worker-sqs-batch.json")
		// It is what our queue sends: same group and deduplication ids.
		m, err := sqs.ParseSQSEventMessage(ev.Records[0])
		if err != nil {
			t.Fatalf("sample: %v", err)
		}
		if a := ev.Records[0].Attributes; a["MessageGroupId"] != sqs.GroupID(m.IdentityID) || a["MessageDeduplicationId"] != sqs.DedupID(m.Intent) {
			t.Errorf("sample attributes %v; want MessageGroupId %s, MessageDeduplicationId %s", a, sqs.GroupID(m.IdentityID), sqs.DedupID(m.Intent))
		}
		resp, err := workerH(ctx, ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Errorf("worker: %+v, %v; want no failures", resp, err)
		}
		// With the created (now deleted) identity it is acked too.
		ev = loadEvent[events.SQSEvent](t, "worker-sqs-batch.json", placeholderUser, userID)
		resp, err = workerH(ctx, ev)
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Errorf("worker: %+v, %v; want no failures", resp, err)
		}
		// An unreadable body is reported, so SQS redrives it.
		ev.Records[0].Body = "{not json"
		resp, err = workerH(ctx, ev)
		if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].MessageId {
			t.Errorf("worker on a bad body: %+v, %v; want the message reported", resp, err)
		}
	})

	t.Run("sweeper-schedule.json", func(t *testing.T) {
		ev := loadEvent[events.EventBridgeEvent](t, "sweeper-schedule.json")
		if err := sweeperH(ctx, ev); err != nil {
			t.Errorf("sweeper: %v", err)
		}
		// Everything is synced: nothing to re-queue.
		if _, n := s.drain(t, workerH); n != 0 {
			t.Errorf("sweeper queued %d intents with nothing pending", n)
		}
	})

	if n := len(s.sim.Users()); n != 1 {
		t.Errorf("%d learners in Absorb, want 1 (no duplicates)", n)
	}
}

func anyStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// TestBuildErrors: the constructors refuse a missing table, queue or
// token instead of failing on the first invocation.
func TestBuildErrors(t *testing.T) {
	base := map[string]string{
		"LEARNERLINK_TABLE": "t", "LEARNERLINK_QUEUE_URL": "http://127.0.0.1:1/q", "LEARNERLINK_SCIM_TOKEN": "x",
		"LEARNERLINK_TARGET": "sandbox", "LEARNERLINK_SECRET_ID": "",
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_PROFILE": "",
	}
	scimFn := func(ctx context.Context, g func(string) string) error { _, err := lambdafn.SCIM(ctx, g); return err }
	workerFn := func(ctx context.Context, g func(string) string) error { _, err := lambdafn.Worker(ctx, g); return err }
	sweeperFn := func(ctx context.Context, g func(string) string) error { _, err := lambdafn.Sweeper(ctx, g); return err }
	cases := []struct {
		name  string
		unset string
		build func(context.Context, func(string) string) error
		want  string // in the error
	}{
		{"SCIM without a table", "LEARNERLINK_TABLE", scimFn, "LEARNERLINK_TABLE"},
		{"SCIM without a queue", "LEARNERLINK_QUEUE_URL", scimFn, "LEARNERLINK_QUEUE_URL"},
		{"SCIM without a token", "LEARNERLINK_SCIM_TOKEN", scimFn, "SCIM token"},
		{"Worker without a table", "LEARNERLINK_TABLE", workerFn, "LEARNERLINK_TABLE"},
		{"Worker with the sandbox target", "", workerFn, "sandbox"},
		{"Sweeper without a queue", "LEARNERLINK_QUEUE_URL", sweeperFn, "LEARNERLINK_QUEUE_URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range base {
				t.Setenv(k, v)
			}
			getenv := func(k string) string {
				if k == tc.unset {
					return ""
				}
				return os.Getenv(k)
			}
			if err := tc.build(context.Background(), getenv); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
}
