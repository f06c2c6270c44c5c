// Package stix is a small STIX 2.1 encoder over encoding/json: objects,
// deterministic identifiers, timestamps and patterns. It knows nothing of
// incidents; pkg/report maps an incident onto it.
//
// Identifiers are UUIDv5, so the same content gives the same ids on every
// run: cyber-observables (SCOs) as the specification defines (the SCO
// namespace over the canonical JSON of the ID-contributing properties),
// other objects in nwhealth's own namespace over a key the caller names.
// The specification asks SDOs to use UUIDv4 (a SHOULD); reproducible ids
// are worth more to a responder who reruns a report and diffs it.
package stix

import (
	"bytes"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// SpecVersion is the STIX version written.
const SpecVersion = "2.1"

// scoNamespace is the UUIDv5 namespace of SCO identifiers (STIX 2.1,
// section 2.9).
var scoNamespace = [16]byte{0x00, 0xab, 0xed, 0xb4, 0xaa, 0x42, 0x46, 0x6c, 0x9c, 0x01, 0xfe, 0xd2, 0x33, 0x15, 0xa9, 0xb7}

// nwNamespace is nwhealth's namespace for SDO, SRO and bundle ids: the
// UUIDv5 of "nwhealth" in the SCO namespace.
var nwNamespace = func() [16]byte {
	u := uuid5(scoNamespace, []byte("nwhealth"))
	return u
}()

// uuid5 is RFC 4122's name-based UUID with SHA-1.
func uuid5(ns [16]byte, name []byte) [16]byte {
	h := sha1.New()
	h.Write(ns[:])
	h.Write(name)
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}

func uuidString(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// ID is the identifier of a non-observable object of type typ named by
// key: the same key always gives the same id.
func ID(typ string, key ...string) string {
	return typ + "--" + uuidString(uuid5(nwNamespace, []byte(typ+"\x00"+strings.Join(key, "\x00"))))
}

// SCOID is the identifier of a cyber-observable from its ID-contributing
// properties, as the specification computes it.
func SCOID(typ string, contributing map[string]any) string {
	return typ + "--" + uuidString(uuid5(scoNamespace, Canonical(contributing)))
}

// Canonical serialises v as JSON with sorted keys, no insignificant
// space and no HTML escaping: RFC 8785 for the strings, integers and
// nested objects the ID-contributing properties hold.
func Canonical(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("stix: canonical form of %T: %v", v, err)) // maps of strings and numbers always encode
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// Timestamp formats t in UTC with millisecond precision, as every STIX
// timestamp nwhealth writes.
func Timestamp(t time.Time) string {
	return t.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z")
}

// Object is one STIX object; encoding/json writes its keys sorted, so the
// output is reproducible.
type Object map[string]any

// ID returns the object's id.
func (o Object) ID() string { s, _ := o["id"].(string); return s }

// Type returns the object's type.
func (o Object) Type() string { s, _ := o["type"].(string); return s }

// SDO starts a domain or relationship object with the common properties.
func SDO(typ, id string, created time.Time, createdBy string) Object {
	o := Object{"type": typ, "spec_version": SpecVersion, "id": id, "created": Timestamp(created), "modified": Timestamp(created)}
	if createdBy != "" {
		o["created_by_ref"] = createdBy
	}
	return o
}

// SCO starts a cyber-observable with its id from the contributing
// properties, which it also holds.
func SCO(typ string, contributing map[string]any) Object {
	o := Object{"type": typ, "spec_version": SpecVersion, "id": SCOID(typ, contributing)}
	for k, v := range contributing {
		o[k] = v
	}
	return o
}

// Relationship links two objects.
func Relationship(relType, source, target string, created time.Time, createdBy string) Object {
	o := SDO("relationship", ID("relationship", relType, source, target), created, createdBy)
	o["relationship_type"] = relType
	o["source_ref"] = source
	o["target_ref"] = target
	return o
}

// Quote makes a STIX pattern string literal: single quotes, with quote
// and backslash escaped.
func Quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Bundle collects objects, each id once.
type Bundle struct {
	objects []Object
	ids     map[string]int
}

// Add appends objects; an id already present is replaced by the later
// object only if it is not the same type (never: ids carry their type), so
// the first one wins.
func (b *Bundle) Add(objs ...Object) {
	if b.ids == nil {
		b.ids = map[string]int{}
	}
	for _, o := range objs {
		if _, ok := b.ids[o.ID()]; ok {
			continue
		}
		b.ids[o.ID()] = len(b.objects)
		b.objects = append(b.objects, o)
	}
}

// Has reports whether an object with id was added.
func (b *Bundle) Has(id string) bool { _, ok := b.ids[id]; return ok }

// Get returns the object with id, or nil.
func (b *Bundle) Get(id string) Object {
	if i, ok := b.ids[id]; ok {
		return b.objects[i]
	}
	return nil
}

// Objects returns the objects in the order they were added.
func (b *Bundle) Objects() []Object { return b.objects }

// IDs returns every object's id, sorted.
func (b *Bundle) IDs() []string {
	ids := make([]string, 0, len(b.objects))
	for _, o := range b.objects {
		ids = append(ids, o.ID())
	}
	slices.Sort(ids)
	return ids
}

// WriteTo writes the bundle as indented JSON; its id is derived from the
// ids it holds.
func (b *Bundle) WriteTo(w io.Writer) (int64, error) {
	doc := struct {
		Type    string   `json:"type"`
		ID      string   `json:"id"`
		Objects []Object `json:"objects"`
	}{"bundle", ID("bundle", b.IDs()...), b.objects}
	if doc.Objects == nil {
		doc.Objects = []Object{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return 0, err
	}
	n, err := w.Write(buf.Bytes())
	return int64(n), err
}
