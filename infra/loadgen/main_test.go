package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/learnerlink/learnerlink/shared/allinone"
	"github.com/learnerlink/learnerlink/shared/config"
)

func TestParse(t *testing.T) {
	noEnv := func(string) string { return "" }
	cases := []struct {
		name    string
		args    []string
		getenv  func(string) string
		wantErr string
	}{
		{"defaults with a token", []string{"-token", "t"}, noEnv, ""},
		{"token from the environment", nil, func(k string) string { return map[string]string{"LEARNERLINK_SCIM_TOKEN": "t"}[k] }, ""},
		{"localhost", []string{"-token", "t", "-url", "http://localhost:9/scim/v2"}, noEnv, ""},
		{"IPv6 loopback", []string{"-token", "t", "-url", "http://[::1]:8080/scim/v2"}, noEnv, ""},
		{"another loopback address", []string{"-token", "t", "-url", "https://127.1.2.3/scim/v2"}, noEnv, ""},
		{"no token", nil, noEnv, "no token"},
		{"remote host", []string{"-token", "t", "-url", "https://example.com/scim/v2"}, noEnv, "only loopback"},
		{"private address", []string{"-token", "t", "-url", "http://10.0.0.1:8080/scim/v2"}, noEnv, "only loopback"},
		{"unspecified address", []string{"-token", "t", "-url", "http://0.0.0.0:8080/scim/v2"}, noEnv, "only loopback"},
		{"name that merely starts like loopback", []string{"-token", "t", "-url", "http://127.0.0.1.nip.io/scim/v2"}, noEnv, "only loopback"},
		{"not http", []string{"-token", "t", "-url", "ftp://127.0.0.1/"}, noEnv, "http(s)"},
		{"zero clients", []string{"-token", "t", "-clients", "0"}, noEnv, "-clients"},
		{"too many users", []string{"-token", "t", "-n", "1000000"}, noEnv, "-n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.args, tc.getenv)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(i+1) * time.Millisecond
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0, time.Millisecond}}
	for _, tc := range cases {
		if got := percentile(lat, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("empty p50 = %v", got)
	}
}

// TestRun drives a real local runner with a small load and checks every
// operation is reported without errors and the token is never printed.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	getenv := func(k string) string {
		return map[string]string{"LEARNERLINK_DATA_DIR": dir, "LEARNERLINK_SCIM_TOKEN": "loadgen-test-token-0123456789"}[k]
	}
	s, err := config.FromEnv(getenv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := allinone.Start(context.Background(), s, allinone.Options{Getenv: getenv, Listener: ln})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })

	var out bytes.Buffer
	err = run(context.Background(), []string{"-url", r.URL() + "/scim/v2", "-clients", "4", "-n", "40", "-cleanup"}, getenv, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, op := range []string{"create", "patch", "get", "filtered list", "delete"} {
		var line string
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), op+" ") {
				line = l
			}
		}
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), op))
		if len(f) < 2 || f[0] != "40" || f[1] != "0" {
			t.Errorf("%s: line %q, want 40 requests and 0 errors\n%s", op, line, out.String())
		}
	}
	if strings.Contains(out.String(), "loadgen-test-token") {
		t.Error("the token was printed")
	}
	if strings.Contains(out.String(), "first error") {
		t.Errorf("errors reported:\n%s", out.String())
	}
}

// TestRefusesRemote never sends anything to a non-loopback URL.
func TestRefusesRemote(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"-url", "http://192.0.2.1/scim/v2", "-token", "t", "-n", "1"}, func(string) string { return "" }, &out)
	if err == nil || !strings.Contains(err.Error(), "only loopback") || out.Len() != 0 {
		t.Fatalf("err %v, output %q; want a refusal before any output", err, out.String())
	}
}
