package main

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/lambdafn"
	"github.com/learnerlink/learnerlink/shared/lambdafn/lambdatest"
	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/okta/oktasim"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/dynamo"
)

// TestReconcileFunction runs the function as deployed: DynamoDB Local,
// the SQS emulator, the Absorb and Okta simulators, and the sample event.
func TestReconcileFunction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Shared servers: unique names, and only what this test made is removed.
	stack := lambdatest.New(t, "learnerlink-reconcile-")
	ddb, sq, name, queueURL := stack.DDB, stack.SQS, stack.Table, stack.QueueURL
	absorb := absorbsim.New(absorbsim.Options{Username: "api-admin", Password: "pw", PrivateKey: "key"})
	t.Cleanup(absorb.Close)
	org := oktasim.New(oktasim.Options{APIToken: "ssws-test"})
	t.Cleanup(org.Close)
	org.CreateApp("0oaapp")
	for _, u := range []okta.User{
		{ID: "00uknown", Status: "ACTIVE", Profile: okta.Profile{Login: "known@example.com", Email: "known@example.com", FirstName: "Kno", LastName: "Wn"}},
		{ID: "00unew", Status: "ACTIVE", Profile: okta.Profile{Login: "new@example.com", Email: "new@example.com", FirstName: "Ne", LastName: "W"}},
	} {
		org.PutUser(u)
		org.Assign("0oaapp", u.ID, "USER")
	}
	st := dynamo.New(ddb, name)
	res, _ := json.Marshal(map[string]any{"userName": "known@example.com", "externalId": "00uknown", "active": true,
		"name": map[string]any{"givenName": "Kno", "familyName": "Wn"}, "emails": []any{map[string]any{"value": "known@example.com", "primary": true}}})
	if err := st.CreateIdentity(ctx, &store.Identity{ID: "id-known", UserName: "known@example.com", ExternalID: "00uknown", Active: true, Resource: res}); err != nil {
		t.Fatal(err)
	}

	stack.Setenv(t, map[string]string{
		"LEARNERLINK_SECRET_ID":                      "",
		"LEARNERLINK_CONFIG":                         "",
		"LEARNERLINK_LOG_LEVEL":                      "error",
		"LEARNERLINK_TARGET":                         "absorb",
		"ABSORB_API_URL":                             absorb.URL(),
		"ABSORB_USERNAME":                            "api-admin",
		"ABSORB_PASSWORD":                            "pw",
		"ABSORB_PRIVATE_KEY":                         "key",
		"ABSORB_RATE_LIMIT":                          "100",
		"ABSORB_DEFAULT_DEPARTMENT_ID":               absorb.DefaultDepartmentID(),
		"OKTA_ORG_URL":                               org.URL(),
		"OKTA_APP_ID":                                "0oaapp",
		"OKTA_API_TOKEN":                             "ssws-test",
		"LEARNERLINK_RECONCILE_DRY_RUN":              "false",
		"LEARNERLINK_RECONCILE_MAX_DEACTIVATE_SHARE": "0.5",
		"LEARNERLINK_RECONCILE_CREATE_IDENTITIES":    "true",
	})
	h, err := lambdafn.Reconcile(ctx, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}

	// The sample event asks for a dry run.
	b, err := os.ReadFile("../../events/reconcile-schedule.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.EventBridgeEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	rep, err := h(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DryRun || !rep.Complete || rep.Counts[reconcile.Missing] != 1 || rep.Counts[reconcile.Unknown] != 1 || rep.Enqueued != 0 {
		t.Fatalf("dry run = %+v", rep)
	}

	// A real run with a Lambda deadline.
	ev.Detail = json.RawMessage(`{"dryRun": false}`)
	lctx, lcancel := context.WithTimeout(ctx, 15*time.Minute)
	defer lcancel()
	rep, err = h(lctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DryRun || !rep.Complete || rep.Enqueued != 2 || rep.Created != 1 || rep.Guard.Verdict != reconcile.GuardOK {
		t.Fatalf("run = %+v", rep)
	}
	var reasons []string
	for range 10 {
		out, err := sq.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			var in queue.Intent
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &in); err != nil {
				t.Fatalf("body %q: %v", aws.ToString(m.Body), err)
			}
			if !in.Force || in.Target != "absorb" {
				t.Fatalf("intent = %+v", in)
			}
			reasons = append(reasons, in.Reason)
			_, _ = sq.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: m.ReceiptHandle})
		}
		if len(reasons) >= 2 {
			break
		}
	}
	slices.Sort(reasons)
	if !slices.Equal(reasons, []string{"reconcile.missing", "reconcile.unknown"}) {
		t.Fatalf("queued reasons = %v", reasons)
	}
	if reps, err := reconcile.LatestReports(ctx, st, "absorb", 1); err != nil || len(reps) != 1 || reps[0].RunID != rep.RunID {
		t.Fatalf("stored report = %+v, %v", reps, err)
	}
}
