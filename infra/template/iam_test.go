package template_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/learnerlink/learnerlink/shared/connector/absorb"
	"github.com/learnerlink/learnerlink/shared/hooks"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/reconcile"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/scim"
	"github.com/learnerlink/learnerlink/shared/sweeper"
	"github.com/learnerlink/learnerlink/shared/worker"
)

// Resources as the placeholders of load_test.go spell them.
const (
	tableArn = "GetAtt:Table.Arn"
	indexArn = "Sub:${Table.Arn}/index/*"
	queueArn = "GetAtt:Queue.Arn"
	dlqArn   = "GetAtt:DeadLetterQueue.Arn"
	secret   = "Ref:AppSecret"
)

// wantGrants is each function's policy, exactly: resource -> actions. It is
// checked against the template (TestPolicies) and against the AWS calls the
// code makes (TestPoliciesMatchCode).
func wantGrants() map[string]map[string][]string {
	logs := func(fn string) string { return "GetAtt:" + fn + "LogGroup.Arn" }
	logActions := []string{"logs:CreateLogStream", "logs:PutLogEvents"}
	scimStore := []string{"dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem",
		"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}
	return map[string]map[string][]string{
		"scim": {
			logs("Scim"): logActions,
			tableArn:     scimStore,
			indexArn:     {"dynamodb:Query"},
			queueArn:     {"sqs:SendMessage"},
			secret:       {"secretsmanager:GetSecretValue"},
		},
		"worker": {
			logs("Worker"): logActions,
			tableArn:       {"dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"},
			indexArn:       {"dynamodb:Query"},
			queueArn:       {"sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"},
			dlqArn:         {"sqs:SendMessage"},
			secret:         {"secretsmanager:GetSecretValue"},
		},
		"hooks": {
			logs("Hooks"): logActions,
			tableArn:      scimStore,
			indexArn:      {"dynamodb:Query"},
			queueArn:      {"sqs:SendMessage"},
			secret:        {"secretsmanager:GetSecretValue"},
		},
		"reconcile": {
			logs("Reconcile"): logActions,
			tableArn:          scimStore,
			indexArn:          {"dynamodb:Query"},
			queueArn:          {"sqs:SendMessage"},
			secret:            {"secretsmanager:GetSecretValue"},
		},
		"sweeper": {
			logs("Sweeper"):               logActions,
			tableArn:                      scimStore, // FinishGroupWrites
			"Sub:${Table.Arn}/index/GSI3": {"dynamodb:Query"},
			queueArn:                      {"sqs:SendMessage"},
		},
	}
}

// allowances are granted although no Go code calls them: Lambda itself
// writes the logs, and the SQS event source mapping polls with the
// function's role (ReceiveMessage, DeleteMessage, GetQueueAttributes).
func allowances() map[string][]string {
	logs := []string{"logs:CreateLogStream", "logs:PutLogEvents"}
	return map[string][]string{
		"scim":      logs,
		"worker":    append(logs, "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"),
		"sweeper":   logs,
		"reconcile": logs,
		"hooks":     logs,
	}
}

// rolePolicy reads the function's role: resource -> sorted actions.
func rolePolicy(t *testing.T, tm *tmpl, functionID string) map[string][]string {
	t.Helper()
	f, err := tm.cf.GetServerlessFunctionWithName(functionID)
	if err != nil {
		t.Fatal(err)
	}
	if f.Role == nil {
		t.Fatalf("%s: no Role", functionID)
	}
	roleID := strings.TrimSuffix(strings.TrimPrefix(*f.Role, "GetAtt:"), ".Arn")
	role, err := tm.cf.GetIAMRoleWithName(roleID)
	if err != nil {
		t.Fatal(err)
	}
	if len(role.ManagedPolicyArns) > 0 {
		t.Errorf("%s: no managed policies (they grant on *)", roleID)
	}
	trust := strs(dig(role.AssumeRolePolicyDocument, "Statement"))
	if len(trust) != 1 || !strings.Contains(trust[0], "lambda.amazonaws.com") {
		t.Errorf("%s: must be assumable by lambda.amazonaws.com only: %v", roleID, trust)
	}
	got := map[string][]string{}
	for _, p := range role.Policies {
		for _, st := range strsAny(dig(p.PolicyDocument, "Statement")) {
			if dig(st, "Effect") != "Allow" {
				t.Errorf("%s: only Allow statements expected", roleID)
			}
			if dig(st, "Condition") != nil || dig(st, "NotAction") != nil || dig(st, "NotResource") != nil {
				t.Errorf("%s: Condition/NotAction/NotResource not understood by this test", roleID)
			}
			for _, r := range strs(dig(st, "Resource")) {
				got[r] = append(got[r], strs(dig(st, "Action"))...)
			}
		}
	}
	for r, a := range got {
		slices.Sort(a)
		got[r] = slices.Compact(a)
	}
	return got
}

func TestPolicies(t *testing.T) {
	tm := loadTemplate(t)
	byDir := tm.functionByDir(t)
	want := wantGrants()
	for _, dir := range functionDirs(t) {
		t.Run(dir, func(t *testing.T) {
			w, ok := want[dir]
			if !ok {
				t.Fatalf("functions/%s: add its policy to wantGrants (from the AWS calls its code makes)", dir)
			}
			got := rolePolicy(t, tm, byDir[dir])
			for r, a := range w {
				w[r] = slices.Sorted(slices.Values(a))
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("%s's role:\n got  %v\n want %v", byDir[dir], got, w)
			}
			for r, actions := range got {
				if strings.Contains(r, "*") && r != indexArn {
					t.Errorf("wildcard resource %q", r)
				}
				for _, a := range actions {
					if strings.Contains(a, "*") {
						t.Errorf("wildcard action %q", a)
					}
				}
			}
		})
	}
}

// codeEntry says where a function's AWS calls start: the methods it calls
// (through the consumer interfaces its packages define) in one package.
type codeEntry struct {
	dir     string   // package folder under shared/
	methods []string // entry points in that package
}

func methodsOf[T any]() []string {
	tt := reflect.TypeFor[T]()
	out := make([]string, tt.NumMethod())
	for i := range out {
		out[i] = tt.Method(i).Name
	}
	return out
}

// codeEntries is how each function reaches AWS (shared/lambdafn wires it):
// the store through the interface its consumer declares, the queue through
// the calls lambdafn makes, the secret when LEARNERLINK_SECRET_ID is set.
func codeEntries() map[string][]codeEntry {
	return map[string][]codeEntry{
		"scim": {
			{"store/dynamo", methodsOf[scim.Store]()},
			{"queue/sqs", methodsOf[queue.Enqueuer]()},
			{"lambdafn", []string{"SecretString"}},
		},
		"worker": {
			{"store/dynamo", methodsOf[worker.Store]()},
			{"throttle", methodsOf[absorb.Limiter]()},
			{"tokencache", methodsOf[absorb.TokenCache]()},
			{"queue/sqs", []string{"Retry", "Park"}}, // lambdafn.consume; Lambda deletes acked messages
			{"lambdafn", []string{"SecretString"}},
		},
		"hooks": {
			{"store/dynamo", methodsOf[hooks.Store]()},
			{"queue/sqs", methodsOf[queue.Enqueuer]()},
			{"lambdafn", []string{"SecretString"}},
		},
		"reconcile": {
			{"store/dynamo", append(methodsOf[reconcile.Store](), methodsOf[review.Store]()...)},
			{"throttle", methodsOf[absorb.Limiter]()},
			{"tokencache", methodsOf[absorb.TokenCache]()},
			{"queue/sqs", methodsOf[queue.Enqueuer]()}, // repairs and review's Force intents
			{"lambdafn", []string{"SecretString"}},
		},
		"sweeper": {
			{"store/dynamo", methodsOf[sweeper.Pending]()},
			{"queue/sqs", methodsOf[queue.Enqueuer]()},
		},
	}
}

// sdkOperations are the operation methods of an SDK client (ctx, *XInput).
func sdkOperations(client any) map[string]bool {
	ctxType := reflect.TypeFor[context.Context]()
	ct := reflect.TypeOf(client)
	ops := map[string]bool{}
	for i := range ct.NumMethod() {
		m := ct.Method(i)
		if m.Type.NumIn() >= 3 && m.Type.In(1) == ctxType && m.Type.In(2).Kind() == reflect.Pointer &&
			strings.HasSuffix(m.Type.In(2).Elem().Name(), "Input") {
			ops[m.Name] = true
		}
	}
	return ops
}

// clients maps each package folder to the SDK client it calls and its IAM
// service prefix.
func clients() map[string]struct {
	ops    map[string]bool
	prefix string
} {
	ddb := sdkOperations(&dynamodb.Client{})
	type c = struct {
		ops    map[string]bool
		prefix string
	}
	return map[string]c{
		"store/dynamo": {ddb, "dynamodb"},
		"throttle":     {ddb, "dynamodb"},
		"tokencache":   {ddb, "dynamodb"},
		"queue/sqs":    {sdkOperations(&sqs.Client{}), "sqs"},
		"lambdafn":     {sdkOperations(&secretsmanager.Client{}), "secretsmanager"},
	}
}

// iamActions maps an SDK operation to the IAM actions that authorise it.
// Batch calls are authorised as their single form; TransactWriteItems as
// its parts (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
func iamActions(prefix, op string) ([]string, bool) {
	special := map[string][]string{
		"dynamodb.TransactWriteItems":      {"dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
		"dynamodb.TransactGetItems":        {"dynamodb:GetItem"},
		"dynamodb.ExecuteStatement":        nil, // PartiQL: map it when it is used
		"dynamodb.ExecuteTransaction":      nil,
		"dynamodb.BatchExecuteStatement":   nil,
		"sqs.SendMessageBatch":             {"sqs:SendMessage"},
		"sqs.DeleteMessageBatch":           {"sqs:DeleteMessage"},
		"sqs.ChangeMessageVisibilityBatch": {"sqs:ChangeMessageVisibility"},
	}
	if a, ok := special[prefix+"."+op]; ok {
		return a, a != nil
	}
	return []string{prefix + ":" + op}, true
}

// pkgCalls parses a package (tests excluded) and indexes, per function or
// method name, the names it calls. Methods of different types with one name
// are merged, which can only over-approximate.
func pkgCalls(t *testing.T, dir string) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(root, "shared", dir, "*.go"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("shared/%s: no Go files: %v", dir, err)
	}
	calls := map[string][]string{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				c, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				switch fn := c.Fun.(type) {
				case *ast.SelectorExpr:
					calls[fd.Name.Name] = append(calls[fd.Name.Name], fn.Sel.Name)
				case *ast.Ident:
					calls[fd.Name.Name] = append(calls[fd.Name.Name], fn.Name)
				}
				return true
			})
		}
	}
	return calls
}

