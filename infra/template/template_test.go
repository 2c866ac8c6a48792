package template_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/learnerlink/learnerlink/shared/config"
	"github.com/learnerlink/learnerlink/shared/mapping"
)

// workerTimeoutToVisibility is AWS's advice for a Lambda-consumed queue:
// visibility timeout at least six times the function timeout.
const workerTimeoutToVisibility = 6

func TestEveryFolderIsAFunction(t *testing.T) {
	tm := loadTemplate(t)
	byDir := tm.functionByDir(t)
	for _, dir := range functionDirs(t) {
		t.Run(dir, func(t *testing.T) {
			id, ok := byDir[dir]
			if !ok {
				t.Fatalf("functions/%s has no AWS::Serverless::Function with CodeUri functions/%s", dir, dir)
			}
			if _, err := os.Stat(filepath.Join(root, "functions", dir, "main.go")); err != nil {
				t.Errorf("%s: CodeUri functions/%s has no main.go: %v", id, dir, err)
			}
		})
	}
	for dir, id := range byDir {
		if _, err := os.Stat(filepath.Join(root, "functions", dir, "main.go")); err != nil {
			t.Errorf("%s: CodeUri functions/%s has no main.go (sam build's go1.x builder runs `go build` there)", id, dir)
		}
	}
}

func TestFunctionSettings(t *testing.T) {
	tm := loadTemplate(t)
	for dir, id := range tm.functionByDir(t) {
		t.Run(dir, func(t *testing.T) {
			f, err := tm.cf.GetServerlessFunctionWithName(id)
			if err != nil {
				t.Fatal(err)
			}
			check := func(what string, got, want any) {
				t.Helper()
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %s = %v, want %v", id, what, got, want)
				}
			}
			deref := func(s *string) string {
				if s == nil {
					return ""
				}
				return *s
			}
			check("Runtime", deref(f.Runtime), "provided.al2023")
			check("Architectures", f.Architectures, []string{"arm64"})
			check("Handler", deref(f.Handler), "bootstrap") // sam build names the binary after it
			check("Metadata.BuildMethod", f.AWSCloudFormationMetadata["BuildMethod"], "go1.x")
			check("FunctionName", deref(f.FunctionName), "Sub:${AWS::StackName}-"+dir)
			if f.Timeout == nil || *f.Timeout < 1 || *f.Timeout > 900 {
				t.Errorf("%s: Timeout must be set, 1..900 s", id)
			}
			if f.Policies != nil {
				t.Errorf("%s: use the explicit role, not SAM Policies (they add managed policies on *)", id)
			}
			role, ok := strings.CutPrefix(deref(f.Role), "GetAtt:")
			role, isArn := strings.CutSuffix(role, ".Arn")
			if !ok || !isArn || tm.resourceType(role) != "AWS::IAM::Role" {
				t.Errorf("%s: Role = %q, want !GetAtt <an AWS::IAM::Role>.Arn", id, deref(f.Role))
			}
			// The function's log group: created by the stack (retention), and
			// the name Lambda writes to.
			lg := id[:len(id)-len("Function")] + "LogGroup"
			if !strings.HasSuffix(id, "Function") {
				t.Fatalf("%s: name functions <Name>Function", id)
			}
			g, err := tm.cf.GetLogsLogGroupWithName(lg)
			if err != nil {
				t.Fatalf("%s: no log group %s: %v", id, lg, err)
			}
			check(lg+".LogGroupName", deref(g.LogGroupName), "Sub:/aws/lambda/${AWS::StackName}-"+dir)
			if g.RetentionInDays == nil {
				t.Errorf("%s: no RetentionInDays", lg)
			}
			if !slices.Contains(f.AWSCloudFormationDependsOn, lg) {
				t.Errorf("%s: must DependsOn %s, else Lambda may create the group first (no retention)", id, lg)
			}
		})
	}
}

