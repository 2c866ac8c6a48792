// Package testenv finds the AWS-compatible servers .ci/run starts for the
// conformance suites (see infra/stack/stack.sh).
package testenv

import (
	"net"
	"net/url"
	"os"
	"testing"
	"time"
)

// Endpoint returns the URL in the environment variable, checking that
// something answers there. Unset: the test is skipped (a developer's quick
// run). Set but unreachable: the test fails loudly (CI must not skip).
func Endpoint(t testing.TB, envVar string) string {
	t.Helper()
	raw := os.Getenv(envVar)
	if raw == "" {
		t.Skipf("%s is unset; run `bash .ci/run` (or source infra/stack/stack.sh && stack_start) to test against the real server", envVar)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("%s=%q is not a URL: %v", envVar, raw, err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
	if err != nil {
		t.Fatalf("%s=%s is set but unreachable: %v", envVar, raw, err)
	}
	_ = c.Close()
	return raw
}

// DynamoDB is Endpoint for LEARNERLINK_TEST_DYNAMODB_ENDPOINT.
func DynamoDB(t testing.TB) string { return Endpoint(t, "LEARNERLINK_TEST_DYNAMODB_ENDPOINT") }

// SQS is Endpoint for LEARNERLINK_TEST_SQS_ENDPOINT.
func SQS(t testing.TB) string { return Endpoint(t, "LEARNERLINK_TEST_SQS_ENDPOINT") }
