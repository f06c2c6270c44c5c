// Package jsonl defines the JSON Lines records nwhealth writes with
// --format jsonl: one Go struct per record type, used by every command
// that emits the type, so that replay's and report's operations, or hunt's
// and report's findings, are the same record. Each type has a JSON Schema
// in schema/ (embedded: Schemas) and a section in docs/format/jsonl.md;
// the package's tests hold struct, schema and documentation together, so
// adding a field is a change to the struct, its schema and its doc line.
//
// Compatibility: fields are only added, and only as optional ones; a
// field is never removed or given another meaning within a type: that
// makes a new type. testdata/v1.jsonl holds records as nwhealth wrote
// them, and must keep validating.
package jsonl

import (
	"embed"
	"net/netip"
	"time"
)

// Record types: the "type" field of every line.
const (
	TypeOperation       = "operation"        // replay, report
	TypeStory           = "story"            // replay: the progression of one host
	TypeStats           = "stats"            // replay: pipeline counters
	TypeFinding         = "finding"          // hunt, report
	TypeAction          = "action"           // hunt, report
	TypeSummary         = "summary"          // report
	TypeHost            = "host"             // report
	TypeController      = "controller"       // report
	TypeFlow            = "flow"             // flows
	TypeImport          = "import"           // import: one input file
	TypeImportSummary   = "import_summary"   // import: the whole run
	TypeShard           = "shard"            // store info --shards
	TypeDamage          = "damage"           // store info
	TypeStore           = "store"            // store info
	TypeCaptureProgress = "capture_progress" // capture, every --stats-every
	TypeCaptureSummary  = "capture_summary"  // capture, at the end
)

// Types lists every record type; each has schema/<type>.json.
var Types = []string{TypeOperation, TypeStory, TypeStats, TypeFinding, TypeAction, TypeSummary, TypeHost, TypeController,
	TypeFlow, TypeImport, TypeImportSummary, TypeShard, TypeDamage, TypeStore, TypeCaptureProgress, TypeCaptureSummary}

// Schemas holds schema/<type>.json for every type and schema/common.json,
// the definitions they share (JSON Schema draft 2020-12).
//
//go:embed schema/*.json
var Schemas embed.FS

// SchemaBase is the $id prefix of the schemas: <SchemaBase><type>.json.
const SchemaBase = "https://github.com/nwhealth/nwhealth/pkg/jsonl/schema/"

// Time formats a time as every record does: RFC 3339 in UTC with the
// fraction nanoseconds need, or "" when unknown (zero).
func Time(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Addr formats an address, "" when unknown.
func Addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Addrs formats addresses; never nil, so the field is [] rather than null.
func Addrs(as []netip.Addr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, Addr(a))
	}
	return out
}

// Strings returns s, or [] for nil: list fields are never null.
func Strings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