// reachedOps follows calls from the entry methods within the package and
// returns the SDK operations reached.
func reachedOps(calls map[string][]string, ops map[string]bool, entries []string) map[string]bool {
	found := map[string]bool{}
	seen := map[string]bool{}
	todo := slices.Clone(entries)
	for len(todo) > 0 {
		name := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[name] {
			continue
		}
		seen[name] = true
		for _, c := range calls[name] {
			if ops[c] {
				found[c] = true
			} else if _, local := calls[c]; local {
				todo = append(todo, c)
			}
		}
	}
	return found
}

// TestPoliciesMatchCode derives each function's IAM actions from the SDK
// calls reachable from its entry points and compares them with wantGrants:
// every call allowed, nothing else granted beyond allowances().
func TestPoliciesMatchCode(t *testing.T) {
	tm := loadTemplate(t)
	byDir := tm.functionByDir(t)
	cl := clients()
	entries := codeEntries()
	want, extra := wantGrants(), allowances()
	for _, dir := range functionDirs(t) {
		t.Run(dir, func(t *testing.T) {
			es, ok := entries[dir]
			if !ok {
				t.Fatalf("functions/%s: add how it reaches AWS to codeEntries", dir)
			}
			f, err := tm.cf.GetServerlessFunctionWithName(byDir[dir])
			if err != nil {
				t.Fatal(err)
			}
			readsSecret := f.Environment != nil && f.Environment.Variables["LEARNERLINK_SECRET_ID"] != ""
			derived := map[string]bool{}
			for _, e := range es {
				if e.dir == "lambdafn" && !readsSecret {
					t.Errorf("codeEntries reads the secret but the template sets no LEARNERLINK_SECRET_ID")
				}
				c := cl[e.dir]
				for op := range reachedOps(pkgCalls(t, e.dir), c.ops, e.methods) {
					actions, known := iamActions(c.prefix, op)
					if !known {
						t.Errorf("shared/%s calls %s.%s: add its IAM actions to iamActions", e.dir, c.prefix, op)
					}
					for _, a := range actions {
						derived[a] = true
					}
				}
			}
			if readsSecret && !derived["secretsmanager:GetSecretValue"] {
				t.Errorf("the template sets LEARNERLINK_SECRET_ID but codeEntries does not read it")
			}
			granted := map[string]bool{}
			for _, actions := range want[dir] {
				for _, a := range actions {
					granted[a] = true
				}
			}
			needed := maps.Clone(derived)
			for _, a := range extra[dir] {
				needed[a] = true
			}
			for a := range needed {
				if !granted[a] {
					t.Errorf("the code calls %s but the policy does not grant it", a)
				}
			}
			for a := range granted {
				if !needed[a] {
					t.Errorf("the policy grants %s, which neither the code nor a documented allowance needs", a)
				}
			}
			t.Logf("derived from the code: %v", slices.Sorted(maps.Keys(derived)))
		})
	}
}

