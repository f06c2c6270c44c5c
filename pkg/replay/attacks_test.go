package replay

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func be32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// Attack patterns over operations shaped as the decoders report them.

func nlOp(at time.Duration, op, target string, zero bool, status uint32) Operation {
	o := Operation{Time: t0.Add(at), End: t0.Add(at + time.Millisecond), Kind: "rpc", Interface: "netlogon",
		Operation: op, Target: target, Src: netip.MustParseAddr("10.0.0.66"), Dst: netip.MustParseAddr("10.0.0.2"),
		Status: status, HasStatus: true}
	if zero {
		o.Fields = []Field{{"zerologon", "client credential is all zeros (CVE-2020-1472 pattern)"}}
		o.Technique, o.Phase = "T1210", "credential-access"
	}
	return o
}

func TestZerologon(t *testing.T) {
	var ops []Operation
	for i := 0; i < 1874; i++ {
		d := time.Duration(i) * 10 * time.Millisecond
		ops = append(ops, nlOp(d, "NetrServerReqChallenge", "DC01", true, 0))
		ops = append(ops, nlOp(d+time.Millisecond, "NetrServerAuthenticate3", "DC01$", true, 0xc0000022))
	}
	attempt := DetectAttacks(ops, DCSet([]netip.Addr{netip.MustParseAddr("10.0.0.2")}))
	if len(attempt) != 1 || attempt[0].Verdict != "attempted" || attempt[0].Severity != SevHigh || attempt[0].CVE != "CVE-2020-1472" {
		t.Fatalf("attempt: %+v", attempt)
	}
	if !strings.Contains(attempt[0].Summary, "1,874 zero-credential") || attempt[0].Count != 2*1874 || len(attempt[0].Evidence) > maxEvidence {
		t.Errorf("attempt summary %q count %d evidence %d", attempt[0].Summary, attempt[0].Count, len(attempt[0].Evidence))
	}
	ops = append(ops, nlOp(20*time.Second, "NetrServerAuthenticate3", "DC01$", true, 0))
	ops = append(ops, nlOp(20*time.Second+time.Millisecond, "NetrServerPasswordSet2", "DC01$", true, 0))
	done := DetectAttacks(ops, DCSet([]netip.Addr{netip.MustParseAddr("10.0.0.2")}))
	if len(done) != 1 || done[0].Verdict != "exploited" || done[0].Severity != SevCritical || done[0].Account != "DC01$" {
		t.Fatalf("exploited: %+v", done)
	}
	if !strings.Contains(done[0].Summary, "domain controller 10.0.0.2") || !strings.Contains(done[0].Summary, "NetrServerPasswordSet2 reset the DC01$ machine password") {
		t.Errorf("summary %q", done[0].Summary)
	}
	last := done[0].Evidence[len(done[0].Evidence)-1]
	if last.Operation != "NetrServerPasswordSet2" {
		t.Errorf("the password set is not in the evidence: %+v", done[0].Evidence)
	}
}

func TestCoercionSucceeded(t *testing.T) {
	att, dc := netip.MustParseAddr("10.0.0.66"), netip.MustParseAddr("10.0.0.2")
	ops := []Operation{
		{Time: t0, End: t0, Kind: "rpc", Interface: "efsrpc", Operation: "EfsRpcOpenFileRaw", Src: att, Dst: dc,
			Target: `\\10.0.0.66\x\y`, Technique: "T1187", Phase: "credential-access",
			Fields: []Field{{"file", `\\10.0.0.66\x\y`}, {"coerced to", "10.0.0.66"}}},
		{Time: t0.Add(time.Second), End: t0.Add(time.Second), Kind: "tree", Interface: "smb", Operation: "tree connect",
			Src: dc, Dst: att, User: "DC01$", Domain: "CORP", Auth: "ntlm", Target: `\\10.0.0.66\IPC$`},
	}
	for _, kind := range []string{"tree", "logon"} { // a tree connect, or only the session setup to the listener
		ops[1].Kind = kind
		a := DetectAttacks(ops, DCSet([]netip.Addr{dc}))
		if len(a) != 1 || a[0].Name != "PetitPotam coercion (MS-EFSR)" || a[0].Verdict != "succeeded" || a[0].Severity != SevCritical ||
			a[0].Account != `CORP\DC01$` || a[0].CVE != "CVE-2021-36942" {
			t.Fatalf("%s: %+v", kind, a)
		}
	}
	// The same call to a workstation, with no callback seen.
	a := DetectAttacks(ops[:1], nil)
	if len(a) != 1 || a[0].Verdict != "attempted" || a[0].Severity != SevHigh {
		t.Fatalf("%+v", a)
	}
}

