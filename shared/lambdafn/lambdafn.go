// Package lambdafn builds learnerlink's AWS Lambda handlers. Each
// functions/<name>/main.go calls one constructor once, at cold start, and
// hands the result to lambda.Start: settings, secrets and AWS clients are
// loaded once per container, never per invocation.
package lambdafn

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/sqs"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/store/dynamo"
	"github.com/learnerlink/learnerlink/shared/target"
	"github.com/learnerlink/learnerlink/shared/throttle"
	"github.com/learnerlink/learnerlink/shared/tokencache"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// deps is what every function shares.
type deps struct {
	settings config.Settings
	log      *slog.Logger
	ddb      *dynamodb.Client
	store    *dynamo.Store
	queue    *sqs.Queue
	// fan is what producers enqueue to: one intent per target (see
	// queue.FanOut), so each (identity, target) stream retries on its own.
	fan queue.FanOut
}

// load reads the settings and the secret and builds the AWS clients. The
// SDK's default chain supplies credentials and region (the Lambda
// environment) and honours AWS_ENDPOINT_URL_* (used by the tests to point
// at DynamoDB Local and the SQS emulator).
func load(ctx context.Context, getenv func(string) string) (*deps, error) {
	s, err := config.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: s.LogLevel}))
	if s.Table == "" || s.QueueURL == "" {
		return nil, fmt.Errorf("lambdafn: LEARNERLINK_TABLE and LEARNERLINK_QUEUE_URL are required")
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("lambdafn: aws config: %w", err)
	}
	if err := s.LoadSecrets(ctx, secrets{secretsmanager.NewFromConfig(cfg)}); err != nil {
		return nil, err
	}
	ddb := dynamodb.NewFromConfig(cfg)
	q := sqs.New(awssqs.NewFromConfig(cfg), s.QueueURL, s.DLQURL)
	return &deps{
		settings: s,
		log:      log,
		ddb:      ddb,
		store:    dynamo.New(ddb, s.Table),
		queue:    q,
		fan:      queue.FanOut{Next: q, Targets: targetNames(s)},
	}, nil
}

// targetNames are the configured targets' names, known from the settings
// alone (producers need them, not the connectors).
func targetNames(s config.Settings) []string {
	if len(s.Targets) == 0 {
		return []string{s.Target}
	}
	out := make([]string, len(s.Targets))
	for i, t := range s.Targets {
		out[i] = t.Name
	}
	return out
}

// secrets adapts Secrets Manager to config.SecretGetter.
type secrets struct{ c *secretsmanager.Client }

func (s secrets) SecretString(ctx context.Context, id string) (string, error) {
	out, err := s.c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.SecretString), nil
}

// targets builds the configured targets, each with its rate limit and API
// token shared through the table (items keyed by the target's name) by
// every concurrent function, and the review list that takes their
// ambiguous matches.
func (d *deps) targets(getenv func(string) string) ([]worker.Target, *review.List, error) {
	s := d.settings
	tgts, err := target.BuildAll(s, func(name string, rate float64) target.Shared {
		return target.Shared{
			Limiter: target.NewSharedLimiter(d.ddb, s.Table, name, rate, throttle.WithLogger(d.log)),
			Tokens:  tokencache.NewDynamo(d.ddb, s.Table, name),
		}
	}, getenv, d.log)
	if err != nil {
		return nil, nil, err
	}
	reviews, err := review.New(d.store, review.Config{Queue: d.fan, Targets: tgts, Logger: d.log})
	if err != nil {
		return nil, nil, err
	}
	return tgts, reviews, nil
}
