package lambdafn

import (
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
)

// ReconcileHandler runs (or resumes) one reconciliation on a schedule.
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
	if s.Target == "absorb" {
		opts.GroupsField = s.Absorb.GroupsField
	}
	tgt, reviews, err := d.target(getenv)
	if err != nil {
		return nil, err
	}
	dir, err := oktaDirectory(s.Okta, d)
	if err != nil {
		return nil, err
	}
	deps := reconcile.Deps{Store: d.store, Queue: d.fan, Target: tgt, Reviews: reviews, Logger: d.log, Metrics: os.Stdout}
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
		rep, err := reconcile.Run(ctx, deps, o)
		if errors.Is(err, reconcile.ErrBusy) {
			// The previous invocation still holds the lease: not a failure.
			d.log.InfoContext(ctx, "reconcile: another run is in progress; nothing to do", "err", err)
			return &reconcile.Report{Target: tgt.Name, Skipped: err.Error()}, nil
		}
		return rep, err
	}, nil
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
