package outfile

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// writeAll writes data through Create and closes.
func writeAll(t *testing.T, path string, data []byte) {
	t.Helper()
	w := Create(path)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func ino(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestReplaceLargeFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.pcap")
	old := bytes.Repeat([]byte("old!"), replaceMin/2)
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	// A mode the umask would narrow: the replacement keeps it exactly.
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	oldIno := ino(t, path)
	// A reader of the previous result keeps it whole.
	reader, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	writeAll(t, path, []byte("new"))

	if got, _ := os.ReadFile(path); string(got) != "new" {
		t.Fatalf("file holds %q", got)
	}
	if ino(t, path) == oldIno {
		t.Error("large file truncated in place, not replaced")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o664 {
		t.Errorf("mode %v, want 0664", fi.Mode().Perm())
	}
	if got, _ := io.ReadAll(reader); !bytes.Equal(got, old) {
		t.Errorf("the open reader read %d bytes of the old file, want %d", len(got), len(old))
	}
}

func TestTruncateInPlace(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 2*replaceMin)
	cases := []struct {
		name  string
		setup func(t *testing.T, path string) (check string) // check: a path that must show the new contents
	}{
		{"small file", func(t *testing.T, path string) string {
			os.WriteFile(path, []byte("old"), 0o644)
			return path
		}},
		{"hard link", func(t *testing.T, path string) string {
			os.WriteFile(path, big, 0o644)
			other := path + ".link"
			if err := os.Link(path, other); err != nil {
				t.Fatal(err)
			}
			return other
		}},
		{"symbolic link", func(t *testing.T, path string) string {
			target := path + ".target"
			os.WriteFile(target, big, 0o644)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			return target
		}},
		{"extended attribute", func(t *testing.T, path string) string {
			os.WriteFile(path, big, 0o644)
			if err := unix.Setxattr(path, "user.case", []byte("42"), 0); err != nil {
				if errors.Is(err, unix.ENOTSUP) {
					t.Skipf("file system without user extended attributes: %v", err)
				}
				t.Fatal(err)
			}
			return path
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.pcap")
			check := c.setup(t, path)
			before := ino(t, check)
			writeAll(t, path, []byte("new"))
			if got, _ := os.ReadFile(check); string(got) != "new" {
				t.Fatalf("%s holds %d bytes, want the new contents", check, len(got))
			}
			if ino(t, check) != before {
				t.Error("file replaced, want truncated in place")
			}
			if fi, err := os.Lstat(path); err != nil || (c.name == "symbolic link") != (fi.Mode()&os.ModeSymlink != 0) {
				t.Errorf("%s: mode %v, %v", path, fi.Mode(), err)
			}
		})
	}
}
