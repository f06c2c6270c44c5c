// Package jsonltest checks JSON Lines output in tests against the schema
// of each record's type (pkg/jsonl/schema). Any test that gets JSON Lines
// from a command calls Check on it.
package jsonltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/nwhealth/nwhealth/pkg/jsonl"
)

var (
	once    sync.Once
	schemas map[string]*jsonschema.Schema
	loadErr error
)

// load compiles every type's schema once.
func load() (map[string]*jsonschema.Schema, error) {
	once.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat() // addresses and times are checked, not only typed
		err := fs.WalkDir(jsonl.Schemas, "schema", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			raw, err := fs.ReadFile(jsonl.Schemas, p)
			if err != nil {
				return err
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			return c.AddResource(jsonl.SchemaBase+strings.TrimPrefix(p, "schema/"), doc)
		})
		if err != nil {
			loadErr = err
			return
		}
		schemas = map[string]*jsonschema.Schema{}
		for _, typ := range jsonl.Types {
			s, err := c.Compile(jsonl.SchemaBase + typ + ".json")
			if err != nil {
				loadErr = fmt.Errorf("schema of %s: %w", typ, err)
				return
			}
			schemas[typ] = s
		}
	})
	return schemas, loadErr
}

// Problems validates every line of out against the schema of its "type"
// and returns what is wrong, each naming the line; blank lines are
// skipped, anything else must be a JSON object of a known type.
func Problems(out []byte) ([]string, error) {
	ss, err := load()
	if err != nil {
		return nil, err
	}
	var probs []string
	for i, line := range bytes.Split(out, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
		if err != nil {
			probs = append(probs, fmt.Sprintf("line %d: not JSON: %v: %.200s", i+1, err, line))
			continue
		}
		m, _ := inst.(map[string]any)
		typ, _ := m["type"].(string)
		s, ok := ss[typ]
		if !ok {
			probs = append(probs, fmt.Sprintf("line %d: no schema for type %q: %.200s", i+1, typ, line))
			continue
		}
		if err := s.Validate(inst); err != nil {
			probs = append(probs, fmt.Sprintf("line %d (%s) does not validate: %v\n%.600s", i+1, typ, err, line))
		}
	}
	return probs, nil
}

// Check fails t for every line of out that does not validate (see
// Problems) and returns the records, by type, for further checks.
func Check(t testing.TB, out []byte) map[string][]map[string]any {
	t.Helper()
	probs, err := Problems(out)
	if err != nil {
		t.Fatalf("jsonl schemas: %v", err)
	}
	for i, p := range probs {
		if i == 10 {
			t.Errorf("... %d more lines do not validate", len(probs)-10)
			break
		}
		t.Error(p)
	}
	byType := map[string][]map[string]any{}
	for _, line := range bytes.Split(out, []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil {
			typ, _ := m["type"].(string)
			byType[typ] = append(byType[typ], m)
		}
	}
	return byType
}

// IsJSONL reports whether out looks like JSON Lines (its first non-blank
// byte opens an object): test helpers that run commands check such
// output and leave pcap and tables alone.
func IsJSONL(out []byte) bool {
	b := bytes.TrimSpace(out)
	return len(b) > 0 && b[0] == '{'
}
