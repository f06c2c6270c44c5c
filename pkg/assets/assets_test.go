package assets

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInventory(t *testing.T) {
	inv, err := ParseInventory(strings.NewReader(`
assets:
  - cidr: 10.20.0.0/16
    name: office
    criticality: medium
    owner: it
    role: workstation
  - host: 10.20.0.20
    name: backup
    criticality: Critical
    owner: infra
    role: server
  - match: 2001:db8::/32
    name: v6 lab
    criticality: low
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		name string
		crit Criticality
		ok   bool
	}{
		{"10.20.0.20", "backup", Critical, true}, // the most specific prefix wins
		{"10.20.1.7", "office", Medium, true},
		{"::ffff:10.20.1.7", "office", Medium, true},
		{"2001:db8::5", "v6 lab", Low, true},
		{"192.0.2.1", "", Unknown, false},
	}
	for _, tc := range tests {
		a, ok := inv.Lookup(netip.MustParseAddr(tc.addr))
		if ok != tc.ok || a.Name != tc.name || a.Criticality != tc.crit {
			t.Errorf("Lookup(%s) = %+v %v", tc.addr, a, ok)
		}
	}
	// A bare list works too; a nil inventory knows nothing.
	inv2, err := ParseInventory(strings.NewReader("- host: 10.0.0.1\n  criticality: high\n"))
	if err != nil || inv2.Len() != 1 {
		t.Fatalf("list form: %v %v", inv2, err)
	}
	var none *Inventory
	if _, ok := none.Lookup(netip.MustParseAddr("10.0.0.1")); ok {
		t.Error("nil inventory found an asset")
	}
	if Unknown.Weight() != Medium.Weight() || Critical.Weight() != 4 {
		t.Error("weights")
	}
}

// TestInventoryErrors checks that every error names the line of the
// offending entry and the value found there.
func TestInventoryErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"assets:\n  - name: x\n", "line 2: the asset has no cidr, host or match"},
		{"assets:\n  - cidr: 10.0.0.0/8\n  - cidr: 10.0.0.0/33\n", `line 3: cidr "10.0.0.0/33": not an address or CIDR`},
		{"assets:\n  - host: 10.0.0.1\n    name: dc\n    criticality: extreme\n", `line 4: criticality "extreme": want low`},
		{"- host: 10.0.0.1\n  critcality: high\n", `line 2: unknown field "critcality"`},
		{"- host: 10.0.0.1\n  cidr: 10.0.0.0/8\n", `line 2: cidr "10.0.0.0/8": the asset already has host "10.0.0.1"`},
		{"- host: 10.1.0.0/16\n", `line 1: host "10.1.0.0/16": want one address`},
		{"- host: [10.0.0.1, 10.0.0.2]\n", "line 1: host: want a single value"},
		{"hosts:\n  - host: 10.0.0.1\n", `line 1: unknown key "hosts"`},
		{"assets: 10.0.0.1\n", "line 1: want a list of assets"},
		{"- 10.0.0.1\n", `line 1: an asset is a map`},
		{"assets: [unclosed\n", "line 1"},
		{"- &a {host: 10.0.0.1, name: x}\n- *a\n", "line 2: alias *a: YAML aliases are not accepted"},
		{"- host: 10.0.0.1\n  name: &n dc\n- host: 10.0.0.2\n  name: *n\n", "line 4: alias *n"},
		{"- host: 10.0.0.1\n  &k name: dc\n- host: 10.0.0.2\n  *k : x\n", "line 4: alias *k"},
		{"x: &l [{host: 10.0.0.1}]\n", `line 1: unknown key "x"`},
		{"assets: *l\n", "unknown anchor"},
	} {
		_, err := ParseInventory(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
	for _, in := range []string{"", "assets:\n", "[]\n"} {
		if inv, err := ParseInventory(strings.NewReader(in)); err != nil || inv.Len() != 0 {
			t.Errorf("%q: %v, %v; want an empty inventory", in, inv, err)
		}
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "assets.yaml")
	os.WriteFile(inv, []byte("assets:\n  - cidr: 10.0.0.0/8\n    criticality: hi\n"), 0o644)
	if _, err := LoadInventory(inv); err == nil || err.Error() != inv+`: line 3: criticality "hi": want low, medium, high or critical` {
		t.Errorf("inventory: %v", err)
	}
	allow := filepath.Join(dir, "allow.txt")
	os.WriteFile(allow, []byte("# ok\n10.0.0.1\nExample.COM\nbad entry!\n"), 0o644)
	if _, err := LoadAllow(allow); err == nil || err.Error() != allow+`: line 4: "bad entry!" is not an address, CIDR, domain or *.domain` {
		t.Errorf("allow list: %v", err)
	}
}

func TestAllowList(t *testing.T) {
	l, err := ParseAllow(strings.NewReader(`
# vendors
198.51.100.0/24
192.0.2.7
*.windowsupdate.com   # and the apex
Telemetry.Example.NET.
203.0.113.9.
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr, name string
		want       bool
	}{
		{"198.51.100.44", "", true},
		{"192.0.2.7", "", true},
		{"192.0.2.8", "", false},
		{"", "windowsupdate.com", true},
		{"", "download.windowsupdate.com", true},
		{"", "evilwindowsupdate.com", false},
		{"", "telemetry.example.net", true},
		{"", "x.telemetry.example.net", false},
		{"203.0.113.1", "c2.example.org", false},
		{"203.0.113.9", "", true}, // found by FuzzAllow: with its trailing dot it was a name
	}
	for _, tc := range tests {
		var a netip.Addr
		if tc.addr != "" {
			a = netip.MustParseAddr(tc.addr)
		}
		if got := l.Allows(a, tc.name); got != tc.want {
			t.Errorf("Allows(%q, %q) = %v", tc.addr, tc.name, got)
		}
	}
	for _, tc := range []struct {
		in   string
		line int // of the error; 0: none
	}{
		{"good.example\nbad entry!\n", 2},
		{"..\n", 1}, // found by FuzzAllow: a name of no label was kept
		{".\n", 1},
		{"a..b\n", 1},
		{".a\n", 1},
		{"*..a\n", 1},
		{"*.\n", 1},
		{strings.Repeat("a", 63) + ".example\n", 0},
		{strings.Repeat("a", 64) + ".example\n", 1},
		{"_ldap._tcp.corp.local\n", 0},
	} {
		_, err := ParseAllow(strings.NewReader(tc.in))
		if tc.line == 0 && err != nil || tc.line > 0 && (err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("line %d: ", tc.line))) {
			t.Errorf("%.20q: error %v, want one at line %d", tc.in, err, tc.line)
		}
	}
}