// TestCoercionLab: the real coercion tools' lab captures give one
// coercion finding each, named for the protocol, with the stand-in's
// callback to the listener as CORP\DC01$ in its evidence (the listener
// is the host of the tools' command lines, SOURCES.md). The sealed ones
// are opened with the lab password; without it the coerced host is not
// on the wire and nothing is claimed.
func TestCoercionLab(t *testing.T) {
	sec := secretsOf(t, `CORP\alice password:`+labPassword+"\n")
	for _, c := range []struct {
		file, name string
		calls      int
		sealed     bool
	}{
		{"rpclab_coercer_even_sealed.pcap", "CheeseOunce coercion (MS-EVEN)", 1, true},
		// ly4k's PetitPotam: nine methods over \pipe\efsrpc, two over
		// \pipe\lsarpc with a WebDAV path (no SMB callback for those).
		{"rpclab_petitpotam_ly4k.pcap", "PetitPotam coercion (MS-EFSR)", 11, false},
	} {
		t.Run(c.file, func(t *testing.T) {
			ops, _, _ := replaySealed(t, labCapture(c.file), sec)
			dc := netip.MustParseAddr("10.0.0.2")
			a := DetectAttacks(ops, DCSet([]netip.Addr{dc}))
			if len(a) != 1 {
				t.Fatalf("%d attacks: %+v", len(a), a)
			}
			got := a[0]
			if got.Name != c.name || got.Technique != "T1187" || got.Verdict != "succeeded" || got.Severity != SevCritical ||
				got.Account != `CORP\DC01$` || got.Dst != dc || got.Src != netip.MustParseAddr("10.0.0.66") || got.Count != c.calls {
				t.Errorf("%+v", got)
			}
			if !strings.Contains(got.Summary, "to authenticate to 10.0.0.66") || !strings.Contains(got.Summary, `connected there as CORP\DC01$`) {
				t.Errorf("summary %q", got.Summary)
			}
			callback := false
			for _, e := range got.Evidence {
				callback = callback || e.Src == "10.0.0.2" && e.Dst == "10.0.0.66"
			}
			if !callback {
				t.Errorf("no callback row in the evidence: %+v", got.Evidence)
			}
			if !c.sealed {
				return
			}
			ops, _, _ = replaySealed(t, labCapture(c.file), nil)
			if a := DetectAttacks(ops, nil); len(a) != 0 {
				t.Errorf("without the password: %+v", a)
			}
		})
	}
}

// TestReplicationBetweenDCs: DRSGetNCChanges from a host acting as a
// domain controller is listed without a technique; from another host it is
// DCSync.
func TestReplicationBetweenDCs(t *testing.T) {
	dc1, dc2, ws := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.50")
	mk := func(src netip.Addr) Operation {
		return Operation{Time: t0, End: t0, Kind: "rpc", Interface: "drsuapi", Operation: "DRSGetNCChanges", Src: src, Dst: dc1,
			Technique: "T1003.006", Phase: "credential-access", HasStatus: true}
	}
	ops := []Operation{mk(dc2), mk(ws)}
	dcs := DCSet([]netip.Addr{dc1, dc2})
	MarkReplication(ops, dcs)
	if ops[0].Technique != "" || ops[0].Phase != "" || !strings.Contains(fieldValues(&ops[0]), "replication between domain controllers") {
		t.Errorf("DC to DC: %+v", ops[0])
	}
	if ops[1].Technique != "T1003.006" {
		t.Errorf("workstation: %+v", ops[1])
	}
	a := DetectAttacks(ops, dcs)
	if len(a) != 1 || a[0].Name != "DCSync" || a[0].Src != ws || a[0].Severity != SevCritical || a[0].Verdict != "exploited" {
		t.Fatalf("%+v", a)
	}
	if !strings.Contains(a[0].Summary, "(1 call)") {
		t.Errorf("summary %q: one call is \"1 call\"", a[0].Summary)
	}
}

// TestDCFromTraffic: a host answering Kerberos or LDAP acts as a domain
// controller, and its DRSGetNCChanges is then plain replication.
func TestDCFromTraffic(t *testing.T) {
	ldap := newFlow("10.0.0.3:50500", "10.0.0.2:389", t0)
	kdc := newFlow("10.0.0.3:50501", "10.0.0.4:88", t0)
	rep := krbRep("CORP.LOCAL", "alice", "CORP.LOCAL", "cifs", "fs1")
	kdc.send(false, join(be32(uint32(len(rep))), rep), 1460)
	smb := newFlow("10.0.0.3:50502", "10.0.0.5:445", t0) // a file server is no DC
	_, st := runPackets(t, append(append(ldap.pkts, kdc.pkts...), smb.pkts...), Config{})
	want := []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.4")}
	if len(st.DomainControllers) != 2 || st.DomainControllers[0] != want[0] || st.DomainControllers[1] != want[1] {
		t.Fatalf("domain controllers %v, want %v", st.DomainControllers, want)
	}
}
