// Command worker is the Lambda that drains the SQS queue into the target.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/learnerlink/learnerlink/shared/lambdafn"
)

func main() {
	h, err := lambdafn.Worker(context.Background(), os.Getenv)
	if err != nil {
		slog.Error("init failed", "err", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
