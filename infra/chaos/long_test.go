//go:build long

package main

import (
	"bytes"
	"context"
	"testing"
)

// TestConvergenceLong is the long run (LongConfig: 10,000 changes over
// 1,000 people, a dozen kills; about 20 minutes on 2 cores under the full
// fault mix), strict about dead letters. Not part of CI:
//
//	go test -tags long -timeout 4h -run TestConvergenceLong ./infra/chaos
func TestConvergenceLong(t *testing.T) {
	cfg := LongConfig()
	cfg.Progress = testLog{t}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res.Print(&out)
	t.Log("\n" + out.String())
	for _, f := range res.Failures() {
		t.Error(f)
	}
}
