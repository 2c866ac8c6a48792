// Command loadgen measures a learnerlink SCIM API on this machine: it
// creates n users, then patches, reads and looks up each by userName (the
// filter Okta sends) with a number of concurrent clients, and prints
// requests per second and latency percentiles per operation.
//
//	go run ./infra/loadgen -url http://127.0.0.1:8080/scim/v2 -token T -clients 16 -n 4000
//
// It is bounded (n requests per operation, and -timeout overall) and only
// talks to loopback addresses: it is a tool for the local runner, never
// for someone else's server. The token may also come from
// LEARNERLINK_SCIM_TOKEN; it is never printed.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	base    string
	token   string
	clients int
	n       int
	timeout time.Duration
	cleanup bool
}

func parse(args []string, getenv func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.StringVar(&o.base, "url", "http://127.0.0.1:8080/scim/v2", "SCIM base URL (loopback only)")
	fs.StringVar(&o.token, "token", "", "bearer token (default $LEARNERLINK_SCIM_TOKEN)")
	fs.IntVar(&o.clients, "clients", 16, "concurrent clients (1-256)")
	fs.IntVar(&o.n, "n", 4000, "users to create; each is then patched, read and looked up once (1-100000)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "stop after this long whatever happens")
	fs.BoolVar(&o.cleanup, "cleanup", false, "delete the users at the end (and measure that too)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.token == "" {
		o.token = getenv("LEARNERLINK_SCIM_TOKEN")
	}
	switch {
	case o.token == "":
		return o, errors.New("no token: pass -token or set LEARNERLINK_SCIM_TOKEN")
	case o.clients < 1 || o.clients > 256:
		return o, errors.New("-clients must be from 1 to 256")
	case o.n < 1 || o.n > 100_000:
		return o, errors.New("-n must be from 1 to 100000")
	case o.timeout <= 0:
		return o, errors.New("-timeout must be positive")
	}
	o.base = strings.TrimRight(o.base, "/")
	return o, checkLoopback(o.base)
}

// checkLoopback refuses any URL whose host is not a loopback address or
// "localhost": load is only ever generated against this machine.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("-url %q: want an http(s) URL", raw)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %q: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed", raw)
}

// op is one measured operation: do sends request i.
type op struct {
	name string
	do   func(ctx context.Context, i int) error
}

// result is what a phase measured.
type result struct {
	name     string
	lat      []time.Duration // of the successful requests
	errors   int
	firstErr error
	elapsed  time.Duration
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	o, err := parse(args, getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	c := &client{
		base:  o.base,
		token: o.token,
		hc: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConns: o.clients, MaxIdleConnsPerHost: o.clients, IdleConnTimeout: time.Minute},
		},
	}
	defer c.hc.CloseIdleConnections()

	// A fresh prefix per run: runs never collide with each other's users.
	prefix := "loadgen-" + strings.ToLower(rand.Text()[:8])
	userName := func(i int) string { return fmt.Sprintf("%s-%06d@example.com", prefix, i) }
	ids := make([]string, o.n)

	ops := []op{
		{"create", func(ctx context.Context, i int) error {
			var res struct{ ID string }
			err := c.call(ctx, http.MethodPost, "/Users", map[string]any{
				"schemas":    []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
				"userName":   userName(i),
				"externalId": fmt.Sprintf("00u%s%06d", prefix[8:], i),
				"name":       map[string]string{"givenName": "Load", "familyName": fmt.Sprintf("Gen%06d", i)},
				"emails":     []map[string]any{{"value": userName(i), "type": "work", "primary": true}},
				"active":     true,
			}, http.StatusCreated, &res)
			ids[i] = res.ID
			return err
		}},
		{"patch", func(ctx context.Context, i int) error {
			return c.call(ctx, http.MethodPatch, "/Users/"+ids[i], map[string]any{
				"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
				"Operations": []map[string]any{
					{"op": "replace", "path": "name.givenName", "value": "Patched"},
					{"op": "replace", "value": map[string]any{"title": "Load tester"}},
				},
			}, http.StatusOK, nil)
		}},
		{"get", func(ctx context.Context, i int) error {
			return c.call(ctx, http.MethodGet, "/Users/"+ids[i], nil, http.StatusOK, nil)
		}},
		{"filtered list", func(ctx context.Context, i int) error {
			var res struct{ TotalResults int }
			q := url.QueryEscape(fmt.Sprintf("userName eq %q", userName(i)))
			if err := c.call(ctx, http.MethodGet, "/Users?filter="+q, nil, http.StatusOK, &res); err != nil {
				return err
			}
			if res.TotalResults != 1 {
				return fmt.Errorf("filter found %d users, want 1", res.TotalResults)
			}
			return nil
		}},
	}
	if o.cleanup {
		ops = append(ops, op{"delete", func(ctx context.Context, i int) error {
			return c.call(ctx, http.MethodDelete, "/Users/"+ids[i], nil, http.StatusNoContent, nil)
		}})
	}

	fmt.Fprintf(out, "loadgen: %d users, %d clients, %s\n", o.n, o.clients, o.base)
	var results []result
	for _, p := range ops {
		r := phase(ctx, p, o.n, o.clients, func(i int) bool { return p.name == "create" || ids[i] != "" })
		results = append(results, r)
		if err := ctx.Err(); err != nil {
			report(out, results)
			return fmt.Errorf("stopped during %s: %w", p.name, err)
		}
		if len(r.lat) == 0 {
			report(out, results)
			return fmt.Errorf("every %s failed: %w", p.name, r.firstErr)
		}
	}
	report(out, results)
	return nil
}

// phase sends request 0..n-1 of p from clients goroutines; want(i) false
// skips i (its user was never created).
func phase(ctx context.Context, p op, n, clients int, want func(int) bool) result {
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	per := make([]result, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			r := &per[w]
			for i := range next {
				if !want(i) {
					continue
				}
				t0 := time.Now()
				err := p.do(ctx, i)
				d := time.Since(t0)
				if err != nil {
					r.errors++
					if r.firstErr == nil {
						r.firstErr = err
					}
					continue
				}
				r.lat = append(r.lat, d)
			}
		})
	}
	wg.Wait()
	total := result{name: p.name, elapsed: time.Since(start)}
	for _, r := range per {
		total.lat = append(total.lat, r.lat...)
		total.errors += r.errors
		if total.firstErr == nil {
			total.firstErr = r.firstErr
		}
	}
	slices.Sort(total.lat)
	return total
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

func report(out io.Writer, results []result) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\trequests\terrors\treq/s\tp50\tp90\tp99\tmax\t")
	for _, r := range results {
		rate := 0.0
		if r.elapsed > 0 {
			rate = float64(len(r.lat)) / r.elapsed.Seconds()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t\n", r.name, len(r.lat)+r.errors, r.errors, rate,
			ms(percentile(r.lat, 50)), ms(percentile(r.lat, 90)), ms(percentile(r.lat, 99)), ms(percentile(r.lat, 100)))
	}
	_ = tw.Flush()
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Fprintf(out, "%s: first error: %v\n", r.name, r.firstErr)
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// client sends SCIM requests.
type client struct {
	base, token string
	hc          *http.Client
}

// call sends body (JSON, if not nil), checks the status and decodes the
// answer into out (if not nil).
func (c *client) call(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/scim+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if res.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %.200s", method, path, res.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}
