package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
)

func winrmCapture(name string) string {
	return filepath.Join("..", "..", "pkg", "replay", "testdata", "winrm", name)
}

// TestReplayWinRM: pywinrm's NTLM-encrypted session (pkg/replay's own
// capture), opened with --ntlm-secrets, shows the commands it ran in both
// output modes (flag D, decrypted: winrm); without the secret one
// encrypted session; report carries the same operations into its HTML
// and JSON Lines, their techniques into STIX.
func TestReplayWinRM(t *testing.T) {
	f := winrmCapture("ntlm.pcap")
	good := labSecrets(t, "CORP\\alice password:Winrm-Lab-2026!\n", 0o600)
	var tbl, js, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", good, "--stats"}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("table exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"Create shell", "cmd: ipconfig /all", "T1059.003", "cmd: powershell -encodedcommand", "T1059.001", "CORP\\alice"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	if !strings.Contains(errOut.String(), "winrm_decrypted=20 winrm_undecryptable=0") {
		t.Errorf("stats: %s", errOut.String())
	}
	if strings.Contains(tbl.String()+errOut.String(), "Winrm-Lab-2026!") {
		t.Error("the secret was printed")
	}
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", good, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("jsonl exit %d: %s", code, errOut.String())
	}
	recs := jsonltest.Check(t, js.Bytes())
	cmds := 0
	for _, op := range recs["operation"] {
		if op["interface"] != "winrm" || op["decrypted"] != "winrm" || op["auth"] != "ntlm" || op["user"] != "alice" {
			t.Errorf("operation %v", op)
		}
		if op["operation"] == "Command" {
			cmds++
		}
	}
	if cmds != 2 {
		t.Errorf("%d commands, want pywinrm's 2", cmds)
	}
	if s := recs["stats"]; len(s) != 1 || s[0]["winrm_decrypted"] != float64(20) {
		t.Errorf("stats %v", s)
	}

	js.Reset()
	if code := run([]string{"replay", "--pcap", f, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("jsonl exit %d: %s", code, errOut.String())
	}
	recs = jsonltest.Check(t, js.Bytes())
	if ops := recs["operation"]; len(ops) != 1 || ops[0]["operation"] != "session" || ops[0]["encrypted"] != true || ops[0]["technique"] != "T1021.006" {
		t.Errorf("without the secret: %v", ops)
	}

	for _, format := range []string{"html", "stix", "jsonl"} {
		var out bytes.Buffer
		if code := run([]string{"report", "--pcap", f, "--ntlm-secrets", good, "--format", format}, nil, &out, &errOut); code != exitOK {
			t.Fatalf("report %s exit %d: %s", format, code, errOut.String())
		}
		// STIX carries the techniques (attack patterns) and hosts, not
		// each operation's command.
		wants := []string{"ipconfig /all", "T1021.006", "T1059.003"}
		if format == "stix" {
			wants = wants[1:]
		}
		for _, want := range wants {
			if !strings.Contains(out.String(), want) {
				t.Errorf("report %s lacks %q", format, want)
			}
		}
		if format == "jsonl" {
			jsonltest.Check(t, out.Bytes())
		}
	}
}