// TestEnvironment checks each function's environment: what its code needs
// (shared/lambdafn and config.FromEnv), nothing only the local runner reads
// (credentials live in the secret), and values config accepts.
func TestEnvironment(t *testing.T) {
	// want is exact: function folder -> variable -> template value.
	want := map[string]map[string]string{
		"scim": {
			"LEARNERLINK_TABLE":     "Ref:Table",
			"LEARNERLINK_QUEUE_URL": "Ref:Queue",
			"LEARNERLINK_SECRET_ID": "Ref:AppSecret", // scimToken
			"LEARNERLINK_LOG_LEVEL": "Ref:LogLevel",
		},
		"worker": {
			"LEARNERLINK_TABLE":            "Ref:Table",
			"LEARNERLINK_QUEUE_URL":        "Ref:Queue",
			"LEARNERLINK_DLQ_URL":          "Ref:DeadLetterQueue", // Park
			"LEARNERLINK_SECRET_ID":        "Ref:AppSecret",       // Absorb credentials
			"LEARNERLINK_LOG_LEVEL":        "Ref:LogLevel",
			"LEARNERLINK_TARGET":           "absorb", // the sandbox LMS exists only locally
			"ABSORB_API_URL":               "Ref:AbsorbApiUrl",
			"ABSORB_RATE_LIMIT":            "Ref:AbsorbRateLimit",
			"ABSORB_DEFAULT_DEPARTMENT_ID": "Ref:AbsorbDefaultDepartmentId",
			"ABSORB_CREATE_DEPARTMENTS":    "Ref:AbsorbCreateDepartments",
			"ABSORB_GROUPS_FIELD":          "Ref:AbsorbGroupsField",
			"LEARNERLINK_MAX_RECEIVES":     "Sub:${MaxReceiveCount}", // a Number parameter, as text
			"LEARNERLINK_RETRY_FOR":        "Ref:RetryFor",
			"LEARNERLINK_CONFIG_JSON":      "Ref:LearnerlinkConfig",
		},
		"sweeper": {
			"LEARNERLINK_TABLE":             "Ref:Table",
			"LEARNERLINK_QUEUE_URL":         "Ref:Queue",
			"LEARNERLINK_LOG_LEVEL":         "Ref:LogLevel",
			"LEARNERLINK_PENDING_THRESHOLD": "Ref:PendingThreshold",
		},
		"hooks": {
			"LEARNERLINK_TABLE":            "Ref:Table",
			"LEARNERLINK_QUEUE_URL":        "Ref:Queue",
			"LEARNERLINK_SECRET_ID":        "Ref:AppSecret", // hookSecret, Okta credentials
			"LEARNERLINK_LOG_LEVEL":        "Ref:LogLevel",
			"LEARNERLINK_HOOK_AUTH_HEADER": "Ref:HookAuthHeader",
			"OKTA_ORG_URL":                 "Ref:OktaOrgUrl",
			"OKTA_APP_ID":                  "Ref:OktaAppId",
		},
		"reconcile": {
			"LEARNERLINK_TABLE":                          "Ref:Table",
			"LEARNERLINK_QUEUE_URL":                      "Ref:Queue",
			"LEARNERLINK_SECRET_ID":                      "Ref:AppSecret", // Absorb and Okta credentials
			"LEARNERLINK_LOG_LEVEL":                      "Ref:LogLevel",
			"LEARNERLINK_TARGET":                         "absorb",
			"ABSORB_API_URL":                             "Ref:AbsorbApiUrl",
			"ABSORB_RATE_LIMIT":                          "Ref:AbsorbRateLimit",
			"ABSORB_DEFAULT_DEPARTMENT_ID":               "Ref:AbsorbDefaultDepartmentId",
			"ABSORB_CREATE_DEPARTMENTS":                  "Ref:AbsorbCreateDepartments",
			"ABSORB_GROUPS_FIELD":                        "Ref:AbsorbGroupsField",
			"LEARNERLINK_CONFIG_JSON":                    "Ref:LearnerlinkConfig",
			"LEARNERLINK_RECONCILE_DRY_RUN":              "Ref:ReconcileDryRun",
			"LEARNERLINK_RECONCILE_MAX_DEACTIVATE_SHARE": "Ref:ReconcileMaxDeactivateShare",
			"OKTA_ORG_URL":                               "Ref:OktaOrgUrl",
			"OKTA_APP_ID":                                "Ref:OktaAppId",
		},
	}
	where := map[string]string{}
	for _, v := range config.Vars {
		where[v.Name] = v.Where
	}
	// Credential overrides some code reads (tests, local runs); in AWS they
	// belong in the secret.
	for _, name := range []string{"OKTA_API_TOKEN", "OKTA_PRIVATE_KEY", "LEARNERLINK_HOOK_SECRET"} {
		where[name] = "local"
	}
	lambdafnSrc := readSources(t, filepath.Join(root, "shared", "lambdafn"))
	tm := loadTemplate(t)
	byDir := tm.functionByDir(t)
	for _, dir := range functionDirs(t) {
		t.Run(dir, func(t *testing.T) {
			w, known := want[dir]
			if !known {
				t.Fatalf("functions/%s: add its environment to this test's table (from what its code reads)", dir)
			}
			f, err := tm.cf.GetServerlessFunctionWithName(byDir[dir])
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			if f.Environment != nil {
				got = maps.Clone(f.Environment.Variables)
			}
			// Mapping overrides are a deployment's own choice (docs/DEPLOY.md).
			maps.DeleteFunc(got, func(k, _ string) bool { return strings.HasPrefix(k, mapping.EnvPrefix) })
			if !maps.Equal(got, w) {
				t.Errorf("%s environment:\n got  %v\n want %v", byDir[dir], got, w)
			}
			for name := range got {
				switch where[name] {
				case "aws", "both":
				case "local":
					t.Errorf("%s sets %s, which only the local runner reads (credentials belong in the secret)", byDir[dir], name)
				default:
					// A function's own setting, read in shared/lambdafn (and,
					// ideally, listed in config.Vars too).
					if !strings.Contains(lambdafnSrc, `"`+name+`"`) {
						t.Errorf("%s sets %s, which neither config.Vars nor shared/lambdafn reads", byDir[dir], name)
					}
				}
			}
			for _, name := range []string{"LEARNERLINK_TABLE", "LEARNERLINK_QUEUE_URL"} {
				if got[name] == "" {
					t.Errorf("%s: %s is required by shared/lambdafn", byDir[dir], name)
				}
			}
			// With every parameter at its default, config must accept the
			// environment (a bad default would fail every cold start).
			env := map[string]string{}
			for k, v := range got {
				if p, ok := strings.CutPrefix(v, "Ref:"); ok {
					if def, isParam := dig(tm.raw, "Parameters", p, "Default").(string); isParam {
						v = def
					} else {
						v = "x" // a resource: its name, URL or ARN
					}
				}
				if p, ok := strings.CutPrefix(v, "Sub:${"); ok && strings.HasSuffix(p, "}") {
					if def := dig(tm.raw, "Parameters", strings.TrimSuffix(p, "}"), "Default"); def != nil {
						v = fmt.Sprint(def) // a whole-parameter Sub, e.g. a Number as text
					}
				}
				env[k] = v
			}
			if _, err := config.FromEnv(func(k string) string { return env[k] }); err != nil {
				t.Errorf("%s: config rejects the defaults: %v", byDir[dir], err)
			}
		})
	}
}

