// Package sensor holds what a sensor name is, for every part of the fleet
// that names one: the object store's layout (sensors/NAME/...), the
// ClickHouse flow database's sensor column, and the --sensor flags that
// write (a name) and read (globs) them. One definition, so a glob picks
// the same sensors from a bucket and from the database.
package sensor

import (
	"fmt"
	"os"
	"path"
	"strings"
)

// MaxLen bounds a sensor name: one DNS label, so a host name fits.
const MaxLen = 63

// Valid reports whether name may name a sensor: 1 to 63 ASCII letters,
// digits, '.', '_' and '-', starting with a letter or digit. Such a name
// is one object key segment and holds no glob metacharacter, so as a
// glob it matches itself alone.
func Valid(name string) bool {
	if len(name) == 0 || len(name) > MaxLen {
		return false
	}
	for i, c := range []byte(name) {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || (c != '.' && c != '_' && c != '-')) {
			return false
		}
	}
	return true
}

// Check says what is wrong with a name (nil when Valid).
func Check(name string) error {
	if Valid(name) {
		return nil
	}
	return fmt.Errorf("sensor name %q: want 1 to %d letters, digits, '.', '_' and '-', starting with a letter or digit", name, MaxLen)
}

// Default is the host name made a valid sensor name: other characters
// become '-', and it is cut to 63.
func Default() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "sensor"
	}
	b := []byte(h)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	s := strings.TrimLeft(string(b), "._-")
	if len(s) > MaxLen {
		s = s[:MaxLen]
	}
	if !Valid(s) {
		return "sensor"
	}
	return s
}

// CheckGlob checks a glob's syntax: path.Match's (*, ?, [a-z], [^a-z],
// backslash escapes).
func CheckGlob(glob string) error {
	if _, err := path.Match(glob, ""); err != nil {
		return fmt.Errorf("sensor glob %q: %w", glob, err)
	}
	return nil
}

// Match reports whether name matches any of globs; no globs match every
// name. Globs are path.Match patterns (checked by CheckGlob first: a
// malformed one matches nothing).
func Match(globs []string, name string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// IsGlob reports whether s holds a glob metacharacter: a --sensor value
// that picks sensors rather than naming one.
func IsGlob(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// Regexp is glob as an anchored RE2 regular expression that matches
// exactly the names Match(glob) does, for a store that filters with
// regular expressions (the flow database's match(), which is RE2 too).
// Metacharacters become their path.Match meaning (* and ? never match
// '/'); every literal is escaped.
func Regexp(glob string) (string, error) {
	if err := CheckGlob(glob); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteByte('^')
	lit := func(c rune) { fmt.Fprintf(&b, `\x{%x}`, c) }
	rs := []rune(glob)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '*':
			b.WriteString(`[^/]*`)
		case '?':
			b.WriteString(`[^/]`)
		case '\\':
			i++
			lit(rs[i]) // CheckGlob: a backslash is never last
		case '[':
			i++
			neg := rs[i] == '^'
			if neg {
				i++
			}
			// Ranges lo or lo-hi, each end maybe escaped, up to the ']'
			// (CheckGlob: there is at least one, and the ']'). A range
			// with lo > hi matches nothing in path.Match; RE2 refuses it.
			var ranges strings.Builder
			for ; rs[i] != ']'; i++ {
				if rs[i] == '\\' {
					i++
				}
				lo, hi := rs[i], rs[i]
				if rs[i+1] == '-' {
					i += 2
					if rs[i] == '\\' {
						i++
					}
					hi = rs[i]
				}
				if lo <= hi {
					fmt.Fprintf(&ranges, `\x{%x}-\x{%x}`, lo, hi)
				}
			}
			switch {
			case ranges.Len() > 0 && neg:
				b.WriteString("[^" + ranges.String() + "]")
			case ranges.Len() > 0:
				b.WriteString("[" + ranges.String() + "]")
			case neg:
				b.WriteString(`[\x{0}-\x{10ffff}]`) // excludes nothing: any character
			default:
				b.WriteString(`[^\x{0}-\x{10ffff}]`) // no character
			}
		default:
			lit(c)
		}
	}
	b.WriteByte('$')
	return b.String(), nil
}
