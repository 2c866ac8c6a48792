// Command local runs learnerlink all-in-one on this machine: the SCIM API,
// an embedded on-disk store and queue, the workers and the target (the
// built-in sandbox LMS unless LEARNERLINK_TARGET says otherwise). No AWS
// account is needed. Settings come from the environment (see README).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/learnerlink/learnerlink/shared/allinone"
	"github.com/learnerlink/learnerlink/shared/config"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "learnerlink:", err)
		os.Exit(1)
	}
}

func run() error {
	s, err := config.FromEnv(os.Getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: s.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := allinone.Start(ctx, s, allinone.Options{Getenv: os.Getenv, Logger: log, Stdout: os.Stdout})
	if err != nil {
		return err
	}
	fmt.Printf("learnerlink is running\n  SCIM base URL:    %s/scim/v2\n  Okta event hook:  %s/okta/hooks\n  admin API:        %s/admin/ (reviews, reconcile, audit, sandbox, deadletters; same bearer token)\nPress Ctrl-C to stop.\n", r.URL(), r.URL(), r.URL())
	<-ctx.Done()
	log.Info("shutting down")
	return r.Stop()
}
