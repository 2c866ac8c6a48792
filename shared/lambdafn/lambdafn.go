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
	return &deps{
		settings: s,
		log:      log,
		ddb:      ddb,
		store:    dynamo.New(ddb, s.Table),
		queue:    sqs.New(awssqs.NewFromConfig(cfg), s.QueueURL, s.DLQURL),
	}, nil
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

// target builds the configured target, with its rate limit and API token
// shared through the table by every concurrent function, and the review
// list that takes its ambiguous matches.
func (d *deps) target(getenv func(string) string) (worker.Target, *review.List, error) {
	s := d.settings
	sh := target.Shared{
		Limiter: target.NewSharedLimiter(d.ddb, s.Table, s.Target, s.Absorb.RateLimit, throttle.WithLogger(d.log)),
		Tokens:  tokencache.NewDynamo(d.ddb, s.Table, s.Target),
	}
	tgt, err := target.Build(s, sh, getenv, d.log)
	if err != nil {
		return worker.Target{}, nil, err
	}
	reviews, err := review.New(d.store, review.Config{Queue: d.queue, Targets: []worker.Target{tgt}, Logger: d.log})
	if err != nil {
		return worker.Target{}, nil, err
	}
	return tgt, reviews, nil
}
