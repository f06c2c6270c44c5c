package stixtest

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// The validator must see what is wrong: a negative control for every
// check it makes.
func TestProblems(t *testing.T) {
	root := Schemas()
	good := `{"type": "bundle", "id": "bundle--0198f97b-e65d-5025-87e5-58bc39d4bdb4", "objects": [
 {"type": "identity", "spec_version": "2.1", "id": "identity--0198f97b-e65d-5025-87e5-58bc39d4bdb4", "created": "2026-03-02T00:00:00.000Z",
  "modified": "2026-03-02T00:00:00.000Z", "name": "nwhealth", "identity_class": "system"},
 {"type": "indicator", "spec_version": "2.1", "id": "indicator--0198f97b-e65d-5025-87e5-58bc39d4bdb4", "created": "2026-03-02T00:00:00.000Z",
  "modified": "2026-03-02T00:00:00.000Z", "created_by_ref": "identity--0198f97b-e65d-5025-87e5-58bc39d4bdb4",
  "pattern": "[ipv4-addr:value = '203.0.113.77']", "pattern_type": "stix", "valid_from": "2026-03-02T00:00:00.000Z"}]}`
	_, problems, err := Problems(root, []byte(good))
	if err != nil || len(problems) != 0 {
		t.Fatalf("a valid bundle: %v %v", err, problems)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"seconds only", `"valid_from": "2026-03-02T00:00:00.000Z"`, `"valid_from": "2026-03-02T00:00:00Z"`, "milliseconds"},
		{"created without millis", `58bc39d4bdb4", "created": "2026-03-02T00:00:00.000Z"`, `58bc39d4bdb4", "created": "2026-03-02T00:00:00Z"`, "does not validate"},
		{"dangling ref", `"created_by_ref": "identity--0198f97b`, `"created_by_ref": "identity--1198f97b`, "resolves to nothing"},
		{"bad id", `"id": "indicator--0198f97b-e65d-5025`, `"id": "indicator--0198f97b-e65d-0025`, "does not validate"},
		{"missing pattern type", `"pattern_type": "stix", `, ``, "does not validate"},
		{"duplicate id", `"id": "indicator--0198f97b`, `"id": "identity--0198f97b`, "distinct ids"},
	} {
		_, problems, err := Problems(root, []byte(strings.Replace(good, tc.from, tc.to, 1)))
		if err != nil || !strings.Contains(strings.Join(problems, "\n"), tc.want) {
			t.Errorf("%s: problems %v (%v), want %q", tc.name, problems, err, tc.want)
		}
	}
}

// TestVendoredSchemas checks that the vendored schemas are the shared
// copy of the upstream ones, file for file, and that the license came
// with them.
func TestVendoredSchemas(t *testing.T) {
	if _, err := os.Stat(filepath.Join("testdata", "stix2-schemas", "LICENSE")); err != nil {
		t.Fatalf("the schemas' license is not vendored with them: %v", err)
	}
	shared := testenv.SharedFile(t, "stix2-schemas", "schemas")
	n := 0
	err := fs.WalkDir(Schemas(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		ours, err := fs.ReadFile(Schemas(), p)
		if err != nil {
			return err
		}
		theirs, err := os.ReadFile(filepath.Join(shared, filepath.FromSlash(p)))
		if err != nil {
			return err
		}
		if !bytes.Equal(ours, theirs) {
			t.Errorf("%s differs from the shared copy", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	filepath.WalkDir(shared, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			want++
		}
		return nil
	})
	if n != want || n < 50 {
		t.Errorf("%d vendored schema files, %d shared", n, want)
	}
}
