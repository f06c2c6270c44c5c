package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissing runs a test that needs an absent tool in a child process,
// with and without the CI variable: skipped locally, failed under CI.
func TestMissing(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		Tool(t, "nwhealth-no-such-tool")
		t.Fatal("Tool returned for a missing tool")
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{"", false, "SKIP: TestMissing"},
		{"1", true, "required under CI"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", CIVar+"="+tc.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("%s=%q: failed=%v, want %v\n%s", CIVar, tc.ci, failed, tc.wantFail, out)
		}
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "nwhealth-no-such-tool") {
			t.Errorf("%s=%q: output lacks %q and the tool's name:\n%s", CIVar, tc.ci, tc.want, out)
		}
	}
}
