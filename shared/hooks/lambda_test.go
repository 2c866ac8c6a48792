package hooks_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/learnerlink/learnerlink/shared/lambdafn"
	"github.com/learnerlink/learnerlink/shared/lambdafn/lambdatest"
	"github.com/learnerlink/learnerlink/shared/okta/oktasim"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/sqs"
	"github.com/learnerlink/learnerlink/shared/store/dynamo"
)

// lambdaStack is a fresh table and queue on DynamoDB Local and the SQS
// emulator, an Okta simulator, and the environment the deployed hooks
// function sees.
type lambdaStack struct {
	st *dynamo.Store
	q  *sqs.Queue
}

func newLambdaStack(t *testing.T) *lambdaStack {
	t.Helper()
	// The servers are shared: everything is uniquely named, and only what
	// this test created is deleted.
	stack := lambdatest.New(t, "learnerlink-hooks-")
	sim := oktasim.New(oktasim.Options{APIToken: "sim-okta-token"})
	t.Cleanup(sim.Close)
	sim.PutUser(janeProfile())
	stack.Setenv(t, map[string]string{
		"LEARNERLINK_SECRET_ID":        "",
		"LEARNERLINK_LOG_LEVEL":        "error",
		"LEARNERLINK_HOOK_SECRET":      secret,
		"LEARNERLINK_HOOK_AUTH_HEADER": "",
		"OKTA_ORG_URL":                 sim.URL(),
		"OKTA_APP_ID":                  ownApp,
		"OKTA_API_TOKEN":               "sim-okta-token",
		"OKTA_CLIENT_ID":               "",
		"OKTA_PRIVATE_KEY":             "",
	})
	return &lambdaStack{st: dynamo.New(stack.DDB, stack.Table), q: sqs.New(stack.SQS, stack.QueueURL, stack.DLQURL)}
}

