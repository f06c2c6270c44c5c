package flowdb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		body  string
		mode  os.FileMode
		want  string
		loose bool
		bad   bool
	}{
		{"pw\n", 0o600, "pw", false, false},
		{"pw", 0o600, "pw", false, false},
		{"p w:@/?#\r\n", 0o400, "p w:@/?#", false, false},
		{"pw\n", 0o640, "pw", true, false},
		{"pw\n", 0o604, "pw", true, false},
		{"", 0o600, "", false, true},
		{"\n", 0o600, "", false, true},
		{"pw\nsecond\n", 0o600, "", false, true},
		{"pw\n\n", 0o600, "", false, true},
		{"p\x00w\n", 0o600, "", false, true},
		{strings.Repeat("x", 4096) + "\n", 0o600, strings.Repeat("x", 4096), false, false},
		{strings.Repeat("x", 4097), 0o600, "", false, true},
	} {
		p := filepath.Join(dir, "pw")
		os.Remove(p)
		if err := os.WriteFile(p, []byte(c.body), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, c.mode)
		got, loose, err := ReadPasswordFile(p)
		if c.bad {
			if !errors.Is(err, ErrPasswordFile) || got != "" || strings.Contains(err.Error(), "pw") && !strings.Contains(err.Error(), p) {
				t.Errorf("%q: %q, %v; want ErrPasswordFile", c.body, got, err)
			}
			continue
		}
		if err != nil || got != c.want || loose != c.loose {
			t.Errorf("%q (%v): %q, loose %v, %v; want %q, loose %v", c.body, c.mode, got, loose, err, c.want, c.loose)
		}
	}
	if _, _, err := ReadPasswordFile(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}

func TestHasPassword(t *testing.T) {
	for _, c := range []struct {
		url  string
		want bool
	}{
		{"clickhouse://u:pw@h:9000/db", true},
		{"clickhouse://u:@h/db", true},
		{"clickhouse://u@h/db", false},
		{"clickhouse://h:9000/db", false},
		{"clickhouse://u:p%2Fw@h/db", true},
		{"clickhouse://u:p/w@h/db", true}, // malformed: still a password on the command line
	} {
		if got := HasPassword(c.url); got != c.want {
			t.Errorf("HasPassword(%q) = %v, want %v", c.url, got, c.want)
		}
	}
}
