package assets

import (
	"net/netip"
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

func TestInventoryErrors(t *testing.T) {
	for _, in := range []string{
		"assets:\n  - name: x\n",
		"assets:\n  - cidr: 10.0.0.0/33\n",
		"assets:\n  - host: 10.0.0.1\n    criticality: extreme\n",
		"assets: [unclosed\n",
	} {
		if _, err := ParseInventory(strings.NewReader(in)); err == nil {
			t.Errorf("accepted %q", in)
		}
	}
}

func TestAllowList(t *testing.T) {
	l, err := ParseAllow(strings.NewReader(`
# vendors
198.51.100.0/24
192.0.2.7
*.windowsupdate.com   # and the apex
Telemetry.Example.NET.
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
	if _, err := ParseAllow(strings.NewReader("good.example\nbad entry!\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: %v", err)
	}
}
