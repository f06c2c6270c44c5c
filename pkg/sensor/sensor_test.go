package sensor

import (
	"regexp"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for name, ok := range map[string]bool{
		"a": true, "sensor-01.dc2": true, "A_b": true, strings.Repeat("a", 63): true,
		"-a": false, ".a": false, "": false, "a/b": false, "a b": false, "a*": false, "dc[1]": false,
		strings.Repeat("a", 64): false, "é": false,
	} {
		if Valid(name) != ok || (Check(name) == nil) != ok {
			t.Errorf("%q: Valid %v, want %v", name, Valid(name), ok)
		}
	}
	if !Valid(Default()) {
		t.Errorf("default sensor %q", Default())
	}
}

// TestMatch: the semantics every --sensor GLOB has, over a bucket or the
// flow database.
func TestMatch(t *testing.T) {
	names := []string{"dc1-a", "dc1-b", "dc2-a", "edge-1", "edge-10", "x.y"}
	for _, c := range []struct {
		globs []string
		want  string
	}{
		{nil, "dc1-a dc1-b dc2-a edge-1 edge-10 x.y"},
		{[]string{"dc1-*"}, "dc1-a dc1-b"},
		{[]string{"dc?-a"}, "dc1-a dc2-a"},
		{[]string{"dc[12]-b"}, "dc1-b"},
		{[]string{"dc[^1]-*"}, "dc2-a"},
		{[]string{"edge-1"}, "edge-1"}, // a name is a glob matching itself
		{[]string{"edge-1", "x.*"}, "edge-1 x.y"},
		{[]string{"x\\.y"}, "x.y"},
		{[]string{"*-1*"}, "edge-1 edge-10"},
		{[]string{"dc1_a"}, ""}, // '_' is no wildcard (SQL LIKE's would be)
		{[]string{"dc1%"}, ""},  // nor '%'
		{[]string{"nothing"}, ""},
	} {
		var got []string
		for _, n := range names {
			if Match(c.globs, n) {
				got = append(got, n)
			}
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("%q: %q, want %q", c.globs, g, c.want)
		}
	}
}

func TestCheckGlob(t *testing.T) {
	for g, ok := range map[string]bool{"dc1-*": true, "[ab]": true, "x\\*": true, "[": false, "a[": false, "[]": false, "a\\": false} {
		if (CheckGlob(g) == nil) != ok {
			t.Errorf("%q: %v", g, CheckGlob(g))
		}
	}
	if IsGlob("edge-1") || !IsGlob("edge-*") || !IsGlob("[e]") {
		t.Error("IsGlob")
	}
}

// TestRegexp: the regular expression a glob becomes picks exactly the
// names Match does, over names of every shape (oracle: path.Match through
// Match, against Go's RE2).
func TestRegexp(t *testing.T) {
	globs := []string{"*", "dc1-*", "dc?-a", "dc[12]-b", "dc[^1]-*", "edge-1", "x\\.y", "*-1*", "dc1_a", "dc1%",
		"[a-c]*", "[\\]]x", "[\\--\\/]*", "a\\*", "[^a-z]*", "*.*", "?", "é*", "a/b", "*\\\\*", "[x-]", "[z-a]x", "[^z-a]", "[z-ab]"}
	names := []string{"", "a", "dc1-a", "dc1-b", "dc2-a", "edge-1", "edge-10", "x.y", "xzy", "dc1_a", "dc1%", "]x",
		"-z", ".", "/", "a*", "ab", "Zed", "0", "é1", "a/b", "a\\b", "x-", "--", "a.b.c", "\n", "bx", "ax", "zx"}
	for _, g := range globs {
		re, err := Regexp(g)
		if CheckGlob(g) != nil {
			if err == nil {
				t.Errorf("%q: no error", g)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", g, err)
		}
		rx, err := regexp.Compile(re)
		if err != nil {
			t.Fatalf("%q -> %q: %v", g, re, err)
		}
		for _, n := range names {
			if got, want := rx.MatchString(n), Match([]string{g}, n); got != want {
				t.Errorf("%q (%s) on %q: %v, path.Match %v", g, re, n, got, want)
			}
		}
	}
	if _, err := Regexp("["); err == nil {
		t.Error("bad glob accepted")
	}
}
