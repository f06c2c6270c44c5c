package assets

import (
	"strings"
	"testing"
)

// inventorySeeds are the valid inventories of the tests and docs/hunt.md,
// then hostile ones: deep nesting, alias bombs, huge numbers, NUL bytes,
// invalid UTF-8 and a very long line.
var inventorySeeds = []string{
	"assets:\n  - cidr: 10.20.0.0/16\n    name: office\n    criticality: medium\n    owner: it\n    role: workstation\n  - host: 10.20.0.20\n    name: backup\n    criticality: Critical\n    owner: infra\n    role: server\n  - match: 2001:db8::/32\n    name: v6 lab\n    criticality: low\n",
	"- host: 10.0.0.1\n  criticality: high\n",
	"assets:\n  - cidr: 10.20.0.0/16\n    name: office\n    criticality: medium      # low, medium, high, critical\n    owner: it-desk\n    role: workstation\n  - host: 10.20.0.20\n    name: backup-server\n    criticality: critical\n",
	"- host: 10.0.0.5\n  role: Domain-Controller\n- host: ::ffff:10.0.0.6\n  role: rodc\n",
	"", "assets:\n", "[]\n", "assets: [unclosed\n", "- 10.0.0.1\n",
	"- &a {host: 10.0.0.1, name: x}\n- *a\n- *a\n- *a\n",
	"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n",
	strings.Repeat("[", 20000) + strings.Repeat("]", 20000),
	strings.Repeat("- ", 5000) + "x\n",
	"- cidr: 10.0.0.0/99999999999999999999\n- host: 999999999999.1.1.1\n",
	"- host: 10.0.0.1\x00\n  name: \"a\\0b\"\n",
	"- host: 10.0.0.1\n  name: \xff\xfe\xc3\x28\n",
	"- host: 10.0.0.1\n  owner: " + strings.Repeat("o", 100000) + "\n",
	"- host: fe80::1%eth0\n- cidr: ::/0\n- cidr: 0.0.0.0/0\n  criticality: \" low \"\n",
}

// FuzzInventory: ParseInventory never panics, is deterministic, and what
// it accepts re-validates: every prefix is valid and masked, every
// criticality a known one, assets are ordered most specific first (so
// Lookup of an asset's own address finds it or a more specific one), and
// there are never more assets than input bytes (aliases do not multiply
// the output beyond the text that names them).
func FuzzInventory(f *testing.F) {
	for _, s := range inventorySeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, ok := parseTwice(t, ParseInventory, data)
		if !ok {
			return
		}
		if inv.Len() > len(data) {
			t.Fatalf("%d assets from %d bytes", inv.Len(), len(data))
		}
		for i, a := range inv.assets {
			if !a.Prefix.IsValid() || a.Prefix != a.Prefix.Masked() || a.Prefix.Addr().Is4In6() || a.Prefix.Addr().Zone() != "" {
				t.Fatalf("asset %d: prefix %v does not re-validate", i, a.Prefix)
			}
			if p, err := parsePrefix(a.Prefix.String()); err != nil || p != a.Prefix {
				t.Fatalf("asset %d: prefix %v reads back as %v, %v", i, a.Prefix, p, err)
			}
			if a.Criticality < Unknown || a.Criticality > Critical {
				t.Fatalf("asset %d: criticality %d out of range", i, a.Criticality)
			}
			if a.Criticality != Unknown {
				if c, err := ParseCriticality(a.Criticality.String()); err != nil || c != a.Criticality {
					t.Fatalf("asset %d: criticality %v reads back as %v, %v", i, a.Criticality, c, err)
				}
			}
			if i > 0 && inv.assets[i-1].Prefix.Bits() < a.Prefix.Bits() {
				t.Fatalf("asset %d (/%d) after a less specific one", i, a.Prefix.Bits())
			}
			got, ok := inv.Lookup(a.Prefix.Addr())
			if !ok || got.Prefix.Bits() < a.Prefix.Bits() {
				t.Fatalf("Lookup(%v) = %v, %v; want %v or more specific", a.Prefix.Addr(), got.Prefix, ok, a.Prefix)
			}
		}
		for _, dc := range inv.DomainControllers() {
			if a, ok := inv.Lookup(dc); !ok || !a.Prefix.IsSingleIP() {
				t.Fatalf("domain controller %v is not a single-host asset", dc)
			}
		}
	})
}
