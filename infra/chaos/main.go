// Command chaos is learnerlink's convergence suite: it drives the real
// local runner (infra/local's binary, a subprocess) with N Okta- and
// Entra-shaped SCIM changes from concurrent clients — creates, PUT and
// PATCH profile edits, department moves, Push Groups membership changes,
// deactivations, reactivations, DELETEs — generated from a seeded PRNG,
// about 10% of them sent twice and some reordered, while the Absorb
// simulator answers 20% 429s, 5% 500s, 2% never (timeouts) and every
// response late; and it SIGKILLs the runner at random moments while a
// worker is mid-batch, restarting it on the same data directory.
//
// When the runner has settled (nothing pending, the queue empty) it is
// stopped and checked, without reconciliation: every identity's learner
// equals its desired state (the mapped fields, the active flag, the
// groups field), no learner is duplicated, none is missing, and the
// dead-letter queue is empty. A dry-run reconciliation afterwards reports
// whatever drift it would still find.
//
//	go run ./infra/chaos -n 10000                  # the long run (LongConfig; about 20 minutes)
//	go test ./infra/chaos -run TestConvergenceShort # what CI runs (ShortConfig; 1-2 minutes)
//	go run ./infra/chaos -n 1000 -users 100 -renames -spread 30s   # also rename pushed groups
//
// It exits 1 when the run did not converge, 2 on harness trouble.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg := LongConfig()
	flag.IntVar(&cfg.N, "n", cfg.N, "Okta/Entra changes to send")
	flag.IntVar(&cfg.Users, "users", cfg.Users, "people the changes touch (0: n/10)")
	flag.IntVar(&cfg.Groups, "groups", cfg.Groups, "pushed groups (0: users/40, 4 to 16)")
	flag.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent SCIM clients")
	flag.DurationVar(&cfg.Spread, "spread", cfg.Spread, "send the changes over this long (0: as fast as possible)")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "PRNG seed of the workload, the faults and the kill times")
	flag.Float64Var(&cfg.PDup, "dup", cfg.PDup, "share of changes sent twice")
	flag.Float64Var(&cfg.PReorder, "reorder", cfg.PReorder, "share of changes delayed to reorder them")
	flag.IntVar(&cfg.Kills, "kills", cfg.Kills, "how many times to SIGKILL the runner")
	flag.DurationVar(&cfg.KillMin, "kill-min", cfg.KillMin, "shortest time between kills")
	flag.DurationVar(&cfg.KillMax, "kill-max", cfg.KillMax, "longest time between kills")
	flag.Float64Var(&cfg.P429, "p429", cfg.P429, "share of Absorb requests answered 429")
	flag.Float64Var(&cfg.P5xx, "p5xx", cfg.P5xx, "share answered 500")
	flag.Float64Var(&cfg.PTimeout, "ptimeout", cfg.PTimeout, "share never answered (the client times out)")
	flag.DurationVar(&cfg.Latency, "latency", cfg.Latency, "added to every Absorb response")
	flag.Float64Var(&cfg.Rate, "rate", cfg.Rate, "ABSORB_RATE_LIMIT of the runner")
	flag.IntVar(&cfg.Workers, "workers", cfg.Workers, "LEARNERLINK_WORKERS of the runner")
	flag.DurationVar(&cfg.Deadline, "deadline", cfg.Deadline, "give up after this long")
	flag.StringVar(&cfg.Bin, "bin", "", "prebuilt infra/local binary (default: go build it)")
	flag.BoolVar(&cfg.Renames, "renames", cfg.Renames, "also rename pushed groups")
	flag.BoolVar(&cfg.Recreates, "recreates", cfg.Recreates, "also provision deleted users again (same userName and externalId)")
	flag.BoolVar(&cfg.StrictDLQ, "strict-dlq", cfg.StrictDLQ, "fail on any dead letter, also intents that ran out of receives on retryable failures")
	flag.BoolVar(&cfg.Reconcile, "reconcile", cfg.Reconcile, "dry-run reconciliation after the checks and report it")
	flag.BoolVar(&cfg.Verbose, "v", false, "runner logs warnings to its log file (kept with -keep)")
	flag.BoolVar(&cfg.Keep, "keep", false, "keep the data directory and runner log")
	flag.Parse()
	cfg.Progress = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	res.Print(os.Stdout)
	if cfg.Keep {
		fmt.Fprintln(os.Stdout, "data kept in", res.DataDir)
	}
	if len(res.Failures()) > 0 {
		os.Exit(1)
	}
}
