// Command coldstart measures each Lambda function's init time locally, as a
// proxy for its cold start: there is no Lambda emulator here, so it starts
// the binary with a Lambda-like environment whose AWS_LAMBDA_RUNTIME_API is
// a tiny fake Runtime API on 127.0.0.1, and times exec to the first
// `GET /2018-06-01/runtime/invocation/next` (the end of init: settings,
// AWS clients and the secret loaded). Secrets Manager is a local fake;
// DynamoDB and SQS point at a local server that refuses every call (init
// must not need them) and counts them.
//
// Usage (from the repository root):
//
//	go run ./infra/build/coldstart [-runs 15] [-dist dist] [function ...]
//
// Without -dist it builds the functions for this machine's OS/arch with the
// release flags (an arm64 Lambda binary cannot run on an amd64 host); with
// -dist it runs <dist>/<name>/bootstrap as built by infra/build/build.sh.
// Numbers are this machine's, not Lambda's: Lambda adds its own sandbox
// and download time, and its arm64 cores differ. Compare functions and
// versions, not absolute values.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

func main() {
	runs := flag.Int("runs", 15, "starts per function")
	dist := flag.String("dist", "", "folder with <name>/bootstrap (infra/build/build.sh); empty: build for this machine")
	timeout := flag.Duration("timeout", 20*time.Second, "longest wait for one init")
	flag.Parse()
	ctx := context.Background()
	if err := run(ctx, options{runs: *runs, dist: *dist, timeout: *timeout, functions: flag.Args()}, os.Stdout); err != nil {
		slog.Error("coldstart failed", "err", err)
		os.Exit(1)
	}
}

type options struct {
	runs      int
	dist      string
	timeout   time.Duration
	functions []string // empty: every folder in functions/
}

func run(ctx context.Context, o options, w io.Writer) error {
	if o.runs < 1 {
		return errors.New("coldstart: -runs must be at least 1")
	}
	names := o.functions
	if len(names) == 0 {
		entries, err := os.ReadDir("functions")
		if err != nil {
			return fmt.Errorf("coldstart: run from the repository root: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
	}
	bins := map[string]string{}
	if o.dist == "" {
		tmp, err := os.MkdirTemp("", "coldstart-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := build(ctx, tmp, names); err != nil {
			return err
		}
		for _, n := range names {
			bins[n] = filepath.Join(tmp, n)
		}
	} else {
		for _, n := range names {
			bins[n] = filepath.Join(o.dist, n, "bootstrap")
		}
	}

	fakes, err := startFakes()
	if err != nil {
		return err
	}
	defer fakes.close()

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "function\tsize MiB\truns\tmin ms\tmedian ms\tp90 ms\tmax ms\tAWS calls/init\t\n")
	for _, n := range names {
		fi, err := os.Stat(bins[n])
		if err != nil {
			return fmt.Errorf("coldstart: %s: %w", n, err)
		}
		env := lambdaEnv(n, fakes)
		var times []time.Duration
		before := fakes.calls.Load()
		for range o.runs {
			d, err := measure(ctx, bins[n], env, o.timeout)
			if err != nil {
				return fmt.Errorf("coldstart: %s: %w", n, err)
			}
			times = append(times, d)
		}
		perInit := float64(fakes.calls.Load()-before) / float64(o.runs)
		slices.Sort(times)
		ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
		fmt.Fprintf(tw, "%s\t%.1f\t%d\t%s\t%s\t%s\t%s\t%.1f\t\n", n, float64(fi.Size())/(1<<20), len(times),
			ms(times[0]), ms(times[len(times)/2]), ms(times[(len(times)*9)/10]), ms(times[len(times)-1]), perInit)
	}
	fmt.Fprintf(tw, "\n")
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "host %s/%s, %d CPUs; init = exec to first invocation/next poll\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	return nil
}

// build compiles the functions for this machine with the release flags.
func build(ctx context.Context, out string, names []string) error {
	args := []string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", out + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "./functions/"+n)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("coldstart: go build: %w\n%s", err, b)
	}
	return nil
}

