// Command sweeper is the scheduled Lambda that re-queues identities left unsynced.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/learnerlink/learnerlink/shared/lambdafn"
)

func main() {
	h, err := lambdafn.Sweeper(context.Background(), os.Getenv)
	if err != nil {
		slog.Error("init failed", "err", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
