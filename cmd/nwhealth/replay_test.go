package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/internal/testenv"
)

// remoteOpsCaptures lists every capture of the shared remote-operations
// set (skipping the test when the set is absent).
func remoteOpsCaptures(t *testing.T) []string {
	t.Helper()
	dir := testenv.SharedFile(t, "pcaps", "remote-ops")
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.*cap*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures under %s: %v", dir, err)
	}
	return files
}

// TestReplayGolden runs `replay --format jsonl --all` over every shared
// capture and compares with testdata/replay/<set>__<name>.jsonl. Run with
// -update to rewrite them after a reviewed change.
func TestReplayGolden(t *testing.T) {
	for _, f := range remoteOpsCaptures(t) {
		name := filepath.Base(filepath.Dir(f)) + "__" + strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)) + ".jsonl"
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run([]string{"replay", "--pcap", f, "--format", "jsonl", "--all"}, nil, &out, &errOut)
			if code != exitOK && code != exitPartial {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			jsonltest.Check(t, out.Bytes())
			golden := filepath.Join("testdata", "replay", name)
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("output differs from %s (run go test -update and review the diff):\n%s", golden, firstDiff(string(want), out.String()))
			}
		})
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\nwant %s\ngot  %s", i+1, a, b)
		}
	}
	return ""
}

// TestReplayTableAndJSONL checks both output modes on one capture: the
// table names the operations the JSON lines carry, and the story follows.
func TestReplayTableAndJSONL(t *testing.T) {
	f := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng")
	var tbl, js, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("table exit %d: %s", code, errOut.String())
	}
	if code := run([]string{"replay", "--pcap", f, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("jsonl exit %d: %s", code, errOut.String())
	}
	jsonltest.Check(t, js.Bytes())
	for _, want := range []string{`3B\backdoor`, `\\172.16.66.36\ADMIN$\PSEXESVC.exe`, "T1570", "Progression per host:", "172.16.66.36: "} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	for _, want := range []string{`"type":"operation"`, `"user":"backdoor"`, `"domain":"3B"`, `"auth":"ntlm"`,
		`"technique":"T1570"`, `"type":"story"`, `"type":"stats"`, `"evidence":{"from":"2020-07-19T13:14:40Z"`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("jsonl lacks %s", want)
		}
	}
	if strings.Contains(tbl.String(), "tree connect  ") && strings.Contains(tbl.String(), `\IPC$`) {
		t.Errorf("plumbing shown without --all")
	}
}

func TestReplayUsage(t *testing.T) {
	for _, args := range [][]string{
		{"replay"},
		{"replay", "--pcap", "x", "-i", "eth0"},
		{"replay", "--pcap", "x", "--format", "xml"},
		{"replay", "--pcap", "x", "--follow"},
		{"replay", "-i", "eth0", "--ring-size", "lots"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, nil, &out, &errOut); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", filepath.Join(t.TempDir(), "missing.pcap")}, nil, &out, &errOut); code != exitError {
		t.Errorf("missing file: exit %d", code)
	}
}

func TestReplayGraph(t *testing.T) {
	f := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_smbexec_smb_dcerpc_svcctl_epm.pcapng")
	dot := filepath.Join(t.TempDir(), "g.dot")
	var out, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f, "--graph", dot, "--format", "jsonl"}, nil, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	jsonltest.Check(t, out.Bytes())
	b, err := os.ReadFile(dot)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "digraph replay {") || !strings.Contains(string(b), `"172.16.66.1" -> "172.16.66.36"`) {
		t.Fatalf("graph:\n%s", b)
	}
}
