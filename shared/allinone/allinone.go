// Package allinone is the local runner: SCIM API, embedded store and queue,
// workers, sweeper and the target, in one process with no AWS account.
// infra/local's main only reads the environment and calls Start.
package allinone

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/queue/disk"
	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
	"github.com/learnerlink/learnerlink/shared/sweeper"
	"github.com/learnerlink/learnerlink/shared/target"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/tokencache"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// Runner is a started local runner.
type Runner struct {
	url     string
	token   string
	Store   *bolt.Store
	Queue   *disk.Queue
	Sandbox *sandbox.LMS // nil unless the target is the sandbox

	srv    *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *slog.Logger
	once   sync.Once
	err    error
}

// Options are what Start needs besides the settings.
type Options struct {
	Getenv func(string) string // os.Getenv
	Logger *slog.Logger
	Stdout io.Writer // where a generated token is printed, once
	// Listener, if set, is used instead of listening on Settings.Addr.
	Listener net.Listener
}

// Start opens the data directory, starts serving and working, and returns.
// Stop (or cancelling ctx) shuts everything down cleanly.
func Start(ctx context.Context, s config.Settings, o Options) (*Runner, error) {
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("allinone: data dir: %w", err)
	}
	token, err := scimToken(s, o.Stdout)
	if err != nil {
		return nil, err
	}
	r := &Runner{token: token, log: o.Logger}
	ok := false
	defer func() {
		if !ok {
			r.closeStores()
		}
	}()
	if r.Store, err = bolt.Open(filepath.Join(s.DataDir, "store.db")); err != nil {
		return nil, fmt.Errorf("allinone: %w", err)
	}
	if r.Queue, err = disk.Open(filepath.Join(s.DataDir, "queue.db"), disk.Options{}); err != nil {
		return nil, fmt.Errorf("allinone: %w", err)
	}
	sh := target.Shared{
		Limiter: throttle.NewLocal(s.Absorb.RateLimit, max(1, int(s.Absorb.RateLimit))),
		Tokens:  tokencache.NewLocal(),
	}
	if s.Target == "sandbox" {
		if r.Sandbox, err = sandbox.Open(filepath.Join(s.DataDir, "sandbox.json")); err != nil {
			return nil, fmt.Errorf("allinone: %w", err)
		}
		sh.Sandbox = r.Sandbox
	}
	tgt, err := target.Build(s, sh, o.Getenv, o.Logger)
	if err != nil {
		return nil, err
	}
	w, err := worker.New(r.Store, []worker.Target{tgt}, worker.Config{Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	api, err := scim.NewHandler(r.Store, r.Queue, scim.Config{Token: token, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", s.Addr); err != nil {
			return nil, fmt.Errorf("allinone: listen: %w", err)
		}
	}
	r.url = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/scim/v2/", api)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("GET /admin/", r.admin(http.HandlerFunc(r.serveAdmin)))
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute}

	ctx, r.cancel = context.WithCancel(ctx)
	sw := &sweeper.Sweeper{St: r.Store, Q: r.Queue, Threshold: s.PendingThreshold, Logger: o.Logger}
	r.wg.Add(3)
	go func() { defer r.wg.Done(); _ = w.Run(ctx, r.Queue, s.Workers, 10) }()
	go func() { defer r.wg.Done(); sw.Run(ctx, time.Minute) }()
	go func() {
		defer r.wg.Done()
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error("http server stopped", "err", err)
		}
	}()
	go func() { <-ctx.Done(); _ = r.Stop() }()
	ok = true
	o.Logger.Info("learnerlink local runner started", "scim_base_url", r.url+"/scim/v2", "target", s.Target, "data_dir", s.DataDir)
	return r, nil
}

// URL is the runner's base URL (no trailing slash).
func (r *Runner) URL() string { return r.url }

// Token is the SCIM bearer token in force.
func (r *Runner) Token() string { return r.token }

// Stop shuts down: stops accepting requests (in-flight ones finish), stops
// the workers (a message being processed is finished or left to its
// visibility timeout, never lost), and closes the store and queue.
func (r *Runner) Stop() error {
	r.once.Do(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := r.srv.Shutdown(sctx)
		r.cancel()
		r.wg.Wait()
		r.err = errors.Join(err, r.closeStores())
	})
	return r.err
}

func (r *Runner) closeStores() error {
	var errs []error
	if r.Queue != nil {
		errs = append(errs, r.Queue.Close())
	}
	if r.Store != nil {
		errs = append(errs, r.Store.Close())
	}
	return errors.Join(errs...)
}

// scimToken returns the configured token, or the one generated on an
// earlier start, or generates, saves (0600) and prints a new one.
func scimToken(s config.Settings, out io.Writer) (string, error) {
	if s.SCIMToken != "" {
		return s.SCIMToken, nil
	}
	path := filepath.Join(s.DataDir, "scim-token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	tok := rand.Text() + rand.Text()
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("allinone: save token: %w", err)
	}
	fmt.Fprintf(out, "Generated SCIM bearer token (saved in %s, shown only now):\n%s\n", path, tok)
	return tok, nil
}

// admin guards the admin routes with the same bearer token.
func (r *Runner) admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !scim.BearerOK(req, r.token) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// serveAdmin answers the read-only views an admin needs locally:
// /admin/sandbox (learners in the built-in LMS), /admin/audit?identity=ID,
// /admin/deadletters.
func (r *Runner) serveAdmin(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	var v any
	var err error
	switch strings.TrimPrefix(req.URL.Path, "/admin/") {
	case "sandbox":
		if r.Sandbox == nil {
			http.Error(w, "the target is not the sandbox", http.StatusNotFound)
			return
		}
		v = r.Sandbox.Snapshot()
	case "audit":
		limit, _ := strconv.Atoi(req.URL.Query().Get("limit"))
		if limit <= 0 || limit > 1000 {
			limit = 100
		}
		v, err = r.Store.ListAudit(ctx, req.URL.Query().Get("identity"), limit)
	case "deadletters":
		v, err = r.Queue.DeadLetters(ctx, 100)
	default:
		http.NotFound(w, req)
		return
	}
	if err != nil {
		r.log.ErrorContext(ctx, "admin view failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
