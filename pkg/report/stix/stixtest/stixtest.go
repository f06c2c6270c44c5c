// Package stixtest validates STIX 2.1 bundles in tests against the
// official JSON schemas, vendored under testdata/stix2-schemas (with their
// license) so that every clone checks STIX output.
package stixtest

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed testdata/stix2-schemas/schemas
var vendored embed.FS

// Schemas returns the vendored official STIX 2.1 schemas.
func Schemas() fs.FS {
	sub, err := fs.Sub(vendored, "testdata/stix2-schemas/schemas")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// Validate checks the bundle in file (see Problems) against the vendored
// schemas and fails the test for each problem. It returns the bundle's
// objects.
func Validate(t testing.TB, file string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, problems, err := Problems(Schemas(), raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	return objs
}

// timestampKeys hold timestamps, which nwhealth writes in UTC with
// milliseconds.
var timestampKeys = []string{"created", "modified", "valid_from", "first_seen", "last_seen", "first_observed", "last_observed", "published", "start", "end"}

var millis = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// Problems checks a bundle against the schemas in root (loaded all
// together: they refer to each other by $id and relative refs), as a
// whole and object by object, then what the schemas leave open: unique
// ids, references that resolve, timestamps in UTC with milliseconds.
func Problems(root fs.FS, raw []byte) ([]map[string]any, []string, error) {
	c := jsonschema.NewCompiler()
	ids := map[string]string{} // schema file name (object type) -> $id
	err := fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		f, err := root.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		m, _ := doc.(map[string]any)
		id, _ := m["$id"].(string)
		if id == "" {
			return fmt.Errorf("%s has no $id", p)
		}
		ids[strings.TrimSuffix(path.Base(p), ".json")] = id
		return c.AddResource(id, doc)
	})
	if err != nil {
		return nil, nil, err
	}
	bundleSchema, err := c.Compile(ids["bundle"])
	if err != nil {
		return nil, nil, err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, err
	}
	var problems []string
	if err := bundleSchema.Validate(inst); err != nil {
		problems = append(problems, fmt.Sprintf("bundle does not validate: %v", err))
	}
	var b struct {
		Objects []map[string]any `json:"objects"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, nil, err
	}
	m, _ := inst.(map[string]any)
	objs, _ := m["objects"].([]any)
	seen := map[string]bool{}
	for _, o := range b.Objects {
		id, _ := o["id"].(string)
		seen[id] = true
	}
	if len(seen) != len(b.Objects) {
		problems = append(problems, fmt.Sprintf("%d objects, %d distinct ids", len(b.Objects), len(seen)))
	}
	for i, o := range b.Objects {
		typ, _ := o["type"].(string)
		schemaID, ok := ids[typ]
		if !ok {
			problems = append(problems, fmt.Sprintf("%v: no schema for type %q", o["id"], typ))
			continue
		}
		s, err := c.Compile(schemaID)
		if err != nil {
			return nil, nil, fmt.Errorf("schema for %s: %w", typ, err)
		}
		if err := s.Validate(objs[i]); err != nil {
			problems = append(problems, fmt.Sprintf("%v does not validate: %v", o["id"], err))
		}
		for k, v := range o {
			if str, ok := v.(string); ok && strings.HasSuffix(k, "_ref") && !seen[str] {
				problems = append(problems, fmt.Sprintf("%v.%s = %s resolves to nothing", o["id"], k, str))
			}
			if list, ok := v.([]any); ok && strings.HasSuffix(k, "_refs") {
				for _, r := range list {
					if s, _ := r.(string); !seen[s] {
						problems = append(problems, fmt.Sprintf("%v.%s holds %v, which resolves to nothing", o["id"], k, r))
					}
				}
			}
			if str, ok := v.(string); ok && slices.Contains(timestampKeys, k) && !millis.MatchString(str) {
				problems = append(problems, fmt.Sprintf("%v.%s = %q: want UTC with milliseconds", o["id"], k, str))
			}
		}
	}
	return b.Objects, problems, nil
}
