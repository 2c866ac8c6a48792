// Package config reads learnerlink's settings from the environment (and,
// in AWS, its credentials from one Secrets Manager secret). Every variable
// is listed in Vars with its meaning; the README's configuration reference
// and the template tests are checked against that list.
package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Var documents one environment variable.
type Var struct {
	Name, Default, Doc string
	Where              string // "local", "aws" or "both"
}

// Vars is every variable learnerlink reads.
var Vars = []Var{
	{"LEARNERLINK_ADDR", "127.0.0.1:8080", "address the local runner listens on", "local"},
	{"LEARNERLINK_DATA_DIR", "./.learnerlink", "where the local runner keeps its store, queue and sandbox LMS", "local"},
	{"LEARNERLINK_SCIM_TOKEN", "(generated, printed once, kept in the data dir)", "bearer token Okta sends to the SCIM API", "local"},
	{"LEARNERLINK_TARGET", "sandbox", "target LMS: sandbox (built-in) or absorb", "both"},
	{"LEARNERLINK_CONFIG", "(none: default mapping, no rules)", "JSON file with the attribute mapping and enrollment rules (see infra/config/learnerlink.example.json)", "both"},
	{"LEARNERLINK_CONFIG_JSON", "(none)", "the same configuration document inline, instead of a file (how the Lambda functions get it: template parameter LearnerlinkConfig)", "both"},
	{"LEARNERLINK_WORKERS", "8", "concurrent queue consumers in the local runner", "local"},
	{"LEARNERLINK_LOG_LEVEL", "info", "debug, info, warn or error", "both"},
	{"LEARNERLINK_PENDING_THRESHOLD", "15m", "how long an identity may wait unsynced before the sweeper re-queues it", "both"},
	{"LEARNERLINK_MAX_RECEIVES", "5", "deliveries of one sync intent; on the last one a still-retryable failure is re-enqueued as a fresh copy instead of dead-lettered (in AWS: the MaxReceiveCount parameter, also the queue's redrive maxReceiveCount)", "both"},
	{"LEARNERLINK_RETRY_FOR", "24h", "how long a retryable failure (target down, throttling) is retried before its intent is parked in the dead-letter queue", "both"},
	{"ABSORB_API_URL", "", "Absorb Integration API gateway, e.g. https://rest.myabsorb.com", "both"},
	{"ABSORB_USERNAME", "", "Absorb admin API user (local; in AWS it is in the secret)", "local"},
	{"ABSORB_PASSWORD", "", "its password (local; in AWS it is in the secret)", "local"},
	{"ABSORB_PRIVATE_KEY", "", "the portal's REST API private key, also sent as x-api-key (local; in AWS it is in the secret)", "local"},
	{"ABSORB_RATE_LIMIT", "10", "requests per second to Absorb, summed over all workers", "both"},
	{"ABSORB_DEFAULT_DEPARTMENT_ID", "", "Absorb department for learners whose department is unknown", "both"},
	{"ABSORB_CREATE_DEPARTMENTS", "false", "create missing departments by name", "both"},
	{"ABSORB_GROUPS_FIELD", "customFields.string30", "Absorb user field that carries the learner's group names (for automatic groups)", "both"},
	{"LEARNERLINK_HOOK_SECRET", "(generated locally, printed once, kept in the data dir)", "shared secret Okta sends with event hooks (in AWS it is hookSecret in the secret)", "local"},
	{"LEARNERLINK_HOOK_AUTH_HEADER", "Authorization", "header that carries the event hook secret", "both"},
	{"OKTA_ORG_URL", "", "Okta org, e.g. https://acme.okta.com (enables profile look-ups and reconciliation against Okta)", "both"},
	{"OKTA_APP_ID", "", "learnerlink's Okta app id (its assignments are compared by reconciliation)", "both"},
	{"OKTA_API_TOKEN", "", "Okta API token, SSWS (local; in AWS oktaApiToken in the secret)", "local"},
	{"OKTA_CLIENT_ID", "", "Okta OAuth service app client id (local; in AWS oktaClientId in the secret)", "local"},
	{"OKTA_PRIVATE_KEY", "", "its private key, PEM (local; in AWS oktaPrivateKey in the secret)", "local"},
	{"OKTA_KEY_ID", "", "the key's kid (local; in AWS oktaKeyId in the secret)", "local"},
	{"LEARNERLINK_RECONCILE_DRY_RUN", "false", "reconciliation only reports", "both"},
	{"LEARNERLINK_RECONCILE_MAX_DEACTIVATE_SHARE", "0.1", "guard: the largest share of active learners one reconciliation may deactivate", "both"},
	{"LEARNERLINK_RECONCILE_CREATE_IDENTITIES", "true", "reconciliation creates identities for Okta users assigned to the app but unknown here", "both"},
	{"LEARNERLINK_RECONCILE_EVERY", "0", "skip a reconciliation if the last one finished less than this ago", "both"},
	{"LEARNERLINK_TABLE", "", "DynamoDB table (AWS)", "aws"},
	{"LEARNERLINK_QUEUE_URL", "", "SQS FIFO queue URL (AWS)", "aws"},
	{"LEARNERLINK_DLQ_URL", "", "SQS dead-letter queue URL (AWS)", "aws"},
	{"LEARNERLINK_SECRET_ID", "", "Secrets Manager secret holding the credentials as JSON (AWS)", "aws"},
}

