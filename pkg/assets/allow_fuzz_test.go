package assets

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// allowSeeds are the valid lists of the tests and docs, then hostile ones.
var allowSeeds = []string{
	"\n# vendors\n198.51.100.0/24\n192.0.2.7\n*.windowsupdate.com   # and the apex\nTelemetry.Example.NET.\n",
	"# ok\n10.0.0.1\nExample.COM\nbad entry!\n",
	"good.example\nbad entry!\n",
	"*.1.2.3.4\n01.2.3.4\n192.0.2.7.\n10.0.0.0/8.\n::ffff:10.0.0.1\n2001:db8::/32\nfe80::1%eth0\n",
	"*.\n.\n*\n*.*.x\n..\n-\n_\n",
	"10.0.0.0/99999999999999999999\n999999999999.1.1.1\n",
	"a\x00b\n10.0.0.1\x00\n",
	"\xff\xfe\n\xc3\x28.example\n",
	"x\r\ny.example\r\n",
	strings.Repeat("a", 253) + "\n" + strings.Repeat("a", 254) + "\n",
	strings.Repeat("a", 70000) + "\n",
	strings.Repeat("x.example\n", 1000),
}

// FuzzAllow: ParseAllow never panics, is deterministic, and what it
// accepts re-validates: prefixes valid and masked, names valid domains in
// lower case, at most one entry a line; every entry is allowed by the
// list; and the list written back as text reads back the same.
func FuzzAllow(f *testing.F) {
	for _, s := range allowSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, ok := parseTwice(t, ParseAllow, data)
		if !ok {
			return
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		if n := len(l.prefixes) + len(l.suffixes) + len(l.exact); n > 2*lines {
			t.Fatalf("%d entries from %d lines", n, lines)
		}
		if len(l.prefixes)+len(l.suffixes) > lines {
			t.Fatalf("%d prefixes and %d suffixes from %d lines", len(l.prefixes), len(l.suffixes), lines)
		}
		apex := map[string]bool{}
		for _, s := range l.suffixes {
			rest, ok := strings.CutPrefix(s, ".")
			if !ok || !validDomain(rest) || !l.exact[rest] {
				t.Fatalf("suffix %q does not re-validate", s)
			}
			apex[rest] = true
			if !l.Allows(netip.Addr{}, "x"+s) || !l.Allows(netip.Addr{}, strings.ToUpper(rest)+".") {
				t.Fatalf("suffix %q: its names are not allowed", s)
			}
		}
		var text strings.Builder
		for _, p := range l.prefixes {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() {
				t.Fatalf("prefix %v does not re-validate", p)
			}
			if !l.Allows(p.Addr(), "") {
				t.Fatalf("prefix %v: its address is not allowed", p)
			}
			text.WriteString(p.String() + "\n")
		}
		for name := range l.exact {
			if !validDomain(name) || name != strings.ToLower(name) || strings.HasSuffix(name, ".") {
				t.Fatalf("name %q does not re-validate", name)
			}
			if !l.Allows(netip.Addr{}, name) {
				t.Fatalf("name %q is not allowed", name)
			}
			if _, err := parsePrefix(name); err == nil && !apex[name] {
				t.Fatalf("name %q is an address", name)
			}
			if !apex[name] { // "*.d" brings d back
				text.WriteString(name + "\n")
			}
		}
		for _, s := range l.suffixes {
			text.WriteString("*" + s + "\n")
		}
		back, err := ParseAllow(strings.NewReader(text.String()))
		if err != nil {
			t.Fatalf("the list written back does not read: %v\n%s", err, text.String())
		}
		if !slices.Equal(back.prefixes, l.prefixes) || !reflect.DeepEqual(back.exact, l.exact) || !slices.Equal(back.suffixes, l.suffixes) {
			t.Fatalf("the list written back reads as %+v, want %+v", back, l)
		}
	})
}

// parseTwice parses data twice and fails the test unless both give the
// same result, and unless an error comes without one (a nil pointer).
// ok says whether data parsed.
func parseTwice[T any](t *testing.T, parse func(io.Reader) (*T, error), data []byte) (v *T, ok bool) {
	t.Helper()
	v, err := parse(bytes.NewReader(data))
	v2, err2 := parse(bytes.NewReader(data))
	if fmt.Sprint(err) != fmt.Sprint(err2) {
		t.Fatalf("not deterministic: %v, then %v", err, err2)
	}
	if err != nil {
		if v != nil {
			t.Fatalf("error %v with a result %+v", err, v)
		}
		return nil, false
	}
	if !reflect.DeepEqual(v, v2) {
		t.Fatalf("not deterministic: %+v, then %+v", v, v2)
	}
	return v, true
}
