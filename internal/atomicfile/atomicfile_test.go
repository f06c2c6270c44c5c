package atomicfile

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/nwhealth/nwhealth/internal/filemode"
	"github.com/nwhealth/nwhealth/internal/testenv"
)

// entries lists a directory's names, to see that no temporary file stays.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestCommitAndAbort(t *testing.T) {
	testenv.Umask(t, 0o022) // os.Create's 0644 would show
	dir := t.TempDir()
	target := filepath.Join(dir, "report.html")

	// A new file appears only at Commit, with an evidence file's mode
	// (filemode), not os.Create's.
	f, err := Create(target)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("first"))
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("target exists before Commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // after Commit: nothing
	got, _ := os.Stat(target)
	if b, _ := os.ReadFile(target); string(b) != "first" || got.Mode() != filemode.Private {
		t.Fatalf("after Commit: %q, mode %v, want -rw-------", b, got.Mode())
	}

	// An existing file keeps its mode; Abort leaves it as it was.
	os.Chmod(target, 0o640)
	f, _ = Create(target)
	f.Write([]byte("second, never published"))
	f.Abort()
	if b, _ := os.ReadFile(target); string(b) != "first" {
		t.Fatalf("after Abort: %q", b)
	}
	f, _ = Create(target)
	f.Write([]byte("third"))
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(target)
	if b, _ := os.ReadFile(target); string(b) != "third" || fi.Mode().Perm() != 0o640 {
		t.Fatalf("replaced: %q mode %v, want third 0640", b, fi.Mode())
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Fatalf("directory holds %v, want the target alone", names)
	}
	if err := f.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded")
	}
}

// TestSymlink: the file a link names is replaced, the link stays a link.
func TestSymlink(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "real.json")
	link := filepath.Join(dir, "link.json")
	os.WriteFile(dest, []byte("old"), 0o644)
	os.Symlink("real.json", link)
	f, err := Create(link)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the link was replaced by a file")
	}
	if b, _ := os.ReadFile(dest); string(b) != "new" {
		t.Errorf("link target holds %q", b)
	}
}

// TestDevice: a device is written directly, and its write errors count:
// /dev/full fails every write with ENOSPC.
func TestDevice(t *testing.T) {
	f, err := Create(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	f, err = Create("/dev/full")
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	if _, err := f.Write([]byte("y")); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("second write: %v, want the first's ENOSPC", err)
	}
	if err := f.Commit(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Commit: %v, want ENOSPC", err)
	}
}

// TestDiskFull fills a small tmpfs: the write or Commit fails with
// ENOSPC, the target keeps its old contents, and no temporary file stays.
func TestDiskFull(t *testing.T) {
	testenv.Root(t)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot mount a tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	target := filepath.Join(mnt, "report.html")
	os.WriteFile(target, []byte("old report"), 0o644)
	f, err := Create(target)
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < 64 && werr == nil; i++ {
		_, werr = f.Write(bytes.Repeat([]byte("x"), 4096))
	}
	cerr := f.Commit()
	if !errors.Is(werr, syscall.ENOSPC) || !errors.Is(cerr, syscall.ENOSPC) {
		t.Errorf("write %v, commit %v; want ENOSPC from both", werr, cerr)
	}
	if b, _ := os.ReadFile(target); string(b) != "old report" {
		t.Errorf("target after a failed write: %q", b)
	}
	if names := entries(t, mnt); len(names) != 1 {
		t.Errorf("the full disk holds %v, want the old target alone", names)
	}
}

// Root writing a report to /tmp must not replace the file another user's
// link there names (the host may not set fs.protected_symlinks, and a
// link resolved in user space is not subject to it anyway).
func TestSharedDirLinkNotFollowed(t *testing.T) {
	testenv.Root(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "passwd")
	os.WriteFile(victim, []byte("root:x:0:0"), 0o644)
	link := testenv.ForeignLink(t, dir, "report.html", victim)
	f, err := Create(link)
	if err == nil {
		f.Write([]byte("<html>"))
		f.Commit()
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:x:0:0" || err == nil {
		t.Errorf("Create through another user's link in a shared directory: %v; the file it names holds %q", err, b)
	}
	if n := entries(t, filepath.Dir(link)); len(n) != 1 {
		t.Errorf("shared directory holds %q, want the link alone", n)
	}
}
