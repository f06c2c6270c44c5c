// Package testenv finds the shared test data and oracle tools for tests, and
// skips with a clear message when they are absent, so a fresh clone still
// runs every unit test.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

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

// SharedDir returns the team's read-only shared data directory: the
// NWHEALTH_SHARED environment variable, or "shared" beside the checkout.
// The test is skipped when it is absent.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("NWHEALTH_SHARED")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(ModuleRoot(t)), "shared")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared test data not found at %s (set NWHEALTH_SHARED): %v", dir, err)
	}
	return dir
}

// SharedFile returns a path under SharedDir, skipping when the file is absent.
func SharedFile(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{SharedDir(t)}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared file %s absent: %v", p, err)
	}
	return p
}

// Tool returns the path of an external program, skipping the test when it is
// not installed (.ci/deps installs them in CI).
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (run .ci/deps): %v", name, err)
	}
	return p
}

// Root skips the test unless it runs as root (network namespaces, AF_PACKET).
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and raw sockets")
	}
}

// CI reports whether the tests run in CI (NWHEALTH_CI=1, set by .ci/run),
// where everything .ci/deps installs must be there.
func CI() bool { return os.Getenv("NWHEALTH_CI") == "1" }

// Missing skips the test for a missing tool or server, or fails it in CI,
// where a skip would hide a broken install.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if CI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
