package template_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"
)

// root is the repository root, relative to this package.
const root = "../.."

// tmpl is template.yaml parsed twice by goformation: typed, and as a plain
// map for properties goformation's structs lack (e.g. an SQS event's
// ScalingConfig). In both, intrinsics become readable placeholders:
// "Ref:Name", "GetAtt:Name.Attr", "Sub:<the string>". In the typed form
// only, a Ref to a Number parameter is its default, so numeric fields
// decode.
type tmpl struct {
	cf  *cloudformation.Template
	raw map[string]any
}

func loadTemplate(t testing.TB) *tmpl {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	typed, err := intrinsics.ProcessYAML(b, placeholders(true))
	if err != nil {
		t.Fatalf("goformation: process template.yaml: %v", err)
	}
	typed, err = dropGoformationGaps(typed)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := goformation.ParseJSONWithOptions(typed, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		t.Fatalf("goformation: parse template.yaml: %v", err)
	}
	processed, err := intrinsics.ProcessYAML(b, placeholders(false))
	if err != nil {
		t.Fatalf("goformation: process template.yaml: %v", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(processed, &raw); err != nil {
		t.Fatal(err)
	}
	return &tmpl{cf: cf, raw: raw}
}

// dropGoformationGaps removes valid SAM properties goformation v7.14.9's
// structs do not know (it rejects unknown fields): HttpApi's
// AccessLogSettings (goformation spells it AccessLogSetting). The tests read
// them from the raw form.
func dropGoformationGaps(processed []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(processed, &doc); err != nil {
		return nil, err
	}
	res, _ := doc["Resources"].(map[string]any)
	for _, r := range res {
		if dig(r, "Type") == "AWS::Serverless::HttpApi" {
			if p, ok := dig(r, "Properties").(map[string]any); ok {
				delete(p, "AccessLogSettings")
			}
		}
	}
	return json.Marshal(doc)
}

func placeholders(numbers bool) *intrinsics.ProcessorOptions {
	ref := func(_ string, input any, template any) any {
		name, _ := input.(string)
		if numbers {
			if p, ok := dig(template, "Parameters", name).(map[string]any); ok && p["Type"] == "Number" {
				return p["Default"]
			}
		}
		return "Ref:" + name
	}
	getAtt := func(_ string, input any, _ any) any {
		switch v := input.(type) {
		case string:
			return "GetAtt:" + v
		case []any:
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			return "GetAtt:" + strings.Join(parts, ".")
		}
		return fmt.Sprintf("GetAtt:%v", input)
	}
	sub := func(_ string, input any, _ any) any {
		switch v := input.(type) {
		case string:
			return "Sub:" + v
		case []any:
			if len(v) > 0 {
				return fmt.Sprintf("Sub:%v", v[0])
			}
		}
		return fmt.Sprintf("Sub:%v", input)
	}
	return &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
		"Ref": ref, "Fn::GetAtt": getAtt, "Fn::Sub": sub,
	}}
}

// dig walks nested maps; nil when a key is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// props is a resource's Properties in the raw form.
func (tm *tmpl) props(t testing.TB, logicalID string) map[string]any {
	t.Helper()
	p, ok := dig(tm.raw, "Resources", logicalID, "Properties").(map[string]any)
	if !ok {
		t.Fatalf("template.yaml: no resource %s with Properties", logicalID)
	}
	return p
}

// resourceType is a resource's Type, "" when there is none.
func (tm *tmpl) resourceType(logicalID string) string {
	s, _ := dig(tm.raw, "Resources", logicalID, "Type").(string)
	return s
}

// strs reads a string or a list of strings (IAM Action and Resource).
func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	case []string:
		return slices.Clone(x)
	}
	return nil
}

// functionDirs are the folders of functions/ (each must be a Lambda).
func functionDirs(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) == 0 {
		t.Fatal("functions/ has no folders")
	}
	return dirs
}

// functionByDir maps each folder name to the logical id of the Function
// whose CodeUri is functions/<name>.
func (tm *tmpl) functionByDir(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for id, f := range tm.cf.GetAllServerlessFunctionResources() {
		if f.CodeUri == nil || f.CodeUri.String == nil {
			t.Errorf("%s: CodeUri must be a local folder", id)
			continue
		}
		dir := filepath.ToSlash(filepath.Clean(*f.CodeUri.String))
		name, ok := strings.CutPrefix(dir, "functions/")
		if !ok || strings.Contains(name, "/") {
			t.Errorf("%s: CodeUri %q is not functions/<name>", id, *f.CodeUri.String)
			continue
		}
		if prev, dup := out[name]; dup {
			t.Errorf("functions/%s is the CodeUri of both %s and %s", name, prev, id)
		}
		out[name] = id
	}
	return out
}