// TestParameterValuesParse feeds every allowed value of the parameters the
// functions read to config.FromEnv.
func TestParameterValuesParse(t *testing.T) {
	tm := loadTemplate(t)
	cases := []struct{ param, env string }{
		{"LogLevel", "LEARNERLINK_LOG_LEVEL"},
		{"AbsorbCreateDepartments", "ABSORB_CREATE_DEPARTMENTS"},
	}
	for _, c := range cases {
		vals := strs(dig(tm.raw, "Parameters", c.param, "AllowedValues"))
		if len(vals) == 0 {
			t.Errorf("parameter %s: no AllowedValues", c.param)
		}
		for _, v := range vals {
			if _, err := config.FromEnv(func(k string) string {
				if k == c.env {
					return v
				}
				return ""
			}); err != nil {
				t.Errorf("parameter %s allows %q, which config rejects: %v", c.param, v, err)
			}
		}
	}
}

// readSources concatenates a folder's non-test Go files.
func readSources(t *testing.T, dir string) string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("%s: no Go files: %v", dir, err)
	}
	var b strings.Builder
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(src)
	}
	return b.String()
}

func TestNoSecretParameters(t *testing.T) {
	tm := loadTemplate(t)
	params, _ := tm.raw["Parameters"].(map[string]any)
	for name := range params {
		l := strings.ToLower(name)
		for _, bad := range []string{"password", "token", "secret", "privatekey", "apikey", "username"} {
			if strings.Contains(l, bad) {
				t.Errorf("parameter %s looks like a credential: credentials go into AppSecret (put-secret-value), never parameters", name)
			}
		}
	}
}

