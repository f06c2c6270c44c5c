package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/chserver"
	"github.com/nwhealth/nwhealth/internal/s3test"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// modeOf is a file's permission bits (set-ID bits included) and group.
func modeOf(t *testing.T, p string) (os.FileMode, uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode() &^ os.ModeType, fi.Sys().(*syscall.Stat_t).Gid
}

// TestEvidenceModes: under the common umask 022, nothing an import, a
// push, a pull through the cache or a flows export creates, and no output
// (query -w, report -o, replay --graph), is open to other users: outputs
// are 0600, or 0640 in a set-group-ID directory, whose group they take;
// an output file that exists keeps its mode.
func TestEvidenceModes(t *testing.T) {
	testenv.Umask(t, 0o022)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // as a home or /srv would be
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.pcap")
	genCapture(t, in, pkthdr.LinkEthernet, 2000, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
	if err := os.Chmod(in, 0o600); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(dir, "store")
	mustRun(t, 0, "import", "--store", local, in)
	if n := testenv.NoOtherAccess(t, local); n < 7 {
		t.Errorf("store: %d entries", n)
	}

	group := filepath.Join(dir, "shared")
	if err := os.Mkdir(group, 0o750); err != nil {
		t.Fatal(err)
	}
	const gid = 12345 // the analysts'
	if os.Geteuid() == 0 {
		if err := os.Chown(group, 0, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(group, 0o750|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	_, wantGid := modeOf(t, group)
	existing := filepath.Join(dir, "existing.pcap")
	os.WriteFile(existing, nil, 0o644)
	outputs := []struct {
		path string
		args []string
		want os.FileMode
	}{
		{filepath.Join(dir, "q.pcap"), []string{"query", "--store", local, "-w"}, 0o600},
		{filepath.Join(group, "q.pcap"), []string{"query", "--store", local, "-w"}, 0o640},
		{existing, []string{"query", "--store", local, "-w"}, 0o644},
		{filepath.Join(dir, "r.html"), []string{"report", "--pcap", in, "--format", "html", "-o"}, 0o600},
		{filepath.Join(group, "r.json"), []string{"report", "--store", local, "--format", "stix", "-o"}, 0o640},
		{filepath.Join(dir, "g.dot"), []string{"replay", "--pcap", in, "--format", "jsonl", "--graph"}, 0o600},
	}
	for _, o := range outputs {
		mustRun(t, 0, append(o.args, o.path)...)
		m, g := modeOf(t, o.path)
		if m != o.want {
			t.Errorf("%s %s: %v, want %v", o.args[0], filepath.Base(o.path), m, o.want)
		}
		if filepath.Dir(o.path) == group && g != wantGid {
			t.Errorf("%s %s: group %d, want the directory's %d", o.args[0], filepath.Base(o.path), g, wantGid)
		}
	}

	// The fleet: a spool (import and push), the cache of a pull, the
	// cache of a flows export from the bucket.
	srv := s3test.Start(t)
	srv.Env(t)
	url := "s3://nwh/modes"
	spool := filepath.Join(dir, "spool")
	mustRun(t, 0, "import", "--store", url, "--sensor", "a", "--spool", spool, in)
	mustRun(t, 0, "store", "push", "--store", local, "--to", url, "--sensor", "b")
	cache := filepath.Join(dir, "cache")
	mustRun(t, 0, "query", "--store", url, "--cache", cache, "-w", filepath.Join(dir, "fleet.pcap"))
	ch := chserver.Start(t, 0, chserver.Options{})
	exportCache := filepath.Join(dir, "export-cache")
	mustRun(t, 0, "flows", "--store", url, "--cache", exportCache, "--export", ch.URL("", "", "fleet"))
	for _, d := range []string{spool, cache, exportCache} {
		if n := testenv.NoOtherAccess(t, d); n < 3 {
			t.Errorf("%s: %d entries", d, n)
		}
	}
	// Nothing else appeared open to others beside them.
	testenv.NoOtherAccess(t, local)
	for _, o := range outputs {
		if o.want != 0o644 {
			testenv.NoOtherAccess(t, o.path)
		}
	}
}
