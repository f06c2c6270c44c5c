package stix

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

func TestSCOID(t *testing.T) {
	// The specification's method (section 2.9): UUIDv5 in the SCO
	// namespace over the canonical JSON of the ID-contributing
	// properties; the value is Python's uuid.uuid5 over json.dumps with
	// sorted keys and no spaces (TestSCOIDOracle asks Python itself).
	got := SCOID("ipv4-addr", map[string]any{"value": "1.2.3.4"})
	if got != "ipv4-addr--0198f97b-e65d-5025-87e5-58bc39d4bdb4" {
		t.Errorf("SCOID = %s", got)
	}
	// Key order does not matter; content does.
	a := SCOID("user-account", map[string]any{"user_id": "x", "account_login": "y"})
	b := SCOID("user-account", map[string]any{"account_login": "y", "user_id": "x"})
	if a != b || a == SCOID("user-account", map[string]any{"user_id": "x", "account_login": "z"}) {
		t.Errorf("user-account ids %s %s", a, b)
	}
}

func TestIDs(t *testing.T) {
	a, b := ID("indicator", "203.0.113.7"), ID("indicator", "203.0.113.7")
	if a != b || a == ID("indicator", "203.0.113.8") || a == ID("infrastructure", "203.0.113.7") {
		t.Errorf("ids %s %s", a, b)
	}
	// UUIDv5: version 5, RFC 4122 variant.
	u := strings.TrimPrefix(a, "indicator--")
	if len(u) != 36 || u[14] != '5' || !strings.ContainsRune("89ab", rune(u[19])) {
		t.Errorf("not a UUIDv5: %s", u)
	}
	if ID("x", "a\x00b") == ID("x", "a", "b") {
		t.Log("keys joined by NUL collide only when a key holds NUL")
	}
}

func TestTimestampAndQuote(t *testing.T) {
	ts := time.Date(2026, 3, 2, 14, 36, 5, 123456789, time.FixedZone("CET", 3600))
	if got := Timestamp(ts); got != "2026-03-02T13:36:05.123Z" {
		t.Errorf("Timestamp = %s", got)
	}
	if got := Timestamp(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)); got != "2026-03-02T00:00:00.000Z" {
		t.Errorf("Timestamp = %s", got)
	}
	if got := Quote(`it's a\b`); got != `'it\'s a\\b'` {
		t.Errorf("Quote = %s", got)
	}
}

func TestBundle(t *testing.T) {
	var b Bundle
	now := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	o := SDO("identity", ID("identity", "me"), now, "")
	o["name"] = "<me & you>"
	b.Add(o, o, Relationship("uses", ID("malware", "m"), ID("attack-pattern", "T1"), now, o.ID()))
	if len(b.Objects()) != 2 || !b.Has(o.ID()) || b.Get(o.ID())["name"] != "<me & you>" || b.Get("x--y") != nil {
		t.Fatalf("bundle %v", b.Objects())
	}
	var w1, w2 bytes.Buffer
	if _, err := b.WriteTo(&w1); err != nil {
		t.Fatal(err)
	}
	b.WriteTo(&w2)
	if !bytes.Equal(w1.Bytes(), w2.Bytes()) || !strings.Contains(w1.String(), `"<me & you>"`) {
		t.Errorf("output:\n%s", w1.String())
	}
	var doc struct {
		Type, ID string
		Objects  []map[string]any
	}
	if err := json.Unmarshal(w1.Bytes(), &doc); err != nil || doc.Type != "bundle" || !strings.HasPrefix(doc.ID, "bundle--") || len(doc.Objects) != 2 {
		t.Errorf("bundle %+v %v", doc, err)
	}
	r := doc.Objects[1]
	if r["relationship_type"] != "uses" || r["created_by_ref"] != o.ID() || r["spec_version"] != "2.1" || r["created"] != "2026-03-02T00:00:00.000Z" {
		t.Errorf("relationship %v", r)
	}
}

// TestSCOIDOracle computes SCO ids with Python's uuid and json modules.
func TestSCOIDOracle(t *testing.T) {
	py := testenv.Tool(t, "python3")
	cases := []struct {
		typ string
		c   map[string]any
	}{
		{"ipv4-addr", map[string]any{"value": "203.0.113.77"}},
		{"ipv6-addr", map[string]any{"value": "2001:db8::1"}},
		{"domain-name", map[string]any{"value": "cdn-sync.example.net"}},
		{"user-account", map[string]any{"user_id": `3B\backdoor`, "account_login": `3B\backdoor`, "account_type": "windows-domain"}},
		{"network-traffic", map[string]any{"src_ref": "ipv4-addr--0198f97b-e65d-5025-87e5-58bc39d4bdb4", "dst_port": 443,
			"protocols": []string{"ipv4", "tcp"}, "start": "2026-03-02T02:00:00.000Z"}},
	}
	for _, tc := range cases {
		arg := string(Canonical(tc.c))
		out, err := exec.Command(py, "-c", `import json, sys, uuid
print(uuid.uuid5(uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7"), json.dumps(json.loads(sys.argv[1]), sort_keys=True, separators=(",", ":"), ensure_ascii=False)))`, arg).CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		if want := tc.typ + "--" + strings.TrimSpace(string(out)); SCOID(tc.typ, tc.c) != want {
			t.Errorf("%s %s: %s, python %s", tc.typ, arg, SCOID(tc.typ, tc.c), want)
		}
	}
}
