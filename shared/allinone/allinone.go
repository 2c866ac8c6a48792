// Package allinone is the local runner: SCIM API, embedded store and queue,
// workers, sweeper and the target, in one process with no AWS account.
// infra/local's main only reads the environment and calls Start.
package allinone

import (
	"cmp"
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
	"strings"
	"sync"
	"time"

	"github.com/learnerlink/learnerlink/shared/admin"
	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/connector/sandbox"
	"github.com/learnerlink/learnerlink/shared/hooks"
	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/disk"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/review"
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
	Sandbox *sandbox.LMS // nil unless a target is the sandbox

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
	if r.Queue, err = disk.Open(filepath.Join(s.DataDir, "queue.db"), disk.Options{
		MaxReceives: s.MaxReceives,
		// Long enough for a batch whose requests wait out 429s and in-call
		// retries (an expired message is redelivered while still being
		// worked on, spending a receive); a crashed runner's messages
		// come back at once on restart anyway.
		VisibilityTimeout: 5 * time.Minute,
	}); err != nil {
		return nil, fmt.Errorf("allinone: %w", err)
	}
	if usesSandbox(s) {
		if r.Sandbox, err = sandbox.Open(filepath.Join(s.DataDir, "sandbox.db")); err != nil {
			return nil, fmt.Errorf("allinone: %w", err)
		}
	}
	// Each target has its own limiter and token cache: one target's
	// throttling never slows another.
	targets, err := target.BuildAll(s, func(_ string, rate float64) target.Shared {
		sh := target.Shared{
			Limiter: target.NewLocalLimiter(rate, throttle.WithLogger(o.Logger)),
			Tokens:  tokencache.NewLocal(),
		}
		if r.Sandbox != nil {
			sh.Sandbox = r.Sandbox
		}
		return sh
	}, o.Getenv, o.Logger)
	if err != nil {
		return nil, err
	}
	// Producers enqueue one intent per target: each (identity, target)
	// stream is retried on its own.
	fan := queue.FanOut{Next: r.Queue, Targets: target.Names(targets)}
	reviews, err := review.New(r.Store, review.Config{Queue: fan, Targets: targets, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	w, err := worker.New(r.Store, targets, worker.Config{Logger: o.Logger, OnConflict: reviews.Park,
		MaxReceives: s.MaxReceives, RetryFor: s.RetryFor})
	if err != nil {
		return nil, err
	}
	api, err := scim.NewHandler(r.Store, fan, scim.Config{Token: token, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	oktaClient, err := okta.FromSettings(s.Okta, nil, o.Logger)
	if err != nil {
		return nil, fmt.Errorf("allinone: %w", err)
	}
	hookSecret, err := hookSecret(s, o.Stdout)
	if err != nil {
		return nil, err
	}
	var dir hooks.Directory
	var recDir reconcile.Directory
	if oktaClient != nil {
		dir = oktaClient
		if s.Okta.AppID != "" {
			recDir = reconcile.OktaDirectory{Client: oktaClient, AppID: s.Okta.AppID}
		}
	}
	hk, err := hooks.NewHandler(r.Store, fan, dir, hooks.Config{Secret: hookSecret, AuthHeader: s.HookAuthHeader, AppID: s.Okta.AppID, Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("allinone: %w", err)
	}
	// Reconciliation covers every target that can list its learners.
	recDeps := reconcile.Deps{Store: r.Store, Queue: fan, Directory: recDir, Reviews: reviews, Logger: o.Logger}
	recOpts := reconcile.Options{MaxDeactivateShare: s.Reconcile.MaxDeactivateShare, CreateIdentities: s.Reconcile.CreateIdentities, Every: s.Reconcile.Every}
	recTargets := reconcileTargets(s, targets)
	reconcileNow := func(ctx context.Context, dryRun bool) (*reconcile.Report, error) {
		o := recOpts
		o.DryRun = dryRun || s.Reconcile.DryRun
		return reconcile.RunAll(ctx, recDeps, recTargets, o)
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
	mux.Handle(hooks.Path, hk)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("/admin/", admin.NewHandler(admin.Deps{Store: r.Store, Reviews: reviews, Reconcile: reconcileNow, Logger: o.Logger}, token))
	// Views that exist only in the local runner.
	mux.Handle("GET /admin/sandbox", r.bearer(http.HandlerFunc(r.serveSandbox)))
	mux.Handle("GET /admin/deadletters", r.bearer(http.HandlerFunc(r.serveDeadLetters)))
	// No WriteTimeout: an on-demand reconciliation of a large tenant takes
	// minutes; request bodies are bounded by the handlers.
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}

	ctx, r.cancel = context.WithCancel(ctx)
	sw := &sweeper.Sweeper{St: r.Store, Q: fan, Threshold: s.PendingThreshold, Logger: o.Logger}
	r.wg.Add(3)
	// Batch 0: as many as the worker syncs at once. The disk queue hands
	// out one message per identity per receive, so a bigger batch would
	// coalesce nothing and only leave messages waiting while received.
	go func() { defer r.wg.Done(); _ = w.Run(ctx, r.Queue, s.Workers, 0) }()
	go func() { defer r.wg.Done(); sw.Run(ctx, time.Minute) }()
	go func() {
		defer r.wg.Done()
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Logger.Error("http server stopped", "err", err)
		}
	}()
	go func() { <-ctx.Done(); _ = r.Stop() }()
	ok = true
	o.Logger.Info("learnerlink local runner started", "scim_base_url", r.url+"/scim/v2", "targets", target.Names(targets), "data_dir", s.DataDir)
	return r, nil
}

// usesSandbox reports whether a configured target is the built-in LMS.
func usesSandbox(s config.Settings) bool {
	if len(s.Targets) == 0 {
		return s.Target == "sandbox"
	}
	for _, t := range s.Targets {
		if t.Type == "sandbox" {
			return true
		}
	}
	return false
}

// absorbGroupsField is an Absorb target's groups field when the config
// names none (as target.BuildAll builds it).
const absorbGroupsField = "customFields.string30"

// reconcileTargets pairs every target with what reconciliation compares
// beyond its mapping: an Absorb target's groups field (the others carry
// no groups in a field).
func reconcileTargets(s config.Settings, targets []worker.Target) []reconcile.Target {
	fields := map[string]string{}
	if len(s.Targets) == 0 && s.Target == "absorb" {
		fields[s.Target] = s.Absorb.GroupsField
	}
	for _, t := range s.Targets {
		if t.Type == "absorb" {
			fields[t.Name] = cmp.Or(t.GroupsField, absorbGroupsField)
		}
	}
	out := make([]reconcile.Target, len(targets))
	for i, t := range targets {
		out[i] = reconcile.Target{Target: t, GroupsField: fields[t.Name]}
	}
	return out
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
	if r.Sandbox != nil {
		errs = append(errs, r.Sandbox.Close())
	}
	if r.Store != nil {
		errs = append(errs, r.Store.Close())
	}
	return errors.Join(errs...)
}

// scimToken returns the configured token, or the one generated on an
// earlier start, or generates, saves (0600) and prints a new one.
func scimToken(s config.Settings, out io.Writer) (string, error) {
	return savedSecret(s.SCIMToken, filepath.Join(s.DataDir, "scim-token"), "SCIM bearer token", out)
}

func savedSecret(configured, path, what string, out io.Writer) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	tok := rand.Text() + rand.Text()
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("allinone: save %s: %w", what, err)
	}
	fmt.Fprintf(out, "Generated %s (saved in %s, shown only now):\n%s\n", what, path, tok)
	return tok, nil
}

// bearer guards the local-only views with the SCIM token.
func (r *Runner) bearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !scim.BearerOK(req, r.token) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// serveSandbox shows the learners in the built-in LMS.
func (r *Runner) serveSandbox(w http.ResponseWriter, req *http.Request) {
	if r.Sandbox == nil {
		http.Error(w, "the target is not the sandbox", http.StatusNotFound)
		return
	}
	writeJSON(w, r.Sandbox.Snapshot())
}

// serveDeadLetters shows what is parked in the dead-letter queue.
func (r *Runner) serveDeadLetters(w http.ResponseWriter, req *http.Request) {
	v, err := r.Queue.DeadLetters(req.Context(), 100)
	if err != nil {
		r.log.ErrorContext(req.Context(), "dead letters view failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeJSON(w, v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// hookSecret returns the configured event hook secret, or the one generated
// on an earlier start, or generates, saves (0600) and prints a new one.
func hookSecret(s config.Settings, out io.Writer) (string, error) {
	return savedSecret(s.HookSecret, filepath.Join(s.DataDir, "hook-secret"), "Okta event hook secret", out)
}
