package filemode

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"golang.org/x/sys/unix"
)

func TestForDirMode(t *testing.T) {
	for _, c := range []struct {
		dir  uint32
		want uint32
	}{
		{unix.S_IFDIR | 0o755, 0o600},
		{unix.S_IFDIR | 0o777 | unix.S_ISVTX, 0o600}, // /tmp
		{unix.S_IFDIR | 0o750 | unix.S_ISGID, 0o640},
		{unix.S_IFDIR | 0o2700 | unix.S_ISGID, 0o640},
	} {
		if got := ForDirMode(c.dir); got != c.want {
			t.Errorf("ForDirMode(%o) = %o, want %o", c.dir, got, c.want)
		}
	}
}

// TestMakeDir: every directory made is 0750 with the set-group-ID bit
// under umask 022; one that exists keeps its mode; a file in the way is
// an error.
func TestMakeDir(t *testing.T) {
	testenv.Umask(t, 0o022)
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(base, "a", "b")
	if err := MakeDir(p); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{base, filepath.Dir(p), p} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		want := os.ModeDir | 0o750 | os.ModeSetgid
		if d == base {
			want = os.ModeDir | 0o755
		}
		if fi.Mode() != want {
			t.Errorf("%s: %v, want %v", d, fi.Mode(), want)
		}
	}
	if m := ForPath(filepath.Join(p, "out")); m != Group {
		t.Errorf("ForPath in a set-group-ID directory: %v", m)
	}
	if m := ForPath(filepath.Join(base, "out")); m != Private {
		t.Errorf("ForPath in a plain directory: %v", m)
	}
	f := filepath.Join(base, "file")
	os.WriteFile(f, nil, 0o600)
	if err := MakeDir(filepath.Join(f, "x")); err == nil {
		t.Error("MakeDir under a file: no error")
	}
	// SetGroupInherit never follows a link.
	target := t.TempDir()
	os.Chmod(target, 0o700)
	link := filepath.Join(base, "link")
	os.Symlink(target, link)
	if err := SetGroupInherit(link); err == nil {
		t.Error("SetGroupInherit followed a link")
	}
	if fi, _ := os.Stat(target); fi.Mode() != os.ModeDir|0o700 {
		t.Errorf("link's target changed: %v", fi.Mode())
	}
}
