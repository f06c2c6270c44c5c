package replay

import (
	"bytes"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/internal/tsharkdec"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/ntlmseal"
)

// labPassword is the lab account's password (CORP\alice) the rpclab
// captures were recorded with: a lab value (rpcops testdata SOURCES.md).
const labPassword = "Summer2026!"

func labCapture(name string) string {
	return filepath.Join("..", "smbrpc", "rpcops", "testdata", "captures", name)
}

func secretsOf(t testing.TB, text string) *ntlmseal.Secrets {
	t.Helper()
	s, err := ntlmseal.ParseSecrets(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replaySealed replays file with secrets and returns its operations and
// the request stubs it opened, in order.
func replaySealed(t *testing.T, file string, sec *ntlmseal.Secrets) ([]Operation, [][]byte, Stats) {
	t.Helper()
	src, c, err := OpenFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ops []Operation
	p := New(Config{Secrets: sec}, func(o Operation) { ops = append(ops, o) })
	var stubs [][]byte
	p.stubHook = func(dir int, stub []byte) {
		if dir == 0 {
			stubs = append(stubs, bytes.Clone(stub))
		}
	}
	for {
		pk, err := src.Next()
		if err != nil {
			break
		}
		p.Packet(pk)
	}
	p.Flush()
	return ops, stubs, p.Stats()
}

// tsharkSealedStrings returns, per sealed request, the first of fields
// tshark decodes with the password ("" when none).
func tsharkSealedStrings(t *testing.T, file, password string, fields ...string) []string {
	t.Helper()
	args := []string{"-n", "-r", file, "-o", "ntlmssp.nt_password:" + password, "-Y", "dcerpc.pkt_type == 0 && dcerpc.auth_level == 6", "-T", "fields"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(testenv.Tool(t, "tshark"), args...).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var vals []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		v := ""
		for _, c := range strings.Split(l, "\t") {
			if c != "" {
				v = c
				break
			}
		}
		vals = append(vals, v)
	}
	return vals
}

// TestSealedLabCaptures opens the real sealed traffic of Certipy,
// topotam's PetitPotam and Coercer with the lab password: the request stubs equal
// tshark's decryption byte for byte, and the operations carry what the
// tool was told to send (SOURCES.md command lines).
func TestSealedLabCaptures(t *testing.T) {
	for _, c := range []struct {
		file string
		want []map[string]string // per sealed request, in order: operation and fields
	}{
		{"rpclab_certipy_req_sealed.pcap", []map[string]string{
			{"op": "CertServerRequest", "template": "ESC1User", "ca": "CORP-DC01-CA", "subject": "CN=Alice", "subject alternative name": "upn:administrator@corp.local"},
			{"op": "CertServerRequest", "template": "User", "ca": "CORP-DC01-CA", "subject": "CN=Alice"},
		}},
		{"rpclab_petitpotam_topotam_sealed.pcap", []map[string]string{
			{"op": "EfsRpcOpenFileRaw", "target": `\\10.0.0.66\test\Settings.ini`},
			{"op": "EfsRpcEncryptFileSrv", "target": `\\10.0.0.66\test\Settings.ini`},
			{"op": "EfsRpcOpenFileRaw", "target": `\\10.0.0.66\test\Settings.ini`},
			{"op": "EfsRpcEncryptFileSrv", "target": `\\10.0.0.66\test\Settings.ini`},
		}},
		// Coercer's MS-EVEN method: ElfrOpenBELW on the NT form of a UNC
		// path to the listener 10.0.0.66 of the command line.
		{"rpclab_coercer_even_sealed.pcap", []map[string]string{
			{"op": "OpenBackupEventLogW", "target": `\??\UNC\10.0.0.66\U01Pt0ZW\aa`, "coerced to": "10.0.0.66"},
		}},
		// Certipy 5 req -dcom: activation on 135, then ICertRequestD on
		// the port the activation reply named.
		{"rpclab_certipy5_req_dcom_sealed.pcap", []map[string]string{
			{"op": "RemoteCreateInstance", "target": "CCertRequestD"},
			{"op": "Request", "template": "ESC1User", "ca": "CORP-DC01-CA", "subject": "CN=Alice", "subject alternative name": "upn:administrator@corp.local"},
			{"op": "RemoteCreateInstance", "target": "CCertRequestD"},
			{"op": "Request", "template": "Machine", "ca": "CORP-DC01-CA", "subject": "CN=Alice", "subject alternative name": "dns:dc01.corp.local"},
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			file := labCapture(c.file)
			byFrame, frames, err := tsharkdec.Stubs(testenv.Tool(t, "tshark"), file, labPassword, tsharkdec.SealedRequests)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != len(c.want) {
				t.Fatalf("tshark decrypted %d requests, want %d", len(frames), len(c.want))
			}
			for _, sec := range []string{`CORP\alice password:` + labPassword, "alice nt:" + ntHex(labPassword)} {
				ops, stubs, st := replaySealed(t, file, secretsOf(t, sec+"\n"))
				if len(stubs) != len(frames) {
					t.Fatalf("opened %d request stubs, tshark %d", len(stubs), len(frames))
				}
				for i, f := range frames {
					if want := byFrame[f]; !bytes.Equal(stubs[i], want) {
						at := 0
						for at < min(len(want), len(stubs[i])) && stubs[i][at] == want[at] {
							at++
						}
						t.Errorf("frame %d: stub of %d bytes differs from tshark's decryption (%d bytes) at offset %d", f, len(stubs[i]), len(want), at)
					}
				}
				// What tshark decodes of the opened stubs (MS-EFSR on the
				// lsarpc UUID) must be in ours.
				names := tsharkSealedStrings(t, file, labPassword, "efs.EfsRpcOpenFileRaw.FileName", "efs.EfsRpcEncryptFileSrv.Filename",
					"eventlog.eventlog_OpenBackupEventLogW.logname")
				var sealed []Operation
				for _, op := range ops {
					if op.Encrypted {
						sealed = append(sealed, op)
					}
				}
				if len(sealed) != len(c.want) || st.DecryptedCalls != uint64(len(c.want)) || st.UndecryptableCalls != 0 {
					t.Fatalf("%d sealed operations (stats %d decrypted, %d not), want %d", len(sealed), st.DecryptedCalls, st.UndecryptableCalls, len(c.want))
				}
				for i, v := range names {
					if v != "" && i < len(sealed) && sealed[i].Target != v {
						t.Errorf("request %d: tshark decodes %q, replay %q", i, v, sealed[i].Target)
					}
				}
				// The class tshark reads from a sealed DCOM activation must
				// be the one replay names.
				for i, v := range tsharkSealedStrings(t, file, labPassword, "isystemactivator.properties.instninfo.clsid") {
					if v != "" && i < len(sealed) && !strings.Contains(sealed[i].Field("class"), v) {
						t.Errorf("request %d: tshark decodes class %s, replay %q", i, v, sealed[i].Field("class"))
					}
				}
				for i, w := range c.want {
					op := &sealed[i]
					if op.Sealed != SealedDecrypted || op.Operation != w["op"] || !strings.EqualFold(op.User, "alice") {
						t.Errorf("op %d: %s %s sealed=%q user=%q", i, op.Interface, op.Operation, op.Sealed, op.User)
					}
					for k, v := range w {
						got := op.Field(k)
						switch k {
						case "op":
							continue
						case "target":
							got = op.Target
						}
						if !strings.Contains(got, v) {
							t.Errorf("op %d %s: %s = %q, want %q (fields %v)", i, op.Operation, k, got, v, op.Fields)
						}
					}
				}
			}
		})
	}
}

func ntHex(pw string) string {
	h := ntlmseal.NTHash(pw)
	return hex.EncodeToString(h[:])
}

// TestSealedWrongSecret: a wrong password for the account marks its sealed
// calls undecryptable, with the reason, and decodes nothing from them; an
// account not in the file, or no file, leaves them as they were.
func TestSealedWrongSecret(t *testing.T) {
	file := labCapture("rpclab_certipy_req_sealed.pcap")
	for _, c := range []struct {
		secrets string
		sealed  string
		reason  string
	}{
		{`CORP\alice password:Summer2025!`, SealedUndecryptable, "wrong password"},
		{`CORP\bob password:` + labPassword, "", ""},
		{"", "", ""},
	} {
		var sec *ntlmseal.Secrets
		if c.secrets != "" {
			sec = secretsOf(t, c.secrets+"\n")
		}
		ops, stubs, st := replaySealed(t, file, sec)
		if len(stubs) != 0 {
			t.Errorf("%q: %d stubs opened", c.secrets, len(stubs))
		}
		n := 0
		for _, op := range ops {
			if !op.Encrypted {
				continue
			}
			n++
			if op.Sealed != c.sealed || op.Operation != "CertServerRequest" || op.Field("template") != "" ||
				!strings.Contains(op.Field("sealed"), c.reason) {
				t.Errorf("%q: %s sealed=%q fields=%v", c.secrets, op.Operation, op.Sealed, op.Fields)
			}
		}
		if n != 2 || (c.sealed != "" && st.UndecryptableCalls != 2) || st.DecryptedCalls != 0 {
			t.Errorf("%q: %d sealed operations, stats %+v", c.secrets, n, st)
		}
	}
}

// TestSealedLostPDU drops the first sealed request of each association
// of the PetitPotam capture: the next one of the direction cannot be
// opened (the RC4 stream lost its place) and says so.
func TestSealedLostPDU(t *testing.T) {
	src, c, err := OpenFile(labCapture("rpclab_petitpotam_topotam_sealed.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ops []Operation
	p := New(Config{Secrets: secretsOf(t, `CORP\alice password:`+labPassword+"\n")}, func(o Operation) { ops = append(ops, o) })
	// Frames 30 and 70 carry the first sealed request of each pipe.
	for n := 1; ; n++ {
		pk, err := src.Next()
		if err != nil {
			break
		}
		if n == 30 || n == 70 {
			continue
		}
		p.Packet(pk)
	}
	p.Flush()
	bad := 0
	for _, op := range ops {
		if op.Sealed == SealedDecrypted {
			t.Errorf("%s opened after a lost PDU", op.Operation)
		}
		if op.Sealed == SealedUndecryptable {
			bad++
			if !strings.Contains(op.Field("sealed"), "lost") || op.Target != "" {
				t.Errorf("%s: %v", op.Operation, op.Fields)
			}
		}
	}
	if bad != 2 {
		t.Fatalf("%d undecryptable operations, want 2: %v", bad, ops)
	}
}

// TestSealedSegmented: the real Certipy association cut into small TCP
// segments (as the fuzzer's seed is), its bind not captured: the sealed
// request is still opened and its stub read as CertServerRequest.
func TestSealedSegmented(t *testing.T) {
	cert := certipyTCP(t)
	flow := newFlow("10.0.0.66:40000", "10.0.0.2:135", t0)
	flow.send(false, cert["frame54"], 97)
	flow.send(true, cert["frame56"], 61)
	flow.send(true, cert["frame58"], 61)
	var ops []Operation
	p := New(Config{Secrets: secretsOf(t, "alice password:"+labPassword+"\n")}, func(o Operation) { ops = append(ops, o) })
	for _, pk := range flow.pkts {
		p.Packet(pk)
	}
	p.Flush()
	if st := p.Stats(); st.DecryptedCalls != 1 || len(ops) != 1 || ops[0].Operation != "CertServerRequest" || ops[0].Field("template") != "User" {
		t.Fatalf("stats %+v, ops %+v", st, ops)
	}
}

// TestSealedNTLMv1 opens impacket's NTLMv1 sealing (the lab's
// ntlmv1_client.py), with extended session security (tshark decrypts it
// too: the stubs must match) and without (tshark 4.0 does not open it;
// the verifier's CRC-32 and sequence number prove ours, and the template
// is the one the client sent).
func TestSealedNTLMv1(t *testing.T) {
	for _, c := range []struct {
		file, template string
		oracle         bool
	}{
		{"rpclab_ntlmv1_ess_sealed.pcap", "NTLMv1ess", true},
		{"rpclab_ntlmv1_noess_sealed.pcap", "NTLMv1noess", false},
	} {
		t.Run(c.file, func(t *testing.T) {
			file := labCapture(c.file)
			ops, stubs, st := replaySealed(t, file, secretsOf(t, `CORP\alice password:`+labPassword+"\n"))
			if st.DecryptedCalls != 1 || len(stubs) != 1 {
				t.Fatalf("stats %+v, %d stubs", st, len(stubs))
			}
			for _, op := range ops {
				if op.Encrypted && (op.Sealed != SealedDecrypted || op.Field("template") != c.template || op.Field("ca") != "CORP-DC01-CA") {
					t.Errorf("%s sealed=%q fields=%v", op.Operation, op.Sealed, op.Fields)
				}
			}
			if c.oracle {
				byFrame, frames, err := tsharkdec.Stubs(testenv.Tool(t, "tshark"), file, labPassword, tsharkdec.SealedRequests)
				if err != nil {
					t.Fatal(err)
				}
				if len(frames) != 1 || !bytes.Equal(byFrame[frames[0]], stubs[0]) {
					t.Errorf("stub differs from tshark's decryption (%d frames)", len(frames))
				}
			}
			_, stubs, st = replaySealed(t, file, secretsOf(t, `CORP\alice password:Summer2026?`+"\n"))
			if len(stubs) != 0 || st.UndecryptableCalls != 1 {
				t.Errorf("wrong password: %d stubs, stats %+v", len(stubs), st)
			}
		})
	}
}
