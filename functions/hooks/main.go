// Command hooks is the Okta Event Hooks Lambda (API Gateway HTTP API,
// payload 2.0): GET and POST /okta/hooks.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/learnerlink/learnerlink/shared/lambdafn"
)

func main() {
	h, err := lambdafn.Hooks(context.Background(), os.Getenv)
	if err != nil {
		slog.Error("init failed", "err", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
