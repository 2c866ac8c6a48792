package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as a fake Lambda function: with
// COLDSTART_HELPER set it behaves as asked instead of running the tests.
func TestMain(m *testing.M) {
	switch os.Getenv("COLDSTART_HELPER") {
	case "":
		os.Exit(m.Run())
	case "poll":
		resp, err := http.Get("http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/next")
		if err == nil {
			resp.Body.Close()
		}
		os.Exit(0)
	case "fail":
		fmt.Fprintln(os.Stderr, "init failed: no table")
		os.Exit(3)
	case "hang":
		time.Sleep(time.Minute)
		os.Exit(0)
	}
}

func TestMeasure(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		helper  string
		wantErr string // "" : a measurement
	}{
		{"poll", ""},
		{"fail", "init failed: no table"},
		{"hang", "no poll within"},
	}
	for _, tc := range tests {
		t.Run(tc.helper, func(t *testing.T) {
			d, err := measure(context.Background(), self, []string{"COLDSTART_HELPER=" + tc.helper}, 2*time.Second)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("measure: %v", err)
			case tc.wantErr == "" && d <= 0:
				t.Errorf("init time %v, want a positive duration", d)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestLambdaEnv(t *testing.T) {
	f := &fakes{secretsURL: "http://s", refuseURL: "http://r"}
	tests := []struct {
		function   string
		wantSecret bool
	}{
		{"scim", true},
		{"worker", true},
		{"hooks", true},
		{"reconcile", true},
		{"sweeper", false}, // as template.yaml: the sweeper has no secret
	}
	for _, tc := range tests {
		env := lambdaEnv(tc.function, f)
		hasSecret := slices.ContainsFunc(env, func(s string) bool { return strings.HasPrefix(s, "LEARNERLINK_SECRET_ID=") })
		if hasSecret != tc.wantSecret {
			t.Errorf("%s: LEARNERLINK_SECRET_ID set = %v, want %v", tc.function, hasSecret, tc.wantSecret)
		}
		for _, v := range []string{"LEARNERLINK_TABLE=", "LEARNERLINK_QUEUE_URL=", "AWS_ENDPOINT_URL_SECRETS_MANAGER=http://s"} {
			if !slices.ContainsFunc(env, func(s string) bool { return strings.HasPrefix(s, v) }) {
				t.Errorf("%s: no %s", tc.function, v)
			}
		}
	}
}