// TestSecret checks AppSecret has every key of config.Secrets: scimToken
// generated, hookSecret generated (through HookSecretSeed), the rest empty
// for the admin to fill.
func TestSecret(t *testing.T) {
	tm := loadTemplate(t)
	gen, _ := dig(tm.props(t, "AppSecret"), "GenerateSecretString").(map[string]any)
	if gen == nil {
		t.Fatal("AppSecret: no GenerateSecretString")
	}
	if gen["GenerateStringKey"] != "scimToken" {
		t.Errorf("AppSecret generates %v, want scimToken", gen["GenerateStringKey"])
	}
	if gen["ExcludePunctuation"] != true {
		t.Error("AppSecret: ExcludePunctuation must be true (the token goes into JSON and an HTTP header)")
	}
	tpl, _ := gen["SecretStringTemplate"].(string)
	tpl, _ = strings.CutPrefix(tpl, "Sub:")
	var doc map[string]string
	if err := json.Unmarshal([]byte(tpl), &doc); err != nil {
		t.Fatalf("AppSecret: SecretStringTemplate is not a JSON object of strings: %v", err)
	}
	want := map[string]string{}
	st := reflect.TypeFor[config.Secrets]()
	for i := range st.NumField() {
		key, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
		want[key] = ""
	}
	delete(want, "scimToken") // generated into the template's document
	want["hookSecret"] = "{{resolve:secretsmanager:${HookSecretSeed}:SecretString}}"
	if !maps.Equal(doc, want) {
		t.Errorf("AppSecret template:\n got  %v\n want %v", doc, want)
	}
	if g, _ := dig(tm.props(t, "HookSecretSeed"), "GenerateSecretString").(map[string]any); g == nil || g["ExcludePunctuation"] != true {
		t.Error("HookSecretSeed: must generate a value without punctuation")
	}
}

func TestQueues(t *testing.T) {
	tm := loadTemplate(t)
	q, err := tm.cf.GetSQSQueueWithName("Queue")
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := tm.cf.GetSQSQueueWithName("DeadLetterQueue")
	if err != nil {
		t.Fatal(err)
	}
	for name, qq := range map[string]*struct {
		fifo, cbd *bool
		name      *string
	}{
		"Queue":           {q.FifoQueue, q.ContentBasedDeduplication, q.QueueName},
		"DeadLetterQueue": {dlq.FifoQueue, dlq.ContentBasedDeduplication, dlq.QueueName},
	} {
		if qq.fifo == nil || !*qq.fifo {
			t.Errorf("%s: must be FIFO (per-identity ordering)", name)
		}
		if qq.cbd == nil || *qq.cbd {
			t.Errorf("%s: ContentBasedDeduplication must be false (shared/queue/sqs sets MessageDeduplicationId)", name)
		}
		if qq.name == nil || !strings.HasSuffix(*qq.name, ".fifo") {
			t.Errorf("%s: QueueName must end in .fifo", name)
		}
	}
	worker, err := tm.cf.GetServerlessFunctionWithName("WorkerFunction")
	if err != nil {
		t.Fatal(err)
	}
	if q.VisibilityTimeout == nil || worker.Timeout == nil || *q.VisibilityTimeout < workerTimeoutToVisibility**worker.Timeout {
		t.Errorf("Queue: VisibilityTimeout must be at least %dx the worker's Timeout", workerTimeoutToVisibility)
	}
	redrive, _ := q.RedrivePolicy.(map[string]any)
	if redrive["deadLetterTargetArn"] != "GetAtt:DeadLetterQueue.Arn" {
		t.Errorf("Queue: RedrivePolicy.deadLetterTargetArn = %v", redrive["deadLetterTargetArn"])
	}
	if got := dig(tm.props(t, "Queue"), "RedrivePolicy", "maxReceiveCount"); got != "Ref:MaxReceiveCount" {
		t.Errorf("Queue: RedrivePolicy.maxReceiveCount = %v, want the MaxReceiveCount parameter", got)
	}
	for _, qq := range []*int{q.MessageRetentionPeriod, dlq.MessageRetentionPeriod} {
		if qq == nil || *qq != 14*24*3600 {
			t.Error("queues keep messages the longest SQS allows (14 days): intents outlive an outage, dead letters wait for a human")
		}
	}
}

