package dynamo

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func canceledWith(codes ...string) error {
	e := &types.TransactionCanceledException{Message: aws.String("Transaction cancelled")}
	for _, c := range codes {
		e.CancellationReasons = append(e.CancellationReasons, types.CancellationReason{Code: aws.String(c)})
	}
	return e
}

func TestConflicted(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"conflict", canceledWith("None", "TransactionConflict"), true},
		{"throttled", canceledWith("ThrottlingError", "None"), true},
		{"condition beats conflict", canceledWith("ConditionalCheckFailed", "TransactionConflict"), false},
		{"condition", canceledWith("None", "ConditionalCheckFailed"), false},
		{"validation", canceledWith("ValidationError"), false},
		{"single-item conflict", &types.TransactionConflictException{}, true},
		{"other", errors.New("boom"), false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := conflicted(tc.err); got != tc.want {
				t.Errorf("conflicted = %t, want %t", got, tc.want)
			}
		})
	}
}

// fakeTx answers TransactWriteItems from a script; other methods panic.
type fakeTx struct {
	api
	script []error
	calls  int
}

func (f *fakeTx) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	err := f.script[min(f.calls, len(f.script)-1)]
	f.calls++
	return &dynamodb.TransactWriteItemsOutput{}, err
}

func TestTransact(t *testing.T) {
	conflict := canceledWith("None", "TransactionConflict")
	tests := []struct {
		name       string
		script     []error
		wantCalls  int
		wantFailed []int // items whose condition failed; nil: success
		wantErr    bool
	}{
		{"ok", []error{nil}, 1, nil, false},
		{"conflicts then ok", []error{conflict, conflict, nil}, 3, nil, false},
		{"condition is final", []error{canceledWith("None", "ConditionalCheckFailed")}, 1, []int{1}, true},
		{"conflict then condition", []error{conflict, canceledWith("ConditionalCheckFailed", "None")}, 2, []int{0}, true},
		{"endless conflict gives up", []error{conflict}, maxAttempts, nil, true},
		{"other error", []error{errors.New("boom")}, 1, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTx{script: tc.script}
			s := &Store{db: f, table: "t"}
			err := s.transact(t.Context(), []types.TransactWriteItem{{}, {}})
			if f.calls != tc.wantCalls {
				t.Errorf("calls = %d, want %d", f.calls, tc.wantCalls)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %t", err, tc.wantErr)
			}
			var c *canceled
			if got := errors.As(err, &c); got != (tc.wantFailed != nil) {
				t.Fatalf("err = %v, want *canceled: %t", err, tc.wantFailed != nil)
			}
			for _, i := range tc.wantFailed {
				if !c.failed(i) {
					t.Errorf("failed(%d) = false, codes %v", i, c.codes)
				}
			}
		})
	}
}
