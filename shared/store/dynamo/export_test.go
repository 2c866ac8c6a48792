package dynamo

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// ErrCrash is what a NewCrashing store's transactions fail with once it
// has "died".
var ErrCrash = errors.New("simulated crash")

// NewCrashing returns a store on table whose first n transactions go
// through and every later one fails, as if the process died there.
func NewCrashing(client *dynamodb.Client, table string, n int) *Store {
	return &Store{db: &crashing{api: client, left: n}, table: table, now: time.Now}
}

type crashing struct {
	api
	mu   sync.Mutex
	left int
}

func (c *crashing) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.mu.Lock()
	alive := c.left > 0
	c.left--
	c.mu.Unlock()
	if !alive {
		return nil, ErrCrash
	}
	return c.api.TransactWriteItems(ctx, in, opts...)
}
