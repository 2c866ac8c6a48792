// Command admin calls learnerlink's admin endpoints (shared/admin):
//
//	go run ./infra/admin -url http://127.0.0.1:8080 -token T reviews list [-target absorb]
//	go run ./infra/admin ... reviews resolve <target> <identityId> link <learnerId> | create | ignore
//	go run ./infra/admin ... reconcile [-dry-run]
//	go run ./infra/admin ... reports [-target absorb] [-n 5]
//	go run ./infra/admin ... audit <identityId> [-limit 50]
//
// -url defaults to $LEARNERLINK_ADMIN_URL (else http://127.0.0.1:8080),
// -token to $LEARNERLINK_ADMIN_TOKEN (else $LEARNERLINK_SCIM_TOKEN, which
// the local runner uses for its admin routes too), -by to $USER.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/learnerlink/learnerlink/shared/review"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil))
}

const usage = `usage: admin [-url URL] [-token TOKEN] [-by NAME] [-json] <command>

commands:
  reviews list [-target T]
  reviews resolve <target> <identityId> link <learnerId> | create | ignore
  reconcile [-dry-run]
  reports [-target T] [-n N]
  audit <identityId> [-limit N]
`

// client is one configured connection to the admin API.
type client struct {
	base, token string
	hc          *http.Client
	out         io.Writer
	json        bool
}

// run is the command without the process: it answers the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, hc *http.Client) int {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	base := fs.String("url", or(getenv("LEARNERLINK_ADMIN_URL"), "http://127.0.0.1:8080"), "learnerlink base URL")
	token := fs.String("token", or(getenv("LEARNERLINK_ADMIN_TOKEN"), getenv("LEARNERLINK_SCIM_TOKEN")), "admin bearer token")
	by := fs.String("by", getenv("USER"), "your name, for the audit trail of resolutions")
	raw := fs.Bool("json", false, "print the raw JSON answers")
	timeout := fs.Duration("timeout", 16*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *token == "" {
		fmt.Fprintln(stderr, "admin: no token: pass -token or set LEARNERLINK_ADMIN_TOKEN")
		return 2
	}
	if hc == nil {
		hc = &http.Client{}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := &client{base: strings.TrimRight(*base, "/"), token: *token, hc: hc, out: stdout, json: *raw}
	err := c.dispatch(ctx, fs.Args(), *by, stderr)
	var ue usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "admin: %s\n%s", ue, usage)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "admin:", err)
		return 1
	}
	return 0
}

type usageError string

func (u usageError) Error() string { return string(u) }

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (c *client) dispatch(ctx context.Context, args []string, by string, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("no command")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "reviews":
		if len(rest) == 0 {
			return usageError("reviews: list or resolve?")
		}
		switch rest[0] {
		case "list":
			fs := flag.NewFlagSet("reviews list", flag.ContinueOnError)
			fs.SetOutput(stderr)
			target := fs.String("target", "", "only this target")
			if err := fs.Parse(rest[1:]); err != nil {
				return usageError(err.Error())
			}
			return c.listReviews(ctx, *target)
		case "resolve":
			return c.resolve(ctx, rest[1:], by)
		}
		return usageError("reviews: unknown subcommand " + rest[0])
	case "reconcile":
		fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
		fs.SetOutput(stderr)
		dry := fs.Bool("dry-run", false, "report only")
		if err := fs.Parse(rest); err != nil {
			return usageError(err.Error())
		}
		return c.call(ctx, http.MethodPost, "/admin/reconcile?dryRun="+strconv.FormatBool(*dry), nil)
	case "reports":
		fs := flag.NewFlagSet("reports", flag.ContinueOnError)
		fs.SetOutput(stderr)
		target := fs.String("target", "", "only this target")
		n := fs.Int("n", 1, "how many, newest first")
		if err := fs.Parse(rest); err != nil {
			return usageError(err.Error())
		}
		q := url.Values{"limit": {strconv.Itoa(*n)}}
		if *target != "" {
			q.Set("target", *target)
		}
		return c.call(ctx, http.MethodGet, "/admin/reports?"+q.Encode(), nil)
	case "audit":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return usageError("audit needs an identity id")
		}
		fs := flag.NewFlagSet("audit", flag.ContinueOnError)
		fs.SetOutput(stderr)
		limit := fs.Int("limit", 100, "how many records")
		if err := fs.Parse(rest[1:]); err != nil {
			return usageError(err.Error())
		}
		q := url.Values{"identity": {rest[0]}, "limit": {strconv.Itoa(*limit)}}
		return c.call(ctx, http.MethodGet, "/admin/audit?"+q.Encode(), nil)
	}
	return usageError("unknown command " + args[0])
}

func (c *client) resolve(ctx context.Context, args []string, by string) error {
	if len(args) < 3 {
		return usageError("reviews resolve <target> <identityId> link <learnerId> | create | ignore")
	}
	target, id, action := args[0], args[1], strings.ToLower(args[2])
	body := map[string]string{"action": action}
	switch {
	case action == "link" && len(args) == 4:
		body["learnerId"] = args[3]
	case (action == "create" || action == "ignore") && len(args) == 3:
	default:
		return usageError("reviews resolve: want link <learnerId>, create or ignore")
	}
	if by != "" {
		body["by"] = by
	}
	return c.call(ctx, http.MethodPost, "/admin/reviews/"+url.PathEscape(target)+"/"+url.PathEscape(id)+"/resolve", body)
}

func (c *client) listReviews(ctx context.Context, target string) error {
	q := ""
	if target != "" {
		q = "?" + url.Values{"target": {target}}.Encode()
	}
	b, err := c.do(ctx, http.MethodGet, "/admin/reviews"+q, nil)
	if err != nil {
		return err
	}
	if c.json {
		_, err := c.out.Write(b)
		return err
	}
	var resp struct {
		Reviews []review.Entry `json:"reviews"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if len(resp.Reviews) == 0 {
		_, err := fmt.Fprintln(c.out, "no identities waiting for review")
		return err
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tIDENTITY\tSTATUS\tPARKED\tCANDIDATES\tREASON")
	for _, e := range resp.Reviews {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Target, e.IdentityID, e.Status,
			e.Parked.Format(time.RFC3339), strings.Join(e.Candidates, ","), e.Reason)
	}
	return tw.Flush()
}

// call sends the request and prints the JSON answer.
func (c *client) call(ctx context.Context, method, path string, body any) error {
	b, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	_, err = c.out.Write(b)
	return err
}

func (c *client) do(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return b, nil
}
