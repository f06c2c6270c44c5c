package main

import (
	"bytes"

	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/internal/testenv"
)

// syncBuffer is a bytes.Buffer a child process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// opLines keeps the "operation" lines of replay's JSON Lines output.
func opLines(out string) []string {
	var ops []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `"type":"operation"`) {
			ops = append(ops, l)
		}
	}
	return ops
}

// TestReplayFromStore: replaying a stored capture gives exactly what
// replaying the file gives, and host/time selectors narrow it.
func TestReplayFromStore(t *testing.T) {
	psexec := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng")
	wmi := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_WMI_ProcessCallCreate.pcapng")
	st := tempStore(t)
	if code, _, e := nwh(t, nil, "import", "--store", st, psexec, wmi); code != 0 {
		t.Fatalf("import: %s", e)
	}
	_, want, _ := nwh(t, nil, "replay", "--pcap", psexec, "--format", "jsonl")
	code, got, e := nwh(t, nil, "replay", "--store", st, "--to", "2020-07-20T00:00:00Z", "--format", "jsonl")
	if code != 0 {
		t.Fatalf("replay --store: exit %d: %s", code, e)
	}
	w, g := opLines(want), opLines(got)
	if len(w) == 0 || strings.Join(w, "\n") != strings.Join(g, "\n") {
		t.Fatalf("store replay differs from file replay:\n%s\n---\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
	_, both, _ := nwh(t, nil, "replay", "--store", st, "--format", "jsonl")
	_, wmiOnly, _ := nwh(t, nil, "replay", "--store", st, "--host", "172.16.66.1", "--from", "2020-07-24", "--format", "jsonl")
	if len(opLines(both)) <= len(w) || len(opLines(wmiOnly)) == 0 || len(opLines(wmiOnly)) >= len(opLines(both)) {
		t.Errorf("selectors: all %d, psexec %d, wmi day %d operations", len(opLines(both)), len(w), len(opLines(wmiOnly)))
	}
	if code, _, e := nwh(t, nil, "replay", "--pcap", psexec, "--host", "1.2.3.4"); code != exitUsage {
		t.Errorf("--host without --store: exit %d (%s)", code, e)
	}
}

// TestReplayFollow follows a store while another process writes to it:
// operations stored after the follower started are printed, and only those.
func TestReplayFollow(t *testing.T) {
	psexec := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng")
	smbexec := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_smbexec_smb_dcerpc_svcctl_epm.pcapng")
	st := tempStore(t)
	if code, _, e := nwh(t, nil, "import", "--store", st, psexec); code != 0 {
		t.Fatalf("import: %s", e)
	}
	follow := child(t, "replay", "--store", st, "--follow", "--format", "jsonl")
	var out, errOut syncBuffer
	follow.Stdout, follow.Stderr = &out, &errOut
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	// Write only once the follower has passed over what was stored (a
	// loaded machine may take seconds to start it).
	for start := time.Now(); !strings.Contains(errOut.String(), "replay: following "); time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the follower did not start: %s", errOut.String())
		}
	}
	if code, _, e := nwh(t, nil, "import", "--store", st, smbexec); code != 0 {
		t.Fatalf("import while following: %s", e)
	}
	_, want, _ := nwh(t, nil, "replay", "--pcap", smbexec, "--format", "jsonl")
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && len(opLines(out.String())) < len(opLines(want)) {
		time.Sleep(100 * time.Millisecond)
	}
	follow.Process.Signal(syscall.SIGTERM)
	if err := follow.Wait(); err != nil {
		t.Errorf("follower exit: %v: %s", err, errOut.String())
	}
	jsonltest.Check(t, []byte(out.String()))
	got := opLines(out.String())
	if len(got) == 0 || len(got) != len(opLines(want)) {
		t.Fatalf("followed %d operations, want the %d of the capture written after the start:\n%s\nstderr: %s", len(got), len(opLines(want)), out.String(), errOut.String())
	}
	for _, l := range got {
		if strings.Contains(l, "PSEXESVC") {
			t.Errorf("operation from before the follower started: %s", l)
		}
	}

}