// Settings is the parsed environment.
type Settings struct {
	Addr       string
	DataDir    string
	SCIMToken  string
	Target     string
	ConfigFile string
	// Config is the configuration document (LEARNERLINK_CONFIG's file, or
	// LEARNERLINK_CONFIG_JSON inline, which is how a Lambda gets one) and
	// ConfigSource names it in errors; nil when there is none.
	Config           []byte
	ConfigSource     string
	Workers          int
	LogLevel         slog.Level
	PendingThreshold time.Duration
	// MaxReceives is the queue's delivery budget per message and RetryFor
	// how long retryable failures are retried (worker.Config).
	MaxReceives int
	RetryFor    time.Duration

	Absorb Absorb
	// Targets is the "targets" section of ConfigFile; nil means the one
	// target named by Target.
	Targets []TargetSpec
	// SecretValues is every string of the Secrets Manager secret, by key,
	// for the targets' "<credential>Secret" names.
	SecretValues map[string]string

	HookSecret     string
	HookAuthHeader string
	Okta           Okta
	Reconcile      Reconcile

	Table    string
	QueueURL string
	DLQURL   string
	SecretID string
}

// Absorb holds the Absorb connector's settings.
type Absorb struct {
	URL, Username, Password, PrivateKey string
	RateLimit                           float64
	DefaultDepartmentID                 string
	CreateDepartments                   bool
	GroupsField                         string
}

// Okta holds the Okta Management API settings; OrgURL empty means none.
type Okta struct {
	OrgURL, AppID                         string
	APIToken, ClientID, PrivateKey, KeyID string
}

// Reconcile holds the reconciliation settings.
type Reconcile struct {
	DryRun             bool
	MaxDeactivateShare float64
	CreateIdentities   bool
	Every              time.Duration
}

