// Package childenv is the environment nwhealth gives the programs it
// runs (nft, tcpdump): its own, less the credentials it reads from it.
// Those programs need none, and a child's environment is one more place
// a secret can be read from (/proc/PID/environ, a core dump, a crash
// report).
package childenv

import (
	"os"
	"strings"
)

// Secrets are the variables never passed on.
var Secrets = []string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "CLICKHOUSE_PASSWORD"}

// Environ is os.Environ() without Secrets.
func Environ() []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		secret := false
		for _, s := range Secrets {
			secret = secret || name == s
		}
		if !secret {
			out = append(out, kv)
		}
	}
	return out
}
