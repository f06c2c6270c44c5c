package rpcops

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/internal/tsharkdec"
)

// labPassword is the lab account's password (CORP\alice) the sealed lab
// captures were recorded with: a lab value (testdata/stubs/SOURCES.md).
const labPassword = "Summer2026!"

// labDecrypted maps each fixture of stubs decrypted from a sealed lab
// capture to that capture, whose sealed fixture names the calls.
var labDecrypted = map[string]string{
	"rpclab_certipy_req_decrypted":        "rpclab_certipy_req_sealed",
	"rpclab_petitpotam_topotam_decrypted": "rpclab_petitpotam_topotam_sealed",
	"rpclab_certipy5_req_dcom_decrypted":  "rpclab_certipy5_req_dcom_sealed",
	"rpclab_coercer_even_decrypted":       "rpclab_coercer_even_sealed",
}

var recordDecrypted = flag.Bool("record-decrypted", false, "rewrite the decrypted lab fixtures from tshark's decryption of the sealed lab captures")

// TestDecryptedLabStubs checks that the decrypted fixtures hold exactly
// what tshark decrypts from the real captures with the lab password (so
// they rest on neither our encoder nor our decryption); -record-decrypted
// writes them.
func TestDecryptedLabStubs(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	for dec, sealed := range labDecrypted {
		t.Run(dec, func(t *testing.T) {
			stubs, frames, err := tsharkdec.Stubs(tshark, filepath.Join("testdata", "captures", sealed+".pcap"), labPassword, tsharkdec.SealedRequests)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "stubs", dec+".jsonl")
			if *recordDecrypted {
				writeDecrypted(t, path, loadStubs(t, filepath.Join("testdata", "stubs", sealed+".jsonl")), stubs)
			}
			calls := loadStubs(t, path)
			if len(calls) != len(frames) {
				t.Fatalf("%d calls, tshark decrypted %d requests", len(calls), len(frames))
			}
			for _, c := range calls {
				if !c.Decrypted || c.Sealed || c.Req != hex.EncodeToString(stubs[c.Frame]) {
					t.Errorf("frame %d: the fixture is not tshark's decryption (%d bytes)", c.Frame, len(stubs[c.Frame]))
				}
			}
		})
	}
}

