package replay

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

// orpcThis is an ORPCTHIS without extensions (MS-DCOM 2.2.13.3).
func orpcThis() []byte {
	cid := smbrpc.MustUUID("11111111-2222-3333-4444-555555555555")
	return join(le16(5), le16(7), le32(0), le32(0), cid[:], le32(0))
}

// ndrBSTR is a top-level BSTR: a unique pointer to a FLAGGED_WORD_BLOB.
func ndrBSTR(ref uint32, s string) []byte {
	u := utf16.Encode([]rune(s))
	b := join(le32(ref), le32(uint32(len(u))), le32(uint32(2*len(u))), le32(uint32(len(u))))
	for _, c := range u {
		b = append(b, le16(c)...)
	}
	return pad4(b)
}

// TestDcomExecFirewallProgression: a host's firewall turned off and its
// rules deleted over MS-FASP, then a command run in its interactive
// session through BitLocker's BDEUILauncher (BitlockMove): replay names
// both and the host's story has both steps, in time order.
func TestDcomExecFirewallProgression(t *testing.T) {
	dir := t.TempDir()
	handle := join(le32(0), []byte("0123456789abcdef"))
	fw := filepath.Join(dir, "remotefw.pcap")
	rpcFlowPcap(t, fw, "50420", t0, smbrpc.MustUUID("6b5bdd1e-528c-422c-af8c-a4079be4fe48"), 1, []oracleCall{
		// SetConfig(handle, FW_PROFILE_CONFIG_ENABLE_FW, all profiles,
		// union arm 1: DWORD* -> 0, dwBufSize 4).
		{11, join(handle, le16(1), le16(0), le32(0x7fffffff), le16(1), le16(0), le32(0x20000), le32(0), le32(4))},
		{8, handle},
	})
	bde := filepath.Join(dir, "bdeuilauncher.pcap")
	rpcFlowPcap(t, bde, "49710", t0.Add(time.Minute), smbrpc.MustUUID("8961f0a0-ff62-403b-91b4-7b9280241ceb"), 0, []oracleCall{
		{7, join(orpcThis(), le32(4), le32(0), ndrBSTR(0x20000, `C:\Windows\Temp\evil.exe`))},
	})
	st := NewStories()
	seen := map[string]Operation{}
	for _, f := range []string{fw, bde} {
		ops, _ := replayFile(t, f)
		for i := range ops {
			st.Add(&ops[i])
			seen[ops[i].Interface+" "+ops[i].Operation] = ops[i]
		}
	}
	for k, tech := range map[string]string{"RemoteFW SetConfig": "T1562.004", "RemoteFW DeleteAllFirewallRules": "T1562.004",
		"IBDEUILauncher BDEUIProcessStart": "T1021.003"} {
		o, ok := seen[k]
		if !ok {
			t.Errorf("replay reports no %s (%d operations)", k, len(seen))
			continue
		}
		if o.Technique != tech {
			t.Errorf("%s: technique %q, want %q", k, o.Technique, tech)
		}
	}
	if o := seen["RemoteFW SetConfig"]; o.Field("value") != "0 (firewall disabled)" || o.Target != "ENABLE_FW" {
		t.Errorf("SetConfig: target %q, value %q", o.Target, o.Field("value"))
	}
	if o := seen["IBDEUILauncher BDEUIProcessStart"]; o.Command != `C:\Windows\Temp\evil.exe` {
		t.Errorf("BDEUIProcessStart command %q", o.Command)
	}
	hosts := st.Hosts()
	if len(hosts) != 1 {
		t.Fatalf("%d host stories, want 1", len(hosts))
	}
	var got []string
	for _, s := range hosts[0].Steps {
		got = append(got, s.Phase+" "+strings.Join(s.Techniques, ","))
	}
	want := []string{"defense-evasion T1562.004", "execution T1021.003"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("progression %q, want %q", got, want)
	}
}
