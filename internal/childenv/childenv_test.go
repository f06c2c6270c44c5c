package childenv

import (
	"os/exec"
	"strings"
	"testing"
)

func TestEnviron(t *testing.T) {
	for _, s := range Secrets {
		t.Setenv(s, "secret-value-"+s)
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	cmd := exec.Command("env")
	cmd.Env = Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "secret-value-") {
		t.Errorf("a secret reached the child:\n%s", out)
	}
	if !strings.Contains(string(out), "AWS_REGION=eu-west-1") {
		t.Errorf("the rest of the environment did not reach the child:\n%s", out)
	}
}