// fakes are the local stand-ins for AWS during init.
type fakes struct {
	secrets, refuse *http.Server
	secretsURL      string
	refuseURL       string
	calls           atomic.Int64 // requests to any fake AWS endpoint
}

// secretJSON is a complete config.Secrets document with dummy values.
const secretJSON = `{"scimToken":"coldstart-token","hookSecret":"coldstart-hook","absorbUsername":"api","absorbPassword":"pw","absorbPrivateKey":"key"}`

func startFakes() (*fakes, error) {
	f := &fakes{}
	var err error
	f.secrets, f.secretsURL, err = serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" {
			http.Error(w, `{"__type":"InvalidRequestException","message":"coldstart fake serves GetSecretValue only"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprintf(w, `{"ARN":"arn:aws:secretsmanager:us-east-1:000000000000:secret:learnerlink-AbCdEf","Name":"learnerlink","VersionId":"v1","VersionStages":["AWSCURRENT"],"CreatedDate":%d,"SecretString":%q}`,
			time.Now().Unix(), secretJSON)
	}))
	if err != nil {
		return nil, err
	}
	f.refuse, f.refuseURL, err = serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		http.Error(w, `{"__type":"AccessDeniedException","message":"coldstart: init should not call this"}`, http.StatusBadRequest)
	}))
	if err != nil {
		f.secrets.Close()
		return nil, err
	}
	return f, nil
}

func (f *fakes) close() {
	f.secrets.Close()
	f.refuse.Close()
}

func serve(h http.Handler) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("coldstart: listen: %w", err)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.Serve(ln) }()
	return s, "http://" + ln.Addr().String(), nil
}

// lambdaEnv mirrors template.yaml: every function gets the table and the
// queue; the secret only where the template sets LEARNERLINK_SECRET_ID.
func lambdaEnv(name string, f *fakes) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=coldstart", "AWS_SECRET_ACCESS_KEY=coldstart", "AWS_SESSION_TOKEN=coldstart",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_LAMBDA_FUNCTION_NAME=learnerlink-" + name, "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "_HANDLER=bootstrap", "LAMBDA_TASK_ROOT=/var/task",
		"AWS_ENDPOINT_URL_SECRETS_MANAGER=" + f.secretsURL,
		"AWS_ENDPOINT_URL_DYNAMODB=" + f.refuseURL,
		"AWS_ENDPOINT_URL_SQS=" + f.refuseURL,
		"LEARNERLINK_TABLE=learnerlink-coldstart",
		"LEARNERLINK_QUEUE_URL=" + f.refuseURL + "/000000000000/learnerlink.fifo",
		"LEARNERLINK_DLQ_URL=" + f.refuseURL + "/000000000000/learnerlink-dlq.fifo",
		"LEARNERLINK_TARGET=absorb",
		"ABSORB_API_URL=" + f.refuseURL,
	}
	if name != "sweeper" {
		env = append(env, "LEARNERLINK_SECRET_ID=arn:aws:secretsmanager:us-east-1:000000000000:secret:learnerlink-AbCdEf")
	}
	return env
}

// measure starts bin with its own fake Runtime API and returns the time
// from exec to its first poll for an invocation. The process is killed
// then: one start, one measurement.
func measure(ctx context.Context, bin string, env []string, timeout time.Duration) (time.Duration, error) {
	polled := make(chan time.Time, 1)
	rt, addr, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/2018-06-01/runtime/invocation/next" {
			select {
			case polled <- time.Now():
			default:
			}
			<-r.Context().Done() // hold the long poll until the process dies
			return
		}
		http.Error(w, "coldstart: unexpected runtime call", http.StatusNotFound)
	}))
	if err != nil {
		return 0, err
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.Command(bin)
	cmd.Env = append(slices.Clone(env), "AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(addr, "http://"))
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	select {
	case t := <-polled:
		return t.Sub(start), nil
	case err := <-exited:
		exited <- err // for the deferred wait
		return 0, fmt.Errorf("exited before polling (%v): %s", err, strings.TrimSpace(stderr.String()))
	case <-ctx.Done():
		return 0, fmt.Errorf("no poll within %v", timeout)
	}
}