// notInLambda are SDK calls in the scanned packages that no Lambda
// function reaches, with the reason; TestEveryClientCallAccountedFor keeps
// this list and the code in step.
func notInLambda() map[string]string {
	return map[string]string{
		"store/dynamo CreateTable":               "schema.go: local runner and tests; AWS tables come from the template",
		"store/dynamo DescribeTable":             "schema.go: waiting for CreateTable",
		"store/dynamo UpdateTimeToLive":          "schema.go: CreateTable enables TTL",
		"store/dynamo DescribeTimeToLive":        "schema.go: CreateTable enables TTL",
		"queue/sqs CreateQueue":                  "create.go: local runner and tests; AWS queues come from the template",
		"queue/sqs GetQueueAttributes":           "create.go: reads the DLQ ARN for CreateQueues",
		"queue/sqs ReceiveMessage":               "Receive and DeadLetters: local runner and tools; in Lambda the event source receives",
		"queue/sqs ChangeMessageVisibilityBatch": "DeadLetters: tools only",
	}
}

// TestEveryClientCallAccountedFor greps each scanned package for
// `.<Operation>(ctx` and checks every SDK operation found is either
// reached by some function (so TestPoliciesMatchCode covers it) or listed
// in notInLambda. A call the AST walk cannot reach by name fails here.
func TestEveryClientCallAccountedFor(t *testing.T) {
	callRe := regexp.MustCompile(`\.([A-Z][A-Za-z0-9]*)\(\s*(ctx|context\.)`)
	cl := clients()
	reached := map[string]bool{}
	for _, es := range codeEntries() {
		for _, e := range es {
			for op := range reachedOps(pkgCalls(t, e.dir), cl[e.dir].ops, e.methods) {
				reached[e.dir+" "+op] = true
			}
		}
	}
	skip := notInLambda()
	used := map[string]bool{}
	for _, dir := range slices.Sorted(maps.Keys(cl)) {
		paths, _ := filepath.Glob(filepath.Join(root, "shared", dir, "*.go"))
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range callRe.FindAllStringSubmatch(string(src), -1) {
				if !cl[dir].ops[m[1]] {
					continue
				}
				key := dir + " " + m[1]
				used[key] = true
				if !reached[key] && skip[key] == "" {
					t.Errorf("%s calls %s, which no function reaches from codeEntries and notInLambda does not explain", filepath.Base(p), key)
				}
			}
		}
	}
	for key := range skip {
		if !used[key] {
			t.Errorf("notInLambda lists %q, which the code no longer calls", key)
		}
	}
}
