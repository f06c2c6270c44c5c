package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and commit are set at build time by -ldflags "-X main.version=...
// -X main.commit=..." (the Makefile passes git describe and the commit);
// without them the Go toolchain's VCS stamp, when it made one, gives the
// commit.
var version, commit = "", ""

// versionString says which nwhealth this is: its version, the commit it
// was built from (with "-dirty" for uncommitted changes) and the Go
// release, so a report or a bug names exactly the code that made it.
func versionString() string {
	v, rev := version, commit
	if bi, ok := debug.ReadBuildInfo(); ok && rev == "" {
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && rev != "" {
			rev += "-dirty"
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok && v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version // go install module@version
	}
	if v == "" {
		v = "devel"
	}
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("nwhealth %s (commit %s, %s %s/%s)", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
