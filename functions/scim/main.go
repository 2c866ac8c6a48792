// Command scim is the SCIM 2.0 API Lambda (API Gateway HTTP API, payload 2.0).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/learnerlink/learnerlink/shared/lambdafn"
)

func main() {
	h, err := lambdafn.SCIM(context.Background(), os.Getenv)
	if err != nil {
		slog.Error("init failed", "err", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
