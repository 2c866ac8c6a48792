package tokencache_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/learnerlink/learnerlink/shared/testenv"
	"github.com/learnerlink/learnerlink/shared/tokencache"
)

// cache is the method set the Absorb connector declares.
type cache interface {
	Get(ctx context.Context) (tokencache.Token, error)
	Replace(ctx context.Context, prev int64, next tokencache.Token) (tokencache.Token, error)
}

// runConformance checks one implementation; fresh returns an empty cache.
func runConformance(t *testing.T, fresh func(t *testing.T) cache) {
	exp := time.Date(2030, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))

	t.Run("empty", func(t *testing.T) {
		c := fresh(t)
		tok, err := c.Get(t.Context())
		if !errors.Is(err, tokencache.ErrNoToken) || tok.Generation != 0 {
			t.Fatalf("Get on empty = %v, %v; want generation 0, ErrNoToken", tok, err)
		}
	})

	t.Run("replace sequence", func(t *testing.T) {
		tests := []struct {
			prev    int64
			value   string
			expires time.Time
			wantGen int64
			wantErr error
		}{
			{prev: 0, value: "t1", expires: exp, wantGen: 1},
			{prev: 0, value: "late", wantErr: tokencache.ErrStale},
			{prev: 1, value: "t2", expires: exp.Add(4 * time.Hour), wantGen: 2},
			{prev: 1, value: "stale", wantErr: tokencache.ErrStale},
			{prev: 5, value: "future", wantErr: tokencache.ErrStale},
			{prev: 2, value: "t3", wantGen: 3}, // no expiry known
		}
		c := fresh(t)
		var last tokencache.Token
		for i, tt := range tests {
			got, err := c.Replace(t.Context(), tt.prev, tokencache.Token{Value: tt.value, Expires: tt.expires, Generation: 99})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("step %d: Replace(%d) error %v, want %v", i, tt.prev, err, tt.wantErr)
			}
			if err != nil {
				// The loser learns the winner's token.
				if got.Generation != last.Generation || got.Value != last.Value {
					t.Errorf("step %d: stale Replace returned generation %d, want the stored %d", i, got.Generation, last.Generation)
				}
				continue
			}
			if got.Generation != tt.wantGen || got.Value != tt.value || !got.Expires.Equal(tt.expires) {
				t.Errorf("step %d: Replace = gen %d %q %v; want gen %d %q %v", i, got.Generation, got.Value, got.Expires, tt.wantGen, tt.value, tt.expires)
			}
			last = got
			stored, err := c.Get(t.Context())
			if err != nil {
				t.Fatalf("step %d: Get: %v", i, err)
			}
			// Expiry round-trips to the nanosecond, whatever the zone.
			if stored.Generation != tt.wantGen || stored.Value != tt.value || !stored.Expires.Equal(tt.expires) || stored.Expires.IsZero() != tt.expires.IsZero() {
				t.Errorf("step %d: Get = gen %d %q %v; want gen %d %q %v", i, stored.Generation, stored.Value, stored.Expires, tt.wantGen, tt.value, tt.expires)
			}
		}
	})

	t.Run("invalid", func(t *testing.T) {
		c := fresh(t)
		for _, tt := range []struct {
			prev int64
			tok  tokencache.Token
		}{{0, tokencache.Token{}}, {-1, tokencache.Token{Value: "x"}}} {
			if _, err := c.Replace(t.Context(), tt.prev, tt.tok); err == nil || errors.Is(err, tokencache.ErrStale) {
				t.Errorf("Replace(%d, %v) = %v, want a validation error", tt.prev, tt.tok, err)
			}
		}
	})

	t.Run("concurrent refreshers: one winner per generation", func(t *testing.T) {
		c := fresh(t)
		const refreshers, rounds = 8, 5
		wins := make([][]string, rounds+1) // generation -> winners
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range refreshers {
			wg.Go(func() {
				for round := range rounds {
					// Everyone saw generation `round` go bad and refreshes.
					next := tokencache.Token{Value: fmt.Sprintf("w%d-r%d", w, round), Expires: exp}
					got, err := c.Replace(t.Context(), int64(round), next)
					switch {
					case err == nil:
						mu.Lock()
						wins[got.Generation] = append(wins[got.Generation], next.Value)
						mu.Unlock()
					case errors.Is(err, tokencache.ErrStale):
					default:
						t.Error(err)
						return
					}
					// Wait until this round has a winner, then use its token.
					for {
						tok, err := c.Get(t.Context())
						if err == nil && tok.Generation > int64(round) {
							break
						}
						if err != nil && !errors.Is(err, tokencache.ErrNoToken) {
							t.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		for g := 1; g <= rounds; g++ {
			if len(wins[g]) != 1 {
				t.Errorf("generation %d has %d winners %v, want exactly 1", g, len(wins[g]), wins[g])
			}
		}
		tok, err := c.Get(t.Context())
		if err != nil || tok.Generation != rounds {
			t.Fatalf("final Get = %v, %v; want generation %d", tok, err, rounds)
		}
		if tok.Value != wins[rounds][0] {
			t.Errorf("final token is not the last winner's")
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		c := fresh(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.Replace(ctx, 0, tokencache.Token{Value: "x"}); !errors.Is(err, context.Canceled) {
			t.Errorf("Replace with a cancelled context = %v", err)
		}
		if _, err := c.Get(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Get with a cancelled context = %v", err)
		}
	})
}

func TestLocal(t *testing.T) {
	runConformance(t, func(*testing.T) cache { return tokencache.NewLocal() })
}

func TestDynamo(t *testing.T) {
	client, table := newTable(t)
	n := 0
	runConformance(t, func(t *testing.T) cache {
		n++ // each subtest gets its own item in the shared test table
		return tokencache.NewDynamo(client, table, fmt.Sprintf("absorb-%d", n))
	})

	t.Run("item layout", func(t *testing.T) {
		c := tokencache.NewDynamo(client, table, "layout")
		if _, err := c.Replace(t.Context(), 0, tokencache.Token{Value: "secret"}); err != nil {
			t.Fatal(err)
		}
		out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{
			TableName: aws.String(table),
			Key: map[string]types.AttributeValue{
				"PK": &types.AttributeValueMemberS{Value: "TOKEN#layout"},
				"SK": &types.AttributeValueMemberS{Value: "A"},
			},
			ConsistentRead: aws.Bool(true),
		})
		if err != nil || len(out.Item) == 0 {
			t.Fatalf("item TOKEN#layout/A: %v (found %d attributes)", err, len(out.Item))
		}
	})
}

func TestTokenNeverPrintsValue(t *testing.T) {
	tok := tokencache.Token{Value: "s3cr3t", Generation: 4, Expires: time.Now()}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("refreshed", "token", tok)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("refreshed", "token", tok)
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%v", tok), fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", tok), logged.String()} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("formatted token leaks its value: %s", s)
		}
	}
}

func TestExpired(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		tok  tokencache.Token
		want bool
	}{
		{"no value", tokencache.Token{}, true},
		{"unknown expiry", tokencache.Token{Value: "x"}, false},
		{"far", tokencache.Token{Value: "x", Expires: now.Add(time.Hour)}, false},
		{"within margin", tokencache.Token{Value: "x", Expires: now.Add(4 * time.Minute)}, true},
		{"past", tokencache.Token{Value: "x", Expires: now.Add(-time.Second)}, true},
	}
	for _, tt := range tests {
		if got := tt.tok.Expired(now, 5*time.Minute); got != tt.want {
			t.Errorf("%s: Expired = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// newTable creates a uniquely named table with the store's PK/SK keys on
// the test server and deletes it (only it) afterwards.
func newTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	client := testenv.DynamoClient(t)
	return client, testenv.BareTable(t, client, "tokencache-test-")
}
