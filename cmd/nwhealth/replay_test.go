package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/replay"
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

// TestReplayAttacks: a named attack is told in both output modes (the
// table's Attacks section, an attack record), and --assets naming the
// puller a domain controller turns the DCSync into listed replication.
func TestReplayAttacks(t *testing.T) {
	f := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "DCSync_krbtgt_dcerpc_smb.pcapng")
	var tbl, js, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("table exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"Attacks:", "[CRITICAL] DCSync, exploited (T1003.006): 172.16.66.1, not a domain controller",
		"172.16.66.1 -> 172.16.66.36  drsuapi DRSGetNCChanges"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	if code := run([]string{"replay", "--pcap", f, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("jsonl exit %d: %s", code, errOut.String())
	}
	attacks := jsonltest.Check(t, js.Bytes())["attack"]
	if len(attacks) != 1 || attacks[0]["name"] != "DCSync" || attacks[0]["verdict"] != "exploited" || attacks[0]["src"] != "172.16.66.1" ||
		attacks[0]["dst"] != "172.16.66.36" || attacks[0]["operations"] != float64(1) {
		t.Errorf("attack records %v", attacks)
	}

	inv := filepath.Join(t.TempDir(), "assets.yaml")
	if err := os.WriteFile(inv, []byte("assets:\n  - host: 172.16.66.1\n    name: dc2\n    role: domain controller\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	js.Reset()
	if code := run([]string{"replay", "--pcap", f, "--format", "jsonl", "--assets", inv}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("--assets exit %d: %s", code, errOut.String())
	}
	recs := jsonltest.Check(t, js.Bytes())
	if len(recs["attack"]) != 0 {
		t.Errorf("replication between domain controllers flagged: %v", recs["attack"])
	}
	replicated := false
	for _, op := range recs["operation"] {
		if op["operation"] == "DRSGetNCChanges" {
			replicated = op["technique"] == "" && strings.Contains(fmt.Sprint(op["fields"]), "replication")
		}
	}
	if !replicated {
		t.Errorf("DRSGetNCChanges between domain controllers not listed as replication: %v", recs["operation"])
	}
}

// TestReplayUnframedIsEdge: connections on port 445 that never carry SMB
// (the generated captures' random payloads, joined without a handshake)
// are an edge of the input: counted as unframed bytes, exit 0.
func TestReplayUnframedIsEdge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gen.pcap")
	genCapture(t, p, pkthdr.LinkEthernet, 4000, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
	code, out, errOut := nwh(t, nil, "replay", "--pcap", p, "--format", "jsonl", "--stats")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var st map[string]any
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"type":"stats"`) {
			if err := json.Unmarshal([]byte(line), &st); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, _ := st["unframed_bytes"].(float64); n == 0 || st["dropped_bytes"] != float64(0) || st["conns_midstream"] == nil {
		t.Errorf("stats %v", st)
	}
	if !strings.Contains(errOut, " unframed_bytes=") {
		t.Errorf("stats line: %s", errOut)
	}
}

// TestReplayJoinedMidMessage cuts a real PsExec capture in the middle of
// the 145 KB PSEXESVC.exe write, as a capture, a --from selection or a
// --follow may begin: the bytes before the SMB connection's next message
// are unframed (an edge, exit 0), and every operation that began after the
// write is still found, at the same time, with the same name and target.
func TestReplayJoinedMidMessage(t *testing.T) {
	f := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng")
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	ops := func(out string) (all []map[string]any) {
		for _, line := range strings.Split(out, "\n") {
			var r map[string]any
			if json.Unmarshal([]byte(line), &r) == nil && r["type"] == "operation" {
				all = append(all, r)
			}
		}
		return all
	}
	code, full, errOut := nwh(t, nil, "replay", "--pcap", f, "--format", "jsonl", "--all")
	if code != exitOK {
		t.Fatalf("full capture: exit %d: %s", code, errOut)
	}
	var writeFrom, writeTo time.Time
	for _, op := range ops(full) {
		if op["operation"] == "write file" && strings.HasSuffix(op["target"].(string), `\PSEXESVC.exe`) {
			writeFrom, _ = time.Parse(time.RFC3339Nano, op["ts"].(string))
			writeTo, _ = time.Parse(time.RFC3339Nano, op["end"].(string))
		}
	}
	if writeFrom.IsZero() {
		t.Fatal("no PSEXESVC.exe write in the full replay")
	}
	// Cut at the middle of the write's segments to port 445 that do not
	// begin a message (a NetBIOS header and an SMB2 protocol id).
	pkts := readCapture(t, raw)
	var inside []int
	for i, p := range pkts {
		var h pkthdr.Packet
		if p.Timestamp.Before(writeFrom.Add(-time.Second)) || p.Timestamp.After(writeTo) || !pkthdr.Parse(p.LinkType, p.Data, &h) ||
			h.DstPort != 445 || h.PayloadN < 8 {
			continue
		}
		if b := p.Data[h.Payload:]; b[0] != 0 || string(b[4:8]) != "\xfeSMB" {
			inside = append(inside, i)
		}
	}
	if len(inside) < 10 {
		t.Fatalf("%d segments inside the write's messages", len(inside))
	}
	var buf bytes.Buffer
	w, err := pcapio.NewWriter(&buf, pkts[0].LinkType, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts[inside[len(inside)/2]:] {
		w.WritePacket(p.Timestamp, p.Data, p.OrigLen)
	}
	cutFile := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cutFile, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, part, errOut := nwh(t, nil, "replay", "--pcap", cutFile, "--format", "jsonl", "--all")
	if code != exitOK {
		t.Fatalf("capture joined mid-message: exit %d: %s", code, errOut)
	}
	if !strings.Contains(part, `"unframed_bytes":`) || !strings.Contains(part, `"dropped_bytes":0,`) {
		t.Errorf("the write's tail is not counted as unframed: %s", part[strings.LastIndex(part, `{"type":"stats"`):])
	}
	found := map[string]bool{}
	for _, op := range ops(part) {
		found[fmt.Sprint(op["ts"], " ", op["operation"], " ", op["target"])] = true
	}
	after := 0
	for _, op := range ops(full) {
		if ts, _ := time.Parse(time.RFC3339Nano, op["ts"].(string)); ts.After(writeTo) {
			after++
			if k := fmt.Sprint(op["ts"], " ", op["operation"], " ", op["target"]); !found[k] {
				t.Errorf("lost after the cut: %s", k)
			}
		}
	}
	if after < 10 {
		t.Fatalf("only %d operations after the write", after)
	}
}

// labCapture is one of the project's own captures of real attack tools
// (pkg/smbrpc/rpcops/testdata/stubs/SOURCES.md says how each was made).
func labCapture(name string) string {
	return filepath.Join("..", "..", "pkg", "smbrpc", "rpcops", "testdata", "captures", name)
}

// TestReplayPetitPotamLab: ly4k's PetitPotam, every EFSR method it has,
// over \pipe\efsrpc and \pipe\lsarpc, with the server's callback as
// CORP\DC01$: each call is named with its UNC path, and one finding tells
// the coercion and that it succeeded, in both output modes.
func TestReplayPetitPotamLab(t *testing.T) {
	f := labCapture("rpclab_petitpotam_ly4k.pcap")
	var tbl, js, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("table exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"EfsRpcOpenFileRaw", "EfsRpcDecryptFileSrv", "EfsRpcQueryUsersOnFile", "EfsRpcQueryRecoveryAgents",
		"EfsRpcRemoveUsersFromFile", "EfsRpcAddUsersToFile", "EfsRpcFileKeyInfo", "EfsRpcDuplicateEncryptionInfoFile",
		"EfsRpcAddUsersToFileEx", `\\10.0.0.66\share\file.txt`, `\\10.0.0.66@80\dav\file.txt`,
		"[HIGH] PetitPotam coercion (MS-EFSR), succeeded (CVE-2021-36942, T1187): 10.0.0.66 asked 10.0.0.2 to authenticate to 10.0.0.66 (11 calls); 10.0.0.2 then connected there as CORP\\DC01$",
	} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	if code := run([]string{"replay", "--pcap", f, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("jsonl exit %d: %s", code, errOut.String())
	}
	recs := jsonltest.Check(t, js.Bytes())
	efsr, webdav := 0, 0
	for _, op := range recs["operation"] {
		if op["interface"] != "efsrpc" {
			continue
		}
		efsr++
		if op["technique"] != "T1187" || op["user"] != "alice" || op["status"] != "0x00000035" {
			t.Errorf("EFSR operation %v", op)
		}
		if fs := fmt.Sprint(op["fields"]); strings.Contains(fs, "webdav") {
			webdav++
			if !strings.Contains(fs, "HTTP port 80") || !strings.Contains(fs, "value:10.0.0.66]") {
				t.Errorf("WebDAV coercion %v", op["fields"])
			}
		}
	}
	if efsr != 11 || webdav != 2 {
		t.Errorf("%d EFSR operations (want 11), %d over WebDAV (want 2)", efsr, webdav)
	}
	a := recs["attack"]
	if len(a) != 1 || a[0]["name"] != "PetitPotam coercion (MS-EFSR)" || a[0]["verdict"] != "succeeded" || a[0]["account"] != `CORP\DC01$` ||
		a[0]["operations"] != float64(11) || a[0]["cve"] != "CVE-2021-36942" {
		t.Fatalf("attack records %v", a)
	}
	rows, _ := a[0]["evidence_rows"].([]any)
	callbacks := 0
	for _, r := range rows {
		if r.(map[string]any)["src"] == "10.0.0.2" {
			callbacks++
		}
	}
	if callbacks != 1 {
		t.Errorf("%d callback rows in the evidence, want 1: %v", callbacks, rows)
	}
}

// TestReplaySealedLab: the sealed lab captures (topotam's PetitPotam,
// Certipy req) still name each call, its account and the refusal, and
// flag the arguments encrypted.
func TestReplaySealedLab(t *testing.T) {
	for _, c := range []struct {
		file, iface string
		ops         []string
		status      string
	}{
		{"rpclab_petitpotam_topotam_sealed.pcap", "efsrpc",
			[]string{"EfsRpcOpenFileRaw", "EfsRpcEncryptFileSrv", "EfsRpcOpenFileRaw", "EfsRpcEncryptFileSrv"}, "0x00000005"},
		{"rpclab_certipy_req_sealed.pcap", "ICertPassage", []string{"CertServerRequest", "CertServerRequest"}, "0x00000005"},
		// Certipy 5 over DCOM: the stand-in answered, so no status (success).
		{"rpclab_certipy5_req_dcom_sealed.pcap", "ICertRequestD", []string{"Request", "Request"}, ""},
	} {
		var js, errOut bytes.Buffer
		if code := run([]string{"replay", "--pcap", labCapture(c.file), "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
			t.Fatalf("%s: exit %d: %s", c.file, code, errOut.String())
		}
		var got []string
		for _, op := range jsonltest.Check(t, js.Bytes())["operation"] {
			if op["interface"] != c.iface {
				continue
			}
			got = append(got, fmt.Sprint(op["operation"]))
			status, _ := op["status"].(string)
			if op["encrypted"] != true || status != c.status || !strings.EqualFold(fmt.Sprint(op["user"]), "alice") {
				t.Errorf("%s: %v", c.file, op)
			}
		}
		if strings.Join(got, ",") != strings.Join(c.ops, ",") {
			t.Errorf("%s: operations %v, want %v", c.file, got, c.ops)
		}
	}
}

// TestReplayCoercerEventlog: Coercer's sealed MS-EVEN coercion, opened
// with the lab password, shows OpenBackupEventLogW coercing the DC to the
// listener its command line named (-l 10.0.0.66, SOURCES.md) and the
// CheeseOunce finding with the DC01$ callback, in both output modes;
// without the password the call is still named, its path not.
func TestReplayCoercerEventlog(t *testing.T) {
	f := labCapture("rpclab_coercer_even_sealed.pcap")
	good := labSecrets(t, "CORP\\alice password:Summer2026!\n", 0o600)
	var tbl, js, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", good}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("table exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"OpenBackupEventLogW", `\??\UNC\10.0.0.66\U01Pt0ZW\aa`,
		"[HIGH] CheeseOunce coercion (MS-EVEN), succeeded (T1187): 10.0.0.66 asked 10.0.0.2",
		"to authenticate to 10.0.0.66 (1 call); 10.0.0.2 then connected there as CORP\\DC01$",
	} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", good, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("jsonl exit %d: %s", code, errOut.String())
	}
	recs := jsonltest.Check(t, js.Bytes())
	n := 0
	for _, op := range recs["operation"] {
		if op["interface"] != "eventlog" {
			continue
		}
		n++
		fs := fmt.Sprint(op["fields"])
		if op["operation"] != "OpenBackupEventLogW" || op["technique"] != "T1187" || op["status"] != "0xc00000be" ||
			!strings.Contains(fs, "coerced to value:10.0.0.66]") {
			t.Errorf("MS-EVEN operation %v", op)
		}
	}
	if n != 1 {
		t.Errorf("%d MS-EVEN operations, want 1", n)
	}
	a := recs["attack"]
	if len(a) != 1 || a[0]["name"] != "CheeseOunce coercion (MS-EVEN)" || a[0]["verdict"] != "succeeded" || a[0]["account"] != `CORP\DC01$` ||
		a[0]["technique"] != "T1187" {
		t.Fatalf("attack records %v", a)
	}
	js.Reset()
	if code := run([]string{"replay", "--pcap", f, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("jsonl exit %d: %s", code, errOut.String())
	}
	recs = jsonltest.Check(t, js.Bytes())
	if len(recs["attack"]) != 0 {
		t.Errorf("a finding without the password: %v", recs["attack"])
	}
	for _, op := range recs["operation"] {
		if op["interface"] == "eventlog" && (op["operation"] != "OpenBackupEventLogW" || op["encrypted"] != true) {
			t.Errorf("sealed MS-EVEN operation %v", op)
		}
	}
}

// TestReplayNTLMSecretsDCOM: Certipy 5's sealed MS-WCCE requests over
// DCOM, opened with the lab password, show the CA, template and SAN its
// command lines asked for (SOURCES.md), and the UPN one is the ESC1 attack.
func TestReplayNTLMSecretsDCOM(t *testing.T) {
	f := labCapture("rpclab_certipy5_req_dcom_sealed.pcap")
	good := labSecrets(t, "CORP\\alice password:Summer2026!\n", 0o600)
	var tbl, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", good, "--stats"}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{
		"CertSrv Request (CCertRequestD)",
		"CORP-DC01-CA: ESC1User: SAN upn:administrator@corp.local",
		"CORP-DC01-CA: Machine: SAN dns:dc01.corp.local",
		"Certificate for another account (AD CS ESC1/ESC6)",
	} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	if !strings.Contains(errOut.String(), "decrypted=4 undecryptable=0") {
		t.Errorf("stderr: %s", errOut.String())
	}
}

// labSecrets writes a secrets file with the lab account's password (a lab
// value, SOURCES.md) and returns its path.
func labSecrets(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplayNTLMSecrets: with the lab password in --ntlm-secrets, the
// sealed Certipy requests show their template and SAN in both output
// modes, marked decrypted; the password is printed nowhere; a wrong one
// marks them undecryptable; a malformed file is a usage error that does
// not repeat its secret; report carries the mark into its HTML.
func TestReplayNTLMSecrets(t *testing.T) {
	const pw = "Summer2026!"
	f := labCapture("rpclab_certipy_req_sealed.pcap")
	good := labSecrets(t, "# lab\nCORP\\alice password:"+pw+"\n", 0o600)

	var tbl, js, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", good, "--stats"}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("table exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"CORP-DC01-CA: ESC1User: SAN upn:administrator@corp.local", "CORP-DC01-CA: User", " ED", "D decrypted with --ntlm-secrets"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	if !strings.Contains(errOut.String(), "decrypted=2 undecryptable=0") || strings.Contains(errOut.String(), "warning") {
		t.Errorf("stderr: %s", errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", good, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("jsonl exit %d: %s", code, errOut.String())
	}
	recs := jsonltest.Check(t, js.Bytes())
	var templates []string
	for _, op := range recs["operation"] {
		if op["interface"] != "ICertPassage" {
			continue
		}
		fs := fmt.Sprint(op["fields"])
		if op["sealed"] != "decrypted" || op["encrypted"] != true || !strings.Contains(fs, "CN=Alice") {
			t.Errorf("operation %v", op)
		}
		for _, fl := range op["fields"].([]any) {
			if m := fl.(map[string]any); m["name"] == "template" {
				templates = append(templates, fmt.Sprint(m["value"]))
			}
		}
	}
	if strings.Join(templates, ",") != "ESC1User,User" {
		t.Errorf("templates %v", templates)
	}
	if st := recs["stats"]; len(st) != 1 || st[0]["decrypted_calls"] != float64(2) {
		t.Errorf("stats %v", st)
	}
	for _, out := range []string{tbl.String(), js.String(), errOut.String()} {
		if strings.Contains(out, pw) {
			t.Fatal("the password was printed")
		}
	}

	// A wrong password: undecryptable, nothing decoded, a warning for the
	// loose file mode.
	wrong := labSecrets(t, "CORP\\alice password:Winter2026!\n", 0o644)
	js.Reset()
	errOut.Reset()
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", wrong, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("wrong: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "readable by group or others") {
		t.Errorf("no mode warning: %s", errOut.String())
	}
	for _, op := range jsonltest.Check(t, js.Bytes())["operation"] {
		if op["interface"] == "ICertPassage" && (op["sealed"] != "undecryptable" || strings.Contains(fmt.Sprint(op["fields"]), "ESC1User") ||
			!strings.Contains(fmt.Sprint(op["fields"]), "wrong password")) {
			t.Errorf("wrong password: %v", op)
		}
	}

	// Malformed: exit 2, the line named, the secret not shown.
	bad := labSecrets(t, "alice\nbob nt:"+pw+"\n", 0o600)
	errOut.Reset()
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", bad}, nil, io.Discard, &errOut); code != exitUsage ||
		!strings.Contains(errOut.String(), "line 1") || strings.Contains(errOut.String(), pw) {
		t.Errorf("malformed: exit %d: %s", code, errOut.String())
	}

	// report runs replay's pipeline: the HTML shows the mark.
	var html bytes.Buffer
	errOut.Reset()
	if code := run([]string{"report", "--pcap", f, "--ntlm-secrets", good, "--format", "html"}, nil, &html, &errOut); code != exitOK && code != exitFindings {
		t.Fatalf("report exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(html.String(), "(sealed: decrypted)") || !strings.Contains(html.String(), "ESC1User") || strings.Contains(html.String(), pw) {
		t.Errorf("report HTML lacks the decrypted operation")
	}
}

// TestReplaySMB3Secrets: an SMB3-encrypted SAMR enumeration (impacket
// net.py over SMB 3.0, SAMR-Enum-Lab) opened with the lab account's
// published password: the table shows the SAMR calls flagged D and the
// stats line the messages opened; JSON Lines (schema-checked) marks them
// decrypted: smb3; the HTML report says so; the password and nothing
// derived from it appear anywhere.
func TestReplaySMB3Secrets(t *testing.T) {
	f := testenv.SharedFile(t, "pcaps", "real-lab", "samr-enum-lab", "python.exe_impacket_net.py_user_admin.pcapng")
	good := labSecrets(t, "enum password:LabAdm1!\n", 0o600)
	var tbl, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", good, "--stats"}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"LookupNamesInDomain", `DOMAIN-Z\Administrator`, "GetGroupsForUser"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	if !strings.Contains(errOut.String(), "smb3_decrypted=138 smb3_undecryptable=0") {
		t.Errorf("stderr: %s", errOut.String())
	}
	var js bytes.Buffer
	if code := run([]string{"replay", "--pcap", f, "--ntlm-secrets", good, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	samr := 0
	for _, op := range jsonltest.Check(t, js.Bytes())["operation"] {
		if op["interface"] == "samr" {
			samr++
			if op["decrypted"] != "smb3" {
				t.Errorf("not marked decrypted: %v", op)
			}
		}
	}
	if samr == 0 {
		t.Error("no samr operation")
	}
	var html bytes.Buffer
	if code := run([]string{"report", "--pcap", f, "--ntlm-secrets", good, "--format", "html"}, nil, &html, &errOut); code != exitOK && code != exitFindings {
		t.Fatalf("report exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(html.String(), "(decrypted: smb3)") {
		t.Error("HTML report does not say which operations were decrypted")
	}
	for _, out := range []string{tbl.String(), errOut.String(), js.String(), html.String()} {
		if strings.Contains(out, "LabAdm1!") {
			t.Fatal("the password was printed")
		}
	}
	// Without the secret: one smb3-encrypted operation, no SAMR.
	tbl.Reset()
	if code := run([]string{"replay", "--pcap", f, "--all"}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if strings.Contains(tbl.String(), "LookupNamesInDomain") || !strings.Contains(tbl.String(), "encrypted session traffic") {
		t.Errorf("without secrets:\n%s", tbl.String())
	}
}

// TestReplayRawPipes: winexe's pipes (SMB1) in both output modes: its
// control pipe's command and its console, as execution.
func TestReplayRawPipes(t *testing.T) {
	f := testenv.SharedFile(t, "pcaps", "real-lab", "elcabezzonn", "winexesvc_.pcap")
	var tbl, js, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("table exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"| ahexec: cmd.exe ", "ahexec_stdin064C0001: whoami", "pipe i/o ahexec",
		`whoami \x7f\x7f\x7f\x7f\x7f\x7f dir`} { // the console's DEL keystrokes, escaped
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	if i := strings.IndexFunc(tbl.String(), func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }); i >= 0 {
		t.Errorf("control character %q reached the table at %d", tbl.String()[i], i)
	}
	if code := run([]string{"replay", "--pcap", f, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("jsonl exit %d: %s", code, errOut.String())
	}
	n := 0
	for _, op := range jsonltest.Check(t, js.Bytes())["operation"] {
		if op["kind"] != "pipe" {
			continue
		}
		n++
		if op["technique"] != "T1569.002" || op["transport"] != "smb1" || !strings.Contains(fmt.Sprint(op["fields"]), "map[name:tool value:winexe]") {
			t.Errorf("pipe %v", op)
		}
		if op["pipe"] == "ahexec" && op["command"] != "cmd.exe" {
			t.Errorf("control pipe %v", op)
		}
	}
	if n != 4 {
		t.Errorf("%d pipe operations, want ahexec and its stdin, stdout and stderr", n)
	}
}

// TestTableRowPipeChannel: a channel's row says how it was used.
func TestTableRowPipeChannel(t *testing.T) {
	op := replay.Operation{Kind: "pipe", Interface: "pipe", Operation: "pipe channel", Target: "msagent_4f",
		Technique: "T1071.002", Phase: "command-and-control", Fields: []replay.Field{
			{Name: "written", Value: "713 bytes"}, {Name: "read", Value: "733 bytes"},
			{Name: "messages", Value: "12 written, 12 read"},
			{Name: "schedule", Value: "every 5s ±10% (regularity 0.80 over 6 check-ins)"},
			{Name: "framework", Value: "Cobalt Strike SMB beacon default (msagent_##)"}}}
	row := tableRow(&op)
	// Clipped to the column's 90 characters.
	if want := "msagent_4f (12 written, 12 read; every 5s ±10%; Cobalt Strike SMB beacon default (msagent…"; row[6] != want {
		t.Errorf("row %q, want %q", row[6], want)
	}
}
