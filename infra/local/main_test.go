package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Ceilings, not expected durations: how long the binary may take to come
// up, and to exit after a signal.
const (
	startDeadline = 30 * time.Second
	exitDeadline  = 15 * time.Second
)

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildBinary compiles this command once per test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "learnerlink-local")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// childEnv is the test's environment without learnerlink's settings, plus
// extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEARNERLINK_") && !strings.HasPrefix(kv, "ABSORB_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// TestSignals runs the real binary, checks it serves, then stops it with
// each signal a terminal or a service manager sends: it must exit 0.
func TestSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			dataDir := t.TempDir()
			addr := freeAddr(t)
			stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
			cmd := exec.Command(bin)
			cmd.Env = childEnv("LEARNERLINK_ADDR="+addr, "LEARNERLINK_DATA_DIR="+dataDir)
			cmd.Stdout, cmd.Stderr = stdout, stderr
			if err := cmd.Start(); err != nil {
				t.Fatalf("start: %v", err)
			}
			// done closes when the process has exited; waitErr is then set.
			done := make(chan struct{})
			var waitErr error
			go func() { waitErr = cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				// Only if the test failed before the exit: never leave it running.
				select {
				case <-done:
				default:
					_ = cmd.Process.Kill()
					<-done
				}
			})
			base := "http://" + addr
			waitHealthy(t, base, done, stderr)

			b, err := os.ReadFile(filepath.Join(dataDir, "scim-token"))
			if err != nil {
				t.Fatalf("token file: %v", err)
			}
			tok := strings.TrimSpace(string(b))
			if n := strings.Count(stdout.String(), tok); n != 1 {
				t.Errorf("token printed %d times on stdout, want once", n)
			}
			if !strings.Contains(stdout.String(), base+"/scim/v2") {
				t.Errorf("stdout does not show the SCIM base URL:\n%s", stdout)
			}
			scimCall(t, base, tok)

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatalf("signal: %v", err)
			}
			select {
			case <-done:
				if waitErr != nil {
					t.Fatalf("exit after %v: %v\nstderr:\n%s", sig, waitErr, stderr)
				}
			case <-time.After(exitDeadline):
				t.Fatalf("still running %s after %v\nstderr:\n%s", exitDeadline, sig, stderr)
			}
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			if strings.Contains(stderr.String(), tok) {
				t.Errorf("the token appears in the logs")
			}
		})
	}
}

// waitHealthy polls /healthz until it answers 200, the process exits, or
// the deadline passes.
func waitHealthy(t *testing.T, base string, done <-chan struct{}, stderr *lockedBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startDeadline)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if res, err := hc.Get(base + "/healthz"); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			t.Fatalf("exited before serving\nstderr:\n%s", stderr)
		case <-ctx.Done():
			t.Fatalf("no healthy /healthz within %s\nstderr:\n%s", startDeadline, stderr)
		case <-tick.C:
		}
	}
}

// scimCall creates a user and reads it back through the list.
func scimCall(t *testing.T, base, tok string) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	do := func(method, path, body string, want int) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/scim+json")
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, want, b)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/scim+json") {
			t.Errorf("%s %s: Content-Type %q", method, path, ct)
		}
	}
	do("POST", "/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"signal@example.com","active":true}`, http.StatusCreated)
	do("GET", "/scim/v2/Users?filter=userName%20eq%20%22signal@example.com%22", "", http.StatusOK)
}
