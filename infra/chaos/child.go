package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// child is the real local runner (infra/local's binary) as a subprocess:
// the most honest way to crash it is SIGKILL, and to recover it, a fresh
// process on the same data directory.
type child struct {
	bin     string
	env     []string
	addr    string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// buildRunner compiles infra/local into dir and returns the binary's path.
func buildRunner(ctx context.Context, dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go command is needed to build infra/local (or pass -bin): %w", err)
	}
	out := filepath.Join(dir, "learnerlink-local")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "github.com/learnerlink/learnerlink/infra/local")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build infra/local: %w\n%s", err, b)
	}
	return out, nil
}

// freeAddr picks a loopback port the runner can listen on (and keep across
// restarts, so clients need no new URL).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs the binary and waits until it answers /healthz.
func (c *child) start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("runner already running")
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.bin)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start runner: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	c.cmd, c.exited = cmd, exited
	c.starts++
	// The port may still be held for a moment by the killed process.
	deadline := time.Now().Add(30 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for {
		res, err := hc.Get("http://" + c.addr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			c.cmd = nil
			return fmt.Errorf("runner exited during start (see %s)", c.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("runner not healthy after 30s (see %s)", c.logPath)
		}
	}
}

// kill crashes the runner: SIGKILL, no drain, no deferred cleanups.
func (c *child) kill() error { return c.signal(syscall.SIGKILL, 0) }

// stop shuts the runner down cleanly (SIGTERM), killing it if it takes
// longer than 30 s.
func (c *child) stop() error { return c.signal(syscall.SIGTERM, 30*time.Second) }

func (c *child) signal(sig syscall.Signal, grace time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	if err := c.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if grace > 0 {
		select {
		case <-c.exited:
		case <-time.After(grace):
			_ = c.cmd.Process.Kill()
		}
	}
	<-c.exited
	c.cmd = nil
	return nil
}
