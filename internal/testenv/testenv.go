// Package testenv finds the shared test data and oracle tools for tests.
//
// On a developer's machine a test whose data or tool is absent is skipped
// with a message naming what is missing, so a fresh clone still runs every
// self-contained test. Under CI (.ci/run sets NWHEALTH_CI=1) the same
// absence fails the test: a CI run where the oracle tests silently skipped
// would pass while checking nothing.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// CIVar is the environment variable that makes missing test data, tools
// and privileges failures instead of skips.
const CIVar = "NWHEALTH_CI"

// CI reports whether tests run under CI, where nothing may be skipped for
// want of data, tools or root.
func CI() bool { return os.Getenv(CIVar) == "1" }

// Missing ends the test because something it needs is absent: a skip on a
// developer's machine, a failure under CI.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("%s (%s=1: required under CI)", msg, CIVar)
	}
	t.Skip(msg)
}

// ModuleRoot returns the directory holding go.mod, walking up from the
// test's working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// sharedPath is where the shared data should be: the NWHEALTH_SHARED
// environment variable, or "shared" beside the checkout.
func sharedPath(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("NWHEALTH_SHARED"); dir != "" {
		return dir
	}
	return filepath.Join(filepath.Dir(ModuleRoot(t)), "shared")
}

// SharedDir returns the team's read-only shared data directory (see
// sharedPath). Without it the test is skipped, or fails under CI.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := sharedPath(t)
	if _, err := os.Stat(dir); err != nil {
		Missing(t, "shared test data not found at %s (set NWHEALTH_SHARED): %v", dir, err)
	}
	return dir
}

// SharedFile returns a path under SharedDir; a missing file skips the
// test, or fails it under CI.
func SharedFile(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{SharedDir(t)}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		Missing(t, "shared file %s absent: %v", p, err)
	}
	return p
}

// Tool returns the path of an external program. When it is not installed
// the test is skipped, or fails under CI (.ci/deps installs them).
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not installed (run .ci/deps): %v", name, err)
	}
	return p
}

// Root skips the test unless it runs as root (network namespaces,
// AF_PACKET, tmpfs mounts); under CI, which runs as root, it fails.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "needs root for network namespaces, raw sockets and mounts")
	}
}

// ForeignLink makes a sticky directory open to everyone, as /tmp is, at
// dir/tmp and in it a symbolic link name -> target owned by another user
// (uid 12345): what a root process writing to /tmp must not follow. It
// returns the link's path. Needs root (Root) for the link's owner.
func ForeignLink(t testing.TB, dir, name, target string) string {
	t.Helper()
	shared := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(shared, name)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	return link
}

// Umask sets the process's umask for the test and restores it after.
// The umask is the process's: only tests that do not run in parallel
// may set it. Tests of the modes nwhealth creates set the common 022, so
// that a mode left to the umask shows.
func Umask(t testing.TB, mask int) {
	t.Helper()
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// NoOtherAccess fails the test for every file or directory under root
// (root included) that others (not the owner, not the group) may read,
// write or enter, or that the group may write. It returns how many it
// looked at, so a test can tell it saw what it meant to.
func NoOtherAccess(t testing.TB, root string) int {
	t.Helper()
	n := 0
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		n++
		if perm := fi.Mode().Perm(); perm&0o007 != 0 || perm&0o020 != 0 {
			t.Errorf("%s: mode %v: others may reach it, or the group write it", p, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