// drain receives (and acknowledges) want intents, then checks that no
// more are queued.
func (s *lambdaStack) drain(t *testing.T, want int) []queue.Intent {
	t.Helper()
	ctx := context.Background()
	var got []queue.Intent
	for i := 0; len(got) < want && i < 10; i++ {
		msgs, err := s.q.Receive(ctx, 10, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got = append(got, m.Intent)
			if err := s.q.Ack(ctx, m.Handle); err != nil {
				t.Fatal(err)
			}
		}
	}
	extra, err := s.q.Receive(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != want || len(extra) != 0 {
		t.Fatalf("intents %+v (+%d more), want %d", got, len(extra), want)
	}
	return got
}

// TestLambda replays the events/hooks samples through the real Lambda
// handler, against DynamoDB Local, the SQS emulator and the Okta
// simulator.
func TestLambda(t *testing.T) {
	s := newLambdaStack(t)
	h, err := lambdafn.Hooks(context.Background(), os.Getenv)
	if err != nil {
		t.Fatalf("lambdafn.Hooks: %v", err)
	}
	invoke := func(t *testing.T, ev events.APIGatewayV2HTTPRequest) (int, map[string]any) {
		t.Helper()
		res, err := h(context.Background(), ev)
		if err != nil {
			t.Fatalf("handler error: %v", err)
		}
		var body map[string]any
		if strings.TrimSpace(res.Body) != "" {
			if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
				t.Fatalf("body %q: %v", res.Body, err)
			}
		}
		return res.StatusCode, body
	}
	jane := func(t *testing.T) (id string, active bool, groups []string) {
		t.Helper()
		ids, err := s.st.FindIdentitiesByExternalID(context.Background(), janeID)
		if err != nil || len(ids) > 1 {
			t.Fatalf("identities %v, %v", ids, err)
		}
		if len(ids) == 0 {
			return "", false, nil
		}
		ms, err := s.st.GroupsOf(context.Background(), ids[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			groups = append(groups, m.GroupName)
		}
		slices.Sort(groups)
		return ids[0].ID, ids[0].Active, groups
	}

	t.Run("verification", func(t *testing.T) {
		status, body := invoke(t, sample(t, "verify"))
		if status != 200 || body["verification"] != "Me_rShK8JHsTnbyYrWXCEoMGbM_zsZ6k0hLPZ_Pg" {
			t.Fatalf("%d %v", status, body)
		}
	})
	rejected := []struct {
		name   string
		mod    func(*events.APIGatewayV2HTTPRequest)
		status int
	}{
		{"bad auth", func(ev *events.APIGatewayV2HTTPRequest) { ev.Headers["authorization"] = "nope" }, 401},
		{"no auth on verification", func(ev *events.APIGatewayV2HTTPRequest) {
			*ev = sample(t, "verify")
			delete(ev.Headers, "authorization")
		}, 401},
		{"malformed", func(ev *events.APIGatewayV2HTTPRequest) { ev.Body = ev.Body[:len(ev.Body)-10] }, 400},
		{"wrong shape", func(ev *events.APIGatewayV2HTTPRequest) {
			ev.Body = `{"data":{"events":[{"eventType":"user.lifecycle.create"}]}}`
		}, 400},
		{"oversized", func(ev *events.APIGatewayV2HTTPRequest) { ev.Body = `{"x":"` + strings.Repeat("a", 1<<20) + `"}` }, 413},
	}
	for _, r := range rejected {
		t.Run(r.name, func(t *testing.T) {
			ev := sample(t, "user-lifecycle-create")
			r.mod(&ev)
			status, body := invoke(t, ev)
			if status != r.status || body["error"] == nil {
				t.Fatalf("%d %v, want %d with an error", status, body, r.status)
			}
			if id, _, _ := jane(t); id != "" {
				t.Fatal("something was written")
			}
			s.drain(t, 0)
		})
	}

	steps := []struct {
		sample  string
		intents int
		active  bool
		groups  []string
	}{
		{"user-lifecycle-create", 1, true, nil},
		{"user-lifecycle-create", 0, true, nil}, // Okta's redelivery
		{"group-user-membership-add", 1, true, []string{"Sales EMEA"}},
		{"application-user-membership-add", 1, true, []string{"Sales EMEA", "app:Salesforce.com"}},
		{"user-account-privilege-grant", 1, true, []string{"Sales EMEA", "app:Salesforce.com", "privilege:Read-only Administrator"}},
		{"batch", 2, false, []string{"app:Salesforce.com", "privilege:Read-only Administrator"}},
		{"user-lifecycle-reactivate", 1, true, []string{"app:Salesforce.com", "privilege:Read-only Administrator"}},
		{"application-user-membership-remove", 1, false, []string{"app:Salesforce.com", "privilege:Read-only Administrator"}},
	}
	for i, st := range steps {
		t.Run(st.sample, func(t *testing.T) {
			status, body := invoke(t, sample(t, st.sample))
			if status != 200 || body != nil {
				t.Fatalf("step %d: %d %v, want an empty 200", i, status, body)
			}
			id, active, groups := jane(t)
			if id == "" || active != st.active || !slices.Equal(groups, st.groups) {
				t.Fatalf("Jane: id %q active %v groups %v; want active %v groups %v", id, active, groups, st.active, st.groups)
			}
			for _, in := range s.drain(t, st.intents) {
				if in.IdentityID != id || !strings.HasPrefix(in.Reason, "hook.") || in.RequestID == "" {
					t.Errorf("intent %+v", in)
				}
			}
		})
	}
	t.Run("user-lifecycle-delete-initiated", func(t *testing.T) {
		before, _, _ := jane(t)
		if status, _ := invoke(t, sample(t, "user-lifecycle-delete-initiated")); status != 200 {
			t.Fatal(status)
		}
		if id, _, _ := jane(t); id != "" {
			t.Fatal("Jane is still live")
		}
		tomb, err := s.st.GetIdentity(context.Background(), before)
		if err != nil || !tomb.Deleted {
			t.Fatalf("tombstone %+v, %v", tomb, err)
		}
		if got := s.drain(t, 1); got[0].Version != tomb.Version || got[0].Reason != "hook.user.lifecycle.delete.initiated" {
			t.Fatalf("intent %+v", got[0])
		}
	})
}

func TestLambdaNeedsASecret(t *testing.T) {
	newLambdaStack(t)
	t.Setenv("LEARNERLINK_HOOK_SECRET", "")
	if _, err := lambdafn.Hooks(context.Background(), os.Getenv); err == nil || !strings.Contains(err.Error(), "hook secret") {
		t.Fatalf("err = %v, want a missing hook secret", err)
	}
	t.Setenv("LEARNERLINK_HOOK_SECRET", secret)
	t.Setenv("OKTA_API_TOKEN", "")
	if _, err := lambdafn.Hooks(context.Background(), os.Getenv); err == nil || !strings.Contains(err.Error(), "Okta credentials") {
		t.Fatalf("err = %v, want missing Okta credentials", err)
	}
}