// TestEvents checks what invokes each function.
func TestEvents(t *testing.T) {
	tm := loadTemplate(t)
	event := func(fn, ev string) map[string]any {
		t.Helper()
		e, _ := dig(tm.props(t, fn), "Events", ev).(map[string]any)
		if e == nil {
			t.Fatalf("%s: no event %s", fn, ev)
		}
		return e
	}
	tests := []struct {
		fn, ev string
		want   map[string]any
	}{
		{"ScimFunction", "Scim", map[string]any{"Type": "HttpApi", "Properties": map[string]any{
			"ApiId": "Ref:HttpApi", "Path": "/scim/v2/{proxy+}", "Method": "ANY"}}},
		{"ScimFunction", "ScimRoot", map[string]any{"Type": "HttpApi", "Properties": map[string]any{
			"ApiId": "Ref:HttpApi", "Path": "/scim/v2", "Method": "ANY"}}},
		{"WorkerFunction", "Queue", map[string]any{"Type": "SQS", "Properties": map[string]any{
			"Queue": "GetAtt:Queue.Arn", "BatchSize": float64(10),
			"FunctionResponseTypes": []any{"ReportBatchItemFailures"},
			"ScalingConfig":         map[string]any{"MaximumConcurrency": "Ref:WorkerMaxConcurrency"}}}},
		{"SweeperFunction", "Every5Minutes", map[string]any{"Type": "Schedule", "Properties": map[string]any{
			"Schedule": "rate(5 minutes)"}}},
		{"HooksFunction", "Verify", map[string]any{"Type": "HttpApi", "Properties": map[string]any{
			"ApiId": "Ref:HttpApi", "Path": "/okta/hooks", "Method": "GET"}}},
		{"HooksFunction", "Deliver", map[string]any{"Type": "HttpApi", "Properties": map[string]any{
			"ApiId": "Ref:HttpApi", "Path": "/okta/hooks", "Method": "POST"}}},
		{"ReconcileFunction", "Daily", map[string]any{"Type": "Schedule", "Properties": map[string]any{
			"Schedule": "Ref:ReconcileSchedule"}}},
	}
	for _, tc := range tests {
		t.Run(tc.fn+"/"+tc.ev, func(t *testing.T) {
			if got := event(tc.fn, tc.ev); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
	if min, _ := dig(tm.raw, "Parameters", "WorkerMaxConcurrency", "MinValue").(float64); min < 2 {
		t.Errorf("WorkerMaxConcurrency: MinValue %v, want >= 2 (the event source's minimum)", min)
	}
}

func TestAlarms(t *testing.T) {
	tm := loadTemplate(t)
	tests := []struct {
		id, namespace, metric string
		dims                  map[string]string
	}{
		{"DeadLetterQueueAlarm", "AWS/SQS", "ApproximateNumberOfMessagesVisible", map[string]string{"QueueName": "GetAtt:DeadLetterQueue.QueueName"}},
		{"OldestMessageAlarm", "AWS/SQS", "ApproximateAgeOfOldestMessage", map[string]string{"QueueName": "GetAtt:Queue.QueueName"}},
		{"WorkerErrorsAlarm", "AWS/Lambda", "Errors", map[string]string{"FunctionName": "Ref:WorkerFunction"}},
		{"SweeperErrorsAlarm", "AWS/Lambda", "Errors", map[string]string{"FunctionName": "Ref:SweeperFunction"}},
		{"ApiServerErrorsAlarm", "AWS/ApiGateway", "5xx", map[string]string{"ApiId": "Ref:HttpApi"}},
		// shared/reconcile's EMF line: dimension Target, the function's
		// LEARNERLINK_TARGET (checked in TestEnvironment).
		{"DriftAlarm", "learnerlink", "Drift", map[string]string{"Target": "absorb"}},
		{"GuardRefusedAlarm", "learnerlink", "GuardRefused", map[string]string{"Target": "absorb"}},
		{"ReconcileErrorsAlarm", "AWS/Lambda", "Errors", map[string]string{"FunctionName": "Ref:ReconcileFunction"}},
		{"ThrottlesAlarm", "AWS/Lambda", "Throttles", nil}, // metric math over every function
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			p := tm.props(t, tc.id)
			if tm.resourceType(tc.id) != "AWS::CloudWatch::Alarm" {
				t.Fatalf("%s is not an alarm", tc.id)
			}
			if got := strs(p["AlarmActions"]); !slices.Equal(got, []string{"Ref:AlarmTopic"}) {
				t.Errorf("AlarmActions = %v, want the AlarmTopic", got)
			}
			if p["TreatMissingData"] != "notBreaching" {
				t.Errorf("TreatMissingData = %v, want notBreaching (no traffic is not an incident)", p["TreatMissingData"])
			}
			if tc.dims == nil {
				var fns []string
				for _, m := range p["Metrics"].([]any) {
					if ms := dig(m, "MetricStat", "Metric"); ms != nil {
						if dig(ms, "Namespace") != tc.namespace || dig(ms, "MetricName") != tc.metric {
							t.Errorf("metric %v, want %s %s", ms, tc.namespace, tc.metric)
						}
						for _, d := range dig(ms, "Dimensions").([]any) {
							fns = append(fns, dig(d, "Value").(string))
						}
					}
				}
				var want []string
				for _, id := range slices.Sorted(maps.Keys(tm.cf.GetAllServerlessFunctionResources())) {
					want = append(want, "Ref:"+id)
				}
				slices.Sort(fns)
				if !slices.Equal(fns, want) {
					t.Errorf("throttles of %v, want every function %v", fns, want)
				}
				return
			}
			if p["Namespace"] != tc.namespace || p["MetricName"] != tc.metric {
				t.Errorf("metric %v/%v, want %s/%s", p["Namespace"], p["MetricName"], tc.namespace, tc.metric)
			}
			dims := map[string]string{}
			for _, d := range strsAny(p["Dimensions"]) {
				dims[dig(d, "Name").(string)] = dig(d, "Value").(string)
			}
			if !maps.Equal(dims, tc.dims) {
				t.Errorf("dimensions %v, want %v", dims, tc.dims)
			}
		})
	}
	sub, _ := tm.raw["Resources"].(map[string]any)["AlarmEmailSubscription"].(map[string]any)
	if sub == nil || sub["Condition"] != "HasAlarmEmail" || dig(sub, "Properties", "Endpoint") != "Ref:AlarmEmail" {
		t.Error("AlarmEmailSubscription: an email subscription to AlarmEmail, only when it is set")
	}
}

func strsAny(v any) []any {
	l, _ := v.([]any)
	return l
}

func TestOutputs(t *testing.T) {
	tm := loadTemplate(t)
	want := map[string]string{
		"ScimBaseUrl":        "Sub:https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/scim/v2",
		"SecretArn":          "Ref:AppSecret",
		"DeadLetterQueueUrl": "Ref:DeadLetterQueue",
		"TableName":          "Ref:Table",
	}
	if _, err := os.Stat(filepath.Join(root, "functions", "hooks")); err == nil {
		want["HookUrl"] = "Sub:https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/okta/hooks"
	}
	for name, v := range want {
		if got := dig(tm.raw, "Outputs", name, "Value"); got != v {
			t.Errorf("output %s = %v, want %v", name, got, v)
		}
	}
}
