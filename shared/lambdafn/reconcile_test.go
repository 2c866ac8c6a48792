package lambdafn_test

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/connector/scimout/scimoutsim"
	"github.com/learnerlink/learnerlink/shared/lambdafn"
	"github.com/learnerlink/learnerlink/shared/lambdafn/lambdatest"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/dynamo"
)

// TestReconcileCoversEveryTarget: with two targets configured, the
// function reconciles both and queues each repair for its target only.
func TestReconcileCoversEveryTarget(t *testing.T) {
	st := lambdatest.New(t, "learnerlink-lambdafn-rec-")
	sim := absorbsim.New(absorbsim.Options{Username: absorbUser, Password: absorbPass, PrivateKey: absorbKey})
	t.Cleanup(sim.Close)
	lms, err := scimoutsim.Start(t.TempDir(), scimoutsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lms.Close() })
	cfg, err := json.Marshal(map[string]any{"targets": []map[string]any{
		{"name": "absorb", "type": "absorb", "url": sim.URL(), "rateLimit": 100, "defaultDepartmentId": sim.DefaultDepartmentID(),
			"credentials": map[string]string{"usernameEnv": "T_ABSORB_USER", "passwordEnv": "T_ABSORB_PASS", "privateKeyEnv": "T_ABSORB_KEY"}},
		{"name": "lms", "type": "scim", "url": lms.URL, "profile": "generic", "rateLimit": 100,
			"credentials": map[string]string{"tokenEnv": "T_LMS_TOKEN"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st.Setenv(t, map[string]string{
		"LEARNERLINK_SCIM_TOKEN":        "test-scim-token",
		"LEARNERLINK_SECRET_ID":         "",
		"LEARNERLINK_CONFIG":            "",
		"LEARNERLINK_CONFIG_JSON":       string(cfg),
		"LEARNERLINK_LOG_LEVEL":         "error",
		"LEARNERLINK_RECONCILE_DRY_RUN": "false",
		"OKTA_ORG_URL":                  "",
		"OKTA_APP_ID":                   "",
		"T_ABSORB_USER":                 absorbUser, "T_ABSORB_PASS": absorbPass, "T_ABSORB_KEY": absorbKey,
		"T_LMS_TOKEN": lms.Token,
	})
	ctx := context.Background()
	// An identity that never reached either target.
	s := dynamo.New(st.DDB, st.Table)
	res := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ann@example.com","externalId":"00uann",` +
		`"name":{"givenName":"Ann","familyName":"Lee"},"emails":[{"value":"ann@example.com","primary":true}],"active":true}`
	ident := &store.Identity{ID: "id-ann", UserName: "ann@example.com", ExternalID: "00uann", Active: true, Resource: json.RawMessage(res)}
	if err := s.CreateIdentity(ctx, ident); err != nil {
		t.Fatal(err)
	}

	h, err := lambdafn.Reconcile(ctx, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := h(ctx, events.EventBridgeEvent{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, tr := range rep.Targets {
		got[tr.Target] = tr.Counts[reconcile.Missing]
	}
	if !rep.Complete || !maps.Equal(got, map[string]int{"absorb": 1, "lms": 1}) || rep.Enqueued != 2 {
		t.Fatalf("report = %+v", rep)
	}
	targets := map[string]bool{}
	for range 10 {
		out, err := st.SQS.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(st.QueueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			var in queue.Intent
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &in); err != nil {
				t.Fatal(err)
			}
			if in.IdentityID != ident.ID || in.Reason != "reconcile.missing" || !in.Force {
				t.Fatalf("intent = %+v", in)
			}
			targets[in.Target] = true
			_, _ = st.SQS.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: aws.String(st.QueueURL), ReceiptHandle: m.ReceiptHandle})
		}
		if len(targets) == 2 {
			break
		}
	}
	if !maps.Equal(targets, map[string]bool{"absorb": true, "lms": true}) {
		t.Fatalf("intents for targets %v", targets)
	}
}
