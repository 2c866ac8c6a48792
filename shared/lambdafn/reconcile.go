package lambdafn

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// ReconcileHandler runs (or resumes) one reconciliation of every
// configured target on a schedule (see reconcile.RunAll: with several
// targets the report sums them and lists each in Targets).
type ReconcileHandler func(context.Context, events.EventBridgeEvent) (*reconcile.Report, error)

// ReconcileDetail is what a schedule's event detail may carry.
type ReconcileDetail struct {
	// DryRun, when present, overrides LEARNERLINK_RECONCILE_DRY_RUN.
	DryRun *bool `json:"dryRun"`
}

// reconcileMargin is kept between the run's deadline and the Lambda's, to
// save the checkpoint and the report.
const reconcileMargin = 60 * time.Second

// Reconcile builds the reconciliation function's handler. Besides the
// common settings it reads:
//
//	LEARNERLINK_RECONCILE_DRY_RUN                report only (default false; the event's {"dryRun": …} wins)
//	LEARNERLINK_RECONCILE_MAX_DEACTIVATE_SHARE   guard: largest share of active learners one run deactivates (default 0.1)
//	LEARNERLINK_RECONCILE_CREATE_IDENTITIES      create identities for Okta users assigned but unknown here (default true)
//	LEARNERLINK_RECONCILE_EVERY                  skip a new run if the last finished less than this ago (default 0: every invocation)
//	OKTA_ORG_URL, OKTA_APP_ID                    the Okta org and app whose assignments are compared (both, or neither)
//	OKTA_API_TOKEN                               an API token (else oktaApiToken in the secret), or
//	OKTA_CLIENT_ID, OKTA_KEY_ID                  an OAuth service app (else oktaClientId/oktaKeyId in the secret), with
//	                                             oktaPrivateKey in the secret (or OKTA_PRIVATE_KEY)
//
// The run stops a minute before the Lambda's deadline and resumes on the
// next invocation.
func Reconcile(ctx context.Context, getenv func(string) string) (ReconcileHandler, error) {
	d, err := load(ctx, getenv)
	if err != nil {
		return nil, err
	}
	s := d.settings
	opts := reconcile.Options{
		DryRun: s.Reconcile.DryRun, MaxDeactivateShare: s.Reconcile.MaxDeactivateShare,
		CreateIdentities: s.Reconcile.CreateIdentities, Every: s.Reconcile.Every,
	}
	tgts, reviews, err := d.targets(getenv)
	if err != nil {
		return nil, err
	}
	rts := reconcileTargets(s, tgts)
	busyTarget := "" // a skipped run's report names its target when there is one
	if len(rts) == 1 {
		busyTarget = rts[0].Name
	}
	dir, err := oktaDirectory(s.Okta, d)
	if err != nil {
		return nil, err
	}
	deps := reconcile.Deps{Store: d.store, Queue: d.fan, Reviews: reviews, Logger: d.log, Metrics: os.Stdout}
	if dir != nil {
		deps.Directory = dir
	}
	return func(ctx context.Context, ev events.EventBridgeEvent) (*reconcile.Report, error) {
		o := opts
		if len(ev.Detail) > 0 {
			var det ReconcileDetail
			if err := json.Unmarshal(ev.Detail, &det); err != nil {
				return nil, fmt.Errorf("lambdafn: reconcile event detail: %w", err)
			}
			if det.DryRun != nil {
				o.DryRun = *det.DryRun
			}
		}
		if dl, ok := ctx.Deadline(); ok {
			margin := reconcileMargin
			if left := time.Until(dl); left < 4*margin {
				margin = left / 4
			}
			o.Deadline = dl.Add(-margin)
		}
		rep, err := reconcile.RunAll(ctx, deps, rts, o)
		if errors.Is(err, reconcile.ErrBusy) {
			// The previous invocation still holds the lease: not a failure.
			// (A target's own failure is a *reconcile.TargetsError, which
			// never reads as ErrBusy.)
			d.log.InfoContext(ctx, "reconcile: another run is in progress; nothing to do", "err", err)
			return &reconcile.Report{Target: busyTarget, Skipped: err.Error()}, nil
		}
		return rep, err
	}, nil
}

// absorbGroupsField is an Absorb target's groups field when the config
// names none (as target.BuildAll builds it).
const absorbGroupsField = "customFields.string30"

// reconcileTargets pairs every built target with what reconciliation
// compares beyond its mapping: an Absorb target's groups field (the
// others carry no groups in a field).
func reconcileTargets(s config.Settings, tgts []worker.Target) []reconcile.Target {
	fields := map[string]string{}
	if len(s.Targets) == 0 && s.Target == "absorb" {
		fields[s.Target] = s.Absorb.GroupsField
	}
	for _, spec := range s.Targets {
		if spec.Type == "absorb" {
			fields[spec.Name] = cmp.Or(spec.GroupsField, absorbGroupsField)
		}
	}
	out := make([]reconcile.Target, len(tgts))
	for i, t := range tgts {
		out[i] = reconcile.Target{Target: t, GroupsField: fields[t.Name]}
	}
	return out
}

// oktaDirectory is the Okta side of reconciliation; nil when no Okta org is
// configured.
func oktaDirectory(o config.Okta, d *deps) (reconcile.Directory, error) {
	if o.OrgURL == "" {
		return nil, nil
	}
	if o.AppID == "" {
		return nil, errors.New("lambdafn: reconciliation against Okta needs OKTA_APP_ID as well as OKTA_ORG_URL")
	}
	c, err := okta.FromSettings(o, nil, d.log)
	if err != nil {
		return nil, fmt.Errorf("lambdafn: %w", err)
	}
	return reconcile.OktaDirectory{Client: c, AppID: o.AppID}, nil
}
