package jsonl_test

import (
	"encoding"
	"encoding/json"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
)

// structs is the Go struct of every record type.
var structs = map[string]any{
	jsonl.TypeOperation: jsonl.Operation{}, jsonl.TypeStory: jsonl.Story{}, jsonl.TypeStats: jsonl.Stats{},
	jsonl.TypeAttack:  jsonl.Attack{},
	jsonl.TypeFinding: jsonl.Finding{}, jsonl.TypeAction: jsonl.Action{}, jsonl.TypeSummary: jsonl.Summary{},
	jsonl.TypeHost: jsonl.Host{}, jsonl.TypeController: jsonl.Controller{}, jsonl.TypeFlow: jsonl.Flow{},
	jsonl.TypeImport: jsonl.Import{}, jsonl.TypeImportSummary: jsonl.ImportSummary{}, jsonl.TypeShard: jsonl.Shard{},
	jsonl.TypeDamage: jsonl.Damage{}, jsonl.TypeStore: jsonl.Store{}, jsonl.TypeCaptureProgress: jsonl.Capture{},
	jsonl.TypeCaptureSummary: jsonl.Capture{}, jsonl.TypeIndicatorMatch: jsonl.IndicatorMatch{},
}

type schema = map[string]any

func readSchema(t *testing.T, name string) schema {
	t.Helper()
	raw, err := fs.ReadFile(jsonl.Schemas, "schema/"+name)
	if err != nil {
		t.Fatal(err)
	}
	var s schema
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

// resolve follows a $ref into common.json's definitions.
func resolve(t *testing.T, common, s schema) schema {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		name := ref[strings.LastIndexByte(ref, '/')+1:]
		def, ok := common["$defs"].(map[string]any)[name].(map[string]any)
		if !ok {
			t.Fatalf("unresolved $ref %s", ref)
		}
		s = def
	}
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

// jsonFields lists the JSON members of a struct type as encoding/json
// writes them (embedded structs flattened), each with omitempty.
func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// compare checks that the struct type t and the object schema s name the
// same members, that exactly the members without omitempty are required,
// and recurses into nested objects and arrays of them.
func compare(tb *testing.T, where string, common schema, t reflect.Type, s schema) {
	s = resolve(tb, common, s)
	props, _ := s["properties"].(map[string]any)
	if s["additionalProperties"] != false {
		tb.Errorf("%s: the schema allows members it does not name (additionalProperties)", where)
	}
	var required []string
	for _, r := range s["required"].([]any) {
		required = append(required, r.(string))
	}
	fields := jsonFields(t)
	for name, f := range fields {
		p, ok := props[name].(map[string]any)
		if !ok {
			tb.Errorf("%s.%s: in the Go struct, not in the schema", where, name)
			continue
		}
		// A member is always written (required) or omitted when empty.
		omit := strings.Contains(f.Tag.Get("json"), ",omitempty")
		if req := slices.Contains(required, name); omit == req {
			tb.Errorf("%s.%s: omitempty is %v and required is %v in the schema: exactly one must hold", where, name, omit, req)
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		p = resolve(tb, common, p)
		switch {
		case ft.Implements(textMarshaler) || reflect.PointerTo(ft).Implements(textMarshaler):
		case ft.Kind() == reflect.Struct:
			compare(tb, where+"."+name, common, ft, p)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !ft.Elem().Implements(textMarshaler):
			items, _ := p["items"].(map[string]any)
			if items == nil {
				tb.Errorf("%s.%s: an array of objects in Go, no items in the schema", where, name)
				continue
			}
			compare(tb, where+"."+name+"[]", common, ft.Elem(), items)
		}
	}
	for name := range props {
		if _, ok := fields[name]; !ok && !(where == "" && name == "type") {
			tb.Errorf("%s.%s: in the schema, not in the Go struct", where, name)
		}
	}
}

// TestSchemasMatchStructs holds each record's Go struct and its schema
// together: a field added to one and not the other fails here.
func TestSchemasMatchStructs(t *testing.T) {
	common := readSchema(t, "common.json")
	files, _ := fs.Glob(jsonl.Schemas, "schema/*.json")
	if len(files) != len(jsonl.Types)+1 {
		t.Errorf("%d schema files for %d types and common.json", len(files), len(jsonl.Types))
	}
	for _, typ := range jsonl.Types {
		v, ok := structs[typ]
		if !ok {
			t.Errorf("type %s has no struct in this test", typ)
			continue
		}
		s := readSchema(t, typ+".json")
		if s["$id"] != jsonl.SchemaBase+typ+".json" {
			t.Errorf("%s: $id %v", typ, s["$id"])
		}
		if c := s["properties"].(map[string]any)["type"].(map[string]any)["const"]; c != typ {
			t.Errorf("%s: type const %v", typ, c)
		}
		compare(t, typ, common, reflect.TypeOf(v), s)
	}
}

// TestDocumented checks that docs/format/jsonl.md has a section for every
// type listing exactly its schema's top-level members.
func TestDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "docs", "format", "jsonl.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string][]string{}
	cur := ""
	heading := regexp.MustCompile("^### `([a-z_-]+)`")
	row := regexp.MustCompile("^\\| `([a-z_0-9]+)` \\|")
	for _, line := range strings.Split(string(raw), "\n") {
		if m := heading.FindStringSubmatch(line); m != nil {
			cur = m[1]
			sections[cur] = nil
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && cur != "" {
			sections[cur] = append(sections[cur], m[1])
		}
	}
	for _, typ := range jsonl.Types {
		doc, ok := sections[typ]
		if !ok {
			t.Errorf("docs/format/jsonl.md has no section ### `%s`", typ)
			continue
		}
		props := readSchema(t, typ+".json")["properties"].(map[string]any)
		for name := range props {
			if name != "type" && !slices.Contains(doc, name) {
				t.Errorf("%s.%s is not documented", typ, name)
			}
		}
		for _, name := range doc {
			if _, ok := props[name]; !ok {
				t.Errorf("%s.%s is documented but not in the schema", typ, name)
			}
		}
	}
}

// TestFixtureV1: records as nwhealth wrote them keep validating (fields
// are only added, and only as optional ones), and the fixture has every
// type.
func TestFixtureV1(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "v1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	byType := jsonltest.Check(t, raw)
	for _, typ := range jsonl.Types {
		if len(byType[typ]) == 0 {
			t.Errorf("testdata/v1.jsonl has no %s record", typ)
		}
	}
}

// TestValidatorCatches is the negative control: the validator must see a
// missing member, an unknown one, a wrong type, a bad time or address and
// an unknown record type.
func TestValidatorCatches(t *testing.T) {
	good := `{"type":"damage","store":"s","shard":"x.shard","block":3,"offset":120,"reason":"crc"}`
	if probs, err := jsonltest.Problems([]byte(good)); err != nil || len(probs) != 0 {
		t.Fatalf("a valid line: %v %v", probs, err)
	}
	for _, bad := range []string{
		`{"type":"damage","store":"s","shard":"x.shard","block":3,"offset":120}`,
		`{"type":"damage","store":"s","shard":"x.shard","block":3,"offset":120,"reason":"crc","extra":1}`,
		`{"type":"damage","store":"s","shard":"x.shard","block":"3","offset":120,"reason":"crc"}`,
		`{"type":"store","store":"s","shards":1,"first":"2026-03-02T09:00:00+01:00","last":"","packets":1,"raw_bytes":1,"stored_bytes":1,"index_bytes":1,"flow_bytes":1,"verified":false,"damaged":0}`,
		`{"type":"action","action":"watch","host":"10.0.0.300","target":"x","urgency":1,"criticality":"low","priority":1,"escalation":"SOC monitor","why":"","evidence":[],"windows":[]}`,
		`{"type":"channel","src":"10.0.0.1"}`,
		`not json`,
	} {
		if probs, err := jsonltest.Problems([]byte(bad)); err != nil || len(probs) != 1 {
			t.Errorf("%s: problems %v (%v), want one", bad, probs, err)
		}
	}
}

// TestHostC2Fields: a host finding names the kind and the peer of the
// command-and-control evidence it leads with (a DNS-led host its domain,
// an ICMP-led one the address pinged, an inbound channel's host the
// poller), and a host without such evidence names none; every record
// validates against the schema.
func TestHostC2Fields(t *testing.T) {
	for _, tc := range []struct {
		name               string
		kind               hunt.Kind
		peer               string
		peerName           string
		wantPeer, wantName string
	}{
		{"beacon", hunt.KindChannel, "203.0.113.9", "c2.example", "203.0.113.9", "c2.example"},
		{"dns tunnel (the resolver is no peer)", hunt.KindDNS, "10.0.0.53", "tunnel.example", "", "tunnel.example"},
		{"icmp tunnel", hunt.KindICMP, "198.51.100.7", "", "198.51.100.7", ""},
		{"lateral only", "", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := hunt.Finding{Kind: hunt.KindHost, Src: netip.MustParseAddr("10.0.0.5"), Score: 0.6, Severity: hunt.SeverityOf(0.6),
				C2Kind: tc.kind, BeaconDstName: tc.peerName}
			if tc.peer != "" {
				f.BeaconDst = netip.MustParseAddr(tc.peer)
			}
			j := jsonl.NewFinding("F1", &f)
			if j.C2Kind != string(tc.kind) || j.C2Peer != tc.wantPeer || j.C2PeerName != tc.wantName {
				t.Errorf("c2 fields %q %q %q, want %q %q %q", j.C2Kind, j.C2Peer, j.C2PeerName, tc.kind, tc.wantPeer, tc.wantName)
			}
			line, err := json.Marshal(j)
			if err != nil {
				t.Fatal(err)
			}
			if probs, err := jsonltest.Problems(line); err != nil || len(probs) != 0 {
				t.Errorf("%s: %v %v", line, probs, err)
			}
		})
	}
}