// writeDecrypted writes the sealed fixture's calls with tshark's
// plaintext requests (the replies are faults, or the stand-in's own
// bytes: only the tools' requests are evidence).
func writeDecrypted(t *testing.T, path string, sealed []stubCall, stubs map[int][]byte) {
	t.Helper()
	type line struct {
		Frame     int    `json:"frame"`
		Conn      string `json:"conn"`
		Iface     string `json:"iface"`
		Ver       uint16 `json:"ver"`
		Opnum     uint16 `json:"opnum"`
		Pipe      string `json:"pipe,omitempty"`
		Object    string `json:"object,omitempty"`
		Decrypted bool   `json:"decrypted"`
		Req       string `json:"req"`
	}
	var buf bytes.Buffer
	for _, c := range sealed {
		s, ok := stubs[c.Frame]
		if !c.Sealed || !ok {
			continue
		}
		b, _ := json.Marshal(line{c.Frame, c.Conn, c.Iface, c.Ver, c.Opnum, c.Pipe, c.Object, true, hex.EncodeToString(s)})
		buf.Write(append(b, '\n'))
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDecryptedLabValues decodes the real tools' decrypted requests and
// expects what their command lines asked for (SOURCES.md): Certipy's
// -ca CORP-DC01-CA -template ESC1User -upn administrator@corp.local, then
// -template User (4.8.2 over ICPR; 5.1.0 over DCOM with -template Machine
// -dns dc01.corp.local the second time); topotam's PetitPotam pointed at the listener 10.0.0.66
// (the share and file are the tool's own).
func TestDecryptedLabValues(t *testing.T) {
	for _, c := range []struct {
		fixture string
		want    []map[string]string
	}{
		{"rpclab_certipy_req_decrypted", []map[string]string{
			{"op": "CertServerRequest", "target": "CORP-DC01-CA: ESC1User", "command": "SAN upn:administrator@corp.local",
				"ca": "CORP-DC01-CA", "template": "ESC1User", "subject alternative name": "upn:administrator@corp.local", "subject": "CN=Alice"},
			{"op": "CertServerRequest", "target": "CORP-DC01-CA: User", "command": "",
				"ca": "CORP-DC01-CA", "template": "User", "subject alternative name": "", "subject": "CN=Alice"},
		}},
		// Certipy 5 req -dcom: activation of its CLSID_ICertRequest
		// (d99e6e74-...), then ICertRequestD::Request with -ca
		// CORP-DC01-CA -template ESC1User -upn administrator@corp.local;
		// again with -template Machine -dns dc01.corp.local. The CSR's
		// subject is the tool's CN from -u alice.
		{"rpclab_certipy5_req_dcom_decrypted", []map[string]string{
			{"op": "RemoteCreateInstance", "class": "CertSrv Request (CCertRequestD) {d99e6e74-fc88-11d0-b498-00a0c90312f3}"},
			{"op": "Request", "target": "CORP-DC01-CA: ESC1User", "command": "SAN upn:administrator@corp.local",
				"ca": "CORP-DC01-CA", "template": "ESC1User", "subject alternative name": "upn:administrator@corp.local", "subject": "CN=Alice"},
			{"op": "RemoteCreateInstance", "class": "CertSrv Request (CCertRequestD) {d99e6e74-fc88-11d0-b498-00a0c90312f3}"},
			{"op": "Request", "target": "CORP-DC01-CA: Machine", "command": "SAN dns:dc01.corp.local",
				"ca": "CORP-DC01-CA", "template": "Machine", "subject alternative name": "dns:dc01.corp.local", "subject": "CN=Alice"},
		}},
		// Coercer coerce -l 10.0.0.66 --filter-protocol-name MS-EVEN:
		// ElfrOpenBELW on the NT path \??\UNC\<listener>\<random 8>\aa.
		{"rpclab_coercer_even_decrypted", []map[string]string{
			{"op": "OpenBackupEventLogW", "target": `\??\UNC\10.0.0.66\U01Pt0ZW\aa`, "technique": TechCoerce,
				"backup file": `\??\UNC\10.0.0.66\U01Pt0ZW\aa`, "coerced to": "10.0.0.66"},
		}},
		{"rpclab_petitpotam_topotam_decrypted", []map[string]string{
			{"op": "EfsRpcOpenFileRaw", "target": `\\10.0.0.66\test\Settings.ini`},
			{"op": "EfsRpcEncryptFileSrv", "target": `\\10.0.0.66\test\Settings.ini`},
			{"op": "EfsRpcOpenFileRaw", "target": `\\10.0.0.66\test\Settings.ini`},
			{"op": "EfsRpcEncryptFileSrv", "target": `\\10.0.0.66\test\Settings.ini`},
		}},
	} {
		t.Run(c.fixture, func(t *testing.T) {
			calls := loadStubs(t, filepath.Join("testdata", "stubs", c.fixture+".jsonl"))
			if len(calls) != len(c.want) {
				t.Fatalf("%d calls, want %d", len(calls), len(c.want))
			}
			shared := NewShared()
			s := &Session{Shared: shared}
			for i, w := range c.want {
				call, _ := calls[i].call(t, shared)
				d := s.Decode(call)
				got := map[string]string{"op": d.Operation, "target": d.Target, "command": d.Command, "technique": d.Technique}
				for _, f := range d.Fields {
					got[f.Name] = f.Value
				}
				for k, v := range w {
					if got[k] != v && !(k == "subject alternative name" && v != "" && strings.Contains(got[k], v)) {
						t.Errorf("call %d (frame %d): %s = %q, want %q", i, calls[i].Frame, k, got[k], v)
					}
				}
				if d.Technique == "" && d.Operation != "RemoteCreateInstance" {
					t.Errorf("call %d: no technique", i)
				}
				if testing.Verbose() {
					t.Logf("call %d: %+v", i, d)
				}
			}
		})
	}
}
