package lambdafn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/learnerlink/learnerlink/shared/okta"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/target"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/tokencache"
	"github.com/learnerlink/learnerlink/shared/worker"
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

// oktaSecrets are the Okta credentials in the Secrets Manager secret.
type oktaSecrets struct {
	APIToken   string `json:"oktaApiToken"`
	ClientID   string `json:"oktaClientId"`
	PrivateKey string `json:"oktaPrivateKey"`
	KeyID      string `json:"oktaKeyId"`
}

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
	opts, err := reconcileOptions(getenv)
	if err != nil {
		return nil, err
	}
	if s.Target == "absorb" {
		opts.GroupsField = s.Absorb.GroupsField
	}
	sh := target.Shared{
		Limiter: throttle.NewShared(d.ddb, s.Table, s.Target, s.Absorb.RateLimit, max(1, int(s.Absorb.RateLimit/2)), throttle.WithLogger(d.log)),
		Tokens:  tokencache.NewDynamo(d.ddb, s.Table, s.Target),
	}
	tgt, err := target.Build(s, sh, getenv, d.log)
	if err != nil {
		return nil, err
	}
	dir, err := oktaDirectory(ctx, getenv, s.SecretID)
	if err != nil {
		return nil, err
	}
	reviews, err := review.New(d.store, review.Config{Queue: d.queue, Targets: []worker.Target{tgt}, Logger: d.log})
	if err != nil {
		return nil, err
	}
	deps := reconcile.Deps{Store: d.store, Queue: d.queue, Target: tgt, Reviews: reviews, Logger: d.log, Metrics: os.Stdout}
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

func reconcileOptions(getenv func(string) string) (reconcile.Options, error) {
	var o reconcile.Options
	var errs []error
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	o.CreateIdentities = true
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"LEARNERLINK_RECONCILE_DRY_RUN", &o.DryRun}, {"LEARNERLINK_RECONCILE_CREATE_IDENTITIES", &o.CreateIdentities}} {
		if v := get(b.name); v != "" {
			x, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s must be true or false", b.name))
			}
			*b.dst = x
		}
	}
	if v := get("LEARNERLINK_RECONCILE_MAX_DEACTIVATE_SHARE"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1 {
			errs = append(errs, errors.New("LEARNERLINK_RECONCILE_MAX_DEACTIVATE_SHARE must be a number above 0 and at most 1"))
		}
		o.MaxDeactivateShare = f
	}
	if v := get("LEARNERLINK_RECONCILE_EVERY"); v != "" {
		dur, err := time.ParseDuration(v)
		if err != nil || dur < 0 {
			errs = append(errs, errors.New("LEARNERLINK_RECONCILE_EVERY must be a duration such as 20h"))
		}
		o.Every = dur
	}
	return o, errors.Join(errs...)
}

// oktaDirectory builds the Okta side from the environment and the secret;
// nil when OKTA_ORG_URL and OKTA_APP_ID are unset.
func oktaDirectory(ctx context.Context, getenv func(string) string, secretID string) (reconcile.Directory, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	orgURL, appID := get("OKTA_ORG_URL"), get("OKTA_APP_ID")
	switch {
	case orgURL == "" && appID == "":
		return nil, nil
	case orgURL == "" || appID == "":
		return nil, errors.New("lambdafn: set both OKTA_ORG_URL and OKTA_APP_ID, or neither")
	}
	cred := oktaSecrets{APIToken: getenv("OKTA_API_TOKEN"), ClientID: get("OKTA_CLIENT_ID"),
		PrivateKey: getenv("OKTA_PRIVATE_KEY"), KeyID: get("OKTA_KEY_ID")}
	if cred.APIToken == "" && cred.PrivateKey == "" && secretID != "" {
		sec, err := readOktaSecrets(ctx, secretID)
		if err != nil {
			return nil, err
		}
		fill := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		fill(&cred.APIToken, sec.APIToken)
		fill(&cred.ClientID, sec.ClientID)
		fill(&cred.PrivateKey, sec.PrivateKey)
		fill(&cred.KeyID, sec.KeyID)
	}
	cfg := okta.Config{OrgURL: orgURL}
	switch {
	case cred.APIToken != "":
		cfg.APIToken = cred.APIToken
	case cred.ClientID != "" && cred.PrivateKey != "":
		cfg.OAuth = &okta.OAuth{ClientID: cred.ClientID, PrivateKeyPEM: cred.PrivateKey, KeyID: cred.KeyID}
	default:
		return nil, errors.New("lambdafn: no Okta credentials (OKTA_API_TOKEN or oktaApiToken in the secret, or an OAuth client id and private key)")
	}
	c, err := okta.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("lambdafn: %w", err)
	}
	return reconcile.OktaDirectory{Client: c, AppID: appID}, nil
}

func readOktaSecrets(ctx context.Context, secretID string) (oktaSecrets, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return oktaSecrets{}, fmt.Errorf("lambdafn: aws config: %w", err)
	}
	raw, err := secrets{secretsmanager.NewFromConfig(cfg)}.SecretString(ctx, secretID)
	if err != nil {
		return oktaSecrets{}, fmt.Errorf("lambdafn: read secret: %w", err)
	}
	var sec oktaSecrets
	if err := json.Unmarshal([]byte(raw), &sec); err != nil {
		// Never echo the secret's content.
		return oktaSecrets{}, errors.New("lambdafn: the secret is not a JSON object of credentials")
	}
	return sec, nil
}