// FromEnv parses the environment; getenv is os.Getenv in production.
func FromEnv(getenv func(string) string) (Settings, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	var errs []error
	s := Settings{
		Addr:       get("LEARNERLINK_ADDR", "127.0.0.1:8080"),
		DataDir:    get("LEARNERLINK_DATA_DIR", "./.learnerlink"),
		SCIMToken:  getenv("LEARNERLINK_SCIM_TOKEN"),
		Target:     get("LEARNERLINK_TARGET", "sandbox"),
		ConfigFile: get("LEARNERLINK_CONFIG", ""),
		Table:      get("LEARNERLINK_TABLE", ""),
		QueueURL:   get("LEARNERLINK_QUEUE_URL", ""),
		DLQURL:     get("LEARNERLINK_DLQ_URL", ""),
		SecretID:   get("LEARNERLINK_SECRET_ID", ""),
		Absorb: Absorb{
			URL:                 get("ABSORB_API_URL", ""),
			Username:            getenv("ABSORB_USERNAME"),
			Password:            getenv("ABSORB_PASSWORD"),
			PrivateKey:          getenv("ABSORB_PRIVATE_KEY"),
			DefaultDepartmentID: get("ABSORB_DEFAULT_DEPARTMENT_ID", ""),
			GroupsField:         get("ABSORB_GROUPS_FIELD", "customFields.string30"),
		},
	}
	s.HookSecret = getenv("LEARNERLINK_HOOK_SECRET")
	s.HookAuthHeader = get("LEARNERLINK_HOOK_AUTH_HEADER", "Authorization")
	s.Okta = Okta{
		OrgURL: get("OKTA_ORG_URL", ""), AppID: get("OKTA_APP_ID", ""),
		APIToken: getenv("OKTA_API_TOKEN"), ClientID: get("OKTA_CLIENT_ID", ""),
		PrivateKey: getenv("OKTA_PRIVATE_KEY"), KeyID: get("OKTA_KEY_ID", ""),
	}
	var err error
	if s.Reconcile.DryRun, err = strconv.ParseBool(get("LEARNERLINK_RECONCILE_DRY_RUN", "false")); err != nil {
		errs = append(errs, fmt.Errorf("LEARNERLINK_RECONCILE_DRY_RUN must be true or false"))
	}
	if s.Reconcile.CreateIdentities, err = strconv.ParseBool(get("LEARNERLINK_RECONCILE_CREATE_IDENTITIES", "true")); err != nil {
		errs = append(errs, fmt.Errorf("LEARNERLINK_RECONCILE_CREATE_IDENTITIES must be true or false"))
	}
	if s.Reconcile.MaxDeactivateShare, err = strconv.ParseFloat(get("LEARNERLINK_RECONCILE_MAX_DEACTIVATE_SHARE", "0.1"), 64); err != nil || s.Reconcile.MaxDeactivateShare <= 0 || s.Reconcile.MaxDeactivateShare > 1 {
		errs = append(errs, fmt.Errorf("LEARNERLINK_RECONCILE_MAX_DEACTIVATE_SHARE must be a number above 0 and at most 1"))
	}
	if s.Reconcile.Every, err = time.ParseDuration(get("LEARNERLINK_RECONCILE_EVERY", "0s")); err != nil || s.Reconcile.Every < 0 {
		errs = append(errs, fmt.Errorf("LEARNERLINK_RECONCILE_EVERY must be a duration such as 20h"))
	}
	if (s.Okta.OrgURL == "") != (s.Okta.AppID == "") && s.Okta.AppID != "" {
		errs = append(errs, fmt.Errorf("OKTA_APP_ID is set without OKTA_ORG_URL"))
	}
	if s.Workers, err = strconv.Atoi(get("LEARNERLINK_WORKERS", "8")); err != nil || s.Workers < 1 || s.Workers > 256 {
		errs = append(errs, fmt.Errorf("LEARNERLINK_WORKERS must be a whole number from 1 to 256"))
	}
	if err := s.LogLevel.UnmarshalText([]byte(get("LEARNERLINK_LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, fmt.Errorf("LEARNERLINK_LOG_LEVEL: %w", err))
	}
	if s.PendingThreshold, err = time.ParseDuration(get("LEARNERLINK_PENDING_THRESHOLD", "15m")); err != nil || s.PendingThreshold < time.Minute {
		errs = append(errs, fmt.Errorf("LEARNERLINK_PENDING_THRESHOLD must be a duration of at least 1m"))
	}
	if s.MaxReceives, err = strconv.Atoi(get("LEARNERLINK_MAX_RECEIVES", "5")); err != nil || s.MaxReceives < 2 || s.MaxReceives > 1000 {
		errs = append(errs, fmt.Errorf("LEARNERLINK_MAX_RECEIVES must be a whole number from 2 to 1000"))
	}
	if s.RetryFor, err = time.ParseDuration(get("LEARNERLINK_RETRY_FOR", "24h")); err != nil || s.RetryFor < time.Minute {
		errs = append(errs, fmt.Errorf("LEARNERLINK_RETRY_FOR must be a duration of at least 1m"))
	}
	if s.Absorb.RateLimit, err = strconv.ParseFloat(get("ABSORB_RATE_LIMIT", "10"), 64); err != nil || s.Absorb.RateLimit <= 0 || s.Absorb.RateLimit > 200 {
		errs = append(errs, fmt.Errorf("ABSORB_RATE_LIMIT must be a number of requests per second above 0 and at most 200 (Absorb's documented account limit)"))
	}
	if s.Absorb.CreateDepartments, err = strconv.ParseBool(get("ABSORB_CREATE_DEPARTMENTS", "false")); err != nil {
		errs = append(errs, fmt.Errorf("ABSORB_CREATE_DEPARTMENTS must be true or false"))
	}
	switch inline := getenv("LEARNERLINK_CONFIG_JSON"); {
	case s.ConfigFile != "" && inline != "":
		errs = append(errs, fmt.Errorf("set LEARNERLINK_CONFIG or LEARNERLINK_CONFIG_JSON, not both"))
	case s.ConfigFile != "":
		if s.Config, err = os.ReadFile(s.ConfigFile); err != nil {
			errs = append(errs, fmt.Errorf("LEARNERLINK_CONFIG: %w", err))
		}
		s.ConfigSource = s.ConfigFile
	case inline != "":
		s.Config, s.ConfigSource = []byte(inline), "LEARNERLINK_CONFIG_JSON"
	}
	if s.Targets, err = LoadTargets(s.Config, s.ConfigSource); err != nil {
		errs = append(errs, err)
	}
	switch s.Target {
	case "sandbox", "absorb":
	default:
		errs = append(errs, fmt.Errorf("LEARNERLINK_TARGET=%q: want sandbox or absorb", s.Target))
	}
	return s, errors.Join(errs...)
}

// Secrets is the JSON document kept in Secrets Manager.
type Secrets struct {
	SCIMToken        string `json:"scimToken"`
	HookSecret       string `json:"hookSecret,omitempty"`
	AbsorbUsername   string `json:"absorbUsername,omitempty"`
	AbsorbPassword   string `json:"absorbPassword,omitempty"`
	AbsorbPrivateKey string `json:"absorbPrivateKey,omitempty"`
	OktaAPIToken     string `json:"oktaApiToken,omitempty"`
	OktaClientID     string `json:"oktaClientId,omitempty"`
	OktaPrivateKey   string `json:"oktaPrivateKey,omitempty"`
	OktaKeyID        string `json:"oktaKeyId,omitempty"`
}

// SecretGetter fetches a secret's string value (Secrets Manager in AWS).
type SecretGetter interface {
	SecretString(ctx context.Context, id string) (string, error)
}

// LoadSecrets fills the credentials from the secret named by SecretID.
// Values already set in the environment win (handy for tests).
func (s *Settings) LoadSecrets(ctx context.Context, sg SecretGetter) error {
	if s.SecretID == "" {
		return nil
	}
	raw, err := sg.SecretString(ctx, s.SecretID)
	if err != nil {
		return fmt.Errorf("config: read secret: %w", err)
	}
	var sec Secrets
	if err := json.Unmarshal([]byte(raw), &sec); err != nil {
		// Never echo the secret's content in the error.
		return errors.New("config: the secret is not a JSON object of credentials")
	}
	var all map[string]any
	if json.Unmarshal([]byte(raw), &all) == nil {
		s.SecretValues = map[string]string{}
		for k, v := range all {
			if str, ok := v.(string); ok {
				s.SecretValues[k] = str
			}
		}
	}
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&s.SCIMToken, sec.SCIMToken)
	fill(&s.Absorb.Username, sec.AbsorbUsername)
	fill(&s.Absorb.Password, sec.AbsorbPassword)
	fill(&s.Absorb.PrivateKey, sec.AbsorbPrivateKey)
	fill(&s.HookSecret, sec.HookSecret)
	// Okta credentials come as a set: the environment's, else the secret's.
	if s.Okta.APIToken == "" && s.Okta.PrivateKey == "" {
		s.Okta.APIToken, s.Okta.ClientID = sec.OktaAPIToken, firstNonEmpty(s.Okta.ClientID, sec.OktaClientID)
		s.Okta.PrivateKey, s.Okta.KeyID = sec.OktaPrivateKey, firstNonEmpty(s.Okta.KeyID, sec.OktaKeyID)
	}
	return nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
