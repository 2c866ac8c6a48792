// Command reconcile is the scheduled Lambda that compares Okta, the store
// and the target, repairs drift through the queue and reports it.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/learnerlink/learnerlink/shared/lambdafn"
)

func main() {
	h, err := lambdafn.Reconcile(context.Background(), os.Getenv)
	if err != nil {
		slog.Error("init failed", "err", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
