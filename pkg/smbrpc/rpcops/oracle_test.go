package rpcops

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// oracleFields are the argument fields Wireshark decodes for the
// interfaces whose calls are clear text in the shared captures.
var oracleFields = []string{
	"svcctl.servicename", "svcctl.machinename", "svcctl.database", "svcctl.displayname", "svcctl.binarypathname",
	"lsarpc.lsa.string", "lsarpc.lsa_OpenPolicy2.system_name", "lsarpc.lsa_GetUserName.system_name",
	"samr.samr_LookupDomain.domain_name", "samr.lsa_Strings.names", "samr.samr_SamEntry.name",
	"srvsvc.srvsvc_NetShareInfo0.name", "srvsvc.srvsvc_NetShareInfo1.name", "srvsvc.srvsvc_NetShareInfo2.name",
	"srvsvc.srvsvc_NetSessInfo10.client", "srvsvc.srvsvc_NetSessInfo10.user", "srvsvc.srvsvc_NetSrvInfo101.server_name",
	"wkssvc.wkssvc_NetWkstaInfo100.domain_name", "wkssvc.wkssvc_NetWkstaInfo100.server_name",
	"eventlog.eventlog_OpenEventLogW.Module",
	// winreg: every winreg call of the shared captures is sealed, so these
	// only bite on a capture with clear-text registry calls.
	"winreg.winreg_String.name", "winreg.winreg_OpenKey.keyname",
	"netlogon.computer_name", "netlogon.acct_name",
	"spoolss.servername", "spoolss.printername",
}

// liveFields are compared only where tshark runs on the capture itself
// (the shared set and the lab captures under testdata/captures): the
// recorded outputs keep oracleFields. tshark 4.0 decodes MS-EFSR only on
// the lsarpc UUID (c681d488-…), not on \pipe\efsrpc's df1941c5-….
var liveFields = append(append([]string(nil), oracleFields...),
	"efs.EfsRpcOpenFileRaw.FileName", "efs.EfsRpcEncryptFileSrv.Filename", "efs.EfsRpcDecryptFileSrv.FileName",
	"efs.EfsRpcQueryUsersOnFile.FileName", "efs.EfsRpcQueryRecoveryAgents.FileName",
	"efs.EfsRpcRemoveUsersFromFile.FileName", "efs.EfsRpcAddUsersToFile.FileName",
	"eventlog.eventlog_OpenBackupEventLogW.logname",
	// DCOM activation: the class, the interfaces asked, the server named
	// (InstantiationInfoData, SecurityInfoData).
	"isystemactivator.properties.instninfo.clsid", "isystemactivator.properties.instninfo.iid",
	"isystemactivator.properties.si.ci.name")

// labClear names the lab captures (testdata/captures) whose calls tshark
// decodes in clear: the others are sealed or of interfaces tshark 4.0 does
// not decode (ICPR).
var labClear = map[string]bool{"rpclab_petitpotam_ly4k": true, "rpclab_petitpotam_topotam_decrypted": true,
	"rpclab_coercer_even_decrypted": true}

// recordTshark names a directory holding the captures of the fixtures cut
// from outside the shared set (SOURCES.md): the test then runs tshark on
// them and records its output beside the fixture, so the check needs
// neither the capture nor a network to run again.
var recordTshark = flag.String("record-tshark", "", "directory of the outside captures: record tshark's output for their fixtures")

// TestOracleTshark decodes the capture fixtures and checks that every
// argument string tshark decodes for the same call (request and response)
// appears in what rpcops reports for it.
func TestOracleTshark(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	files, err := filepath.Glob("testdata/stubs/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatal("no fixtures")
	}
	checked := 0
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".jsonl")
		capPath := sharedCapture(t, base)
		var opts []string
		if src, ok := labDecrypted[base]; ok {
			// Stubs decrypted from a sealed lab capture: tshark decodes
			// them given the lab password.
			capPath = filepath.Join("testdata", "captures", src+".pcap")
			opts = []string{"-o", "ntlmssp.nt_password:" + labPassword}
		}
		recorded := strings.TrimSuffix(f, ".jsonl") + ".tshark"
		if *recordTshark != "" && capPath == "" {
			if p := findCapture(t, *recordTshark, base); p != "" {
				writeRecorded(t, recorded, runTshark(t, tshark, p, oracleFields))
			}
		}
		var out []byte
		switch {
		case capPath != "":
			out = runTshark(t, tshark, capPath, liveFields, opts...)
		default:
			out = readRecorded(t, recorded)
			if out == nil {
				testenv.Missing(t, "capture %s not in the shared directory and no recorded tshark output %s", base, recorded)
			}
		}
		t.Run(base, func(t *testing.T) {
			oracle := parseTshark(out)
			before := checked
			sessions := map[string]*Session{}
			shared := NewShared()
			for _, sc := range loadStubs(t, f) {
				if sc.Sealed {
					continue
				}
				c, _ := sc.call(t, shared)
				s := sessions[sc.Conn]
				if s == nil {
					s = &Session{Shared: shared}
					sessions[sc.Conn] = s
				}
				d := s.Decode(c)
				vals := oracle.call(sc.Frame)
				if len(vals) == 0 {
					continue
				}
				var sb strings.Builder
				sb.WriteString(d.Target + "\x00" + d.Command + "\x00")
				for _, fl := range d.Fields {
					sb.WriteString(fl.Value + "\x00")
				}
				ours := sb.String()
				for _, v := range vals {
					checked++
					if !strings.Contains(ours, v) {
						t.Errorf("frame %d %s %s: tshark shows %q, rpcops does not (%q)", sc.Frame, d.Interface, d.Operation, v, strings.ReplaceAll(ours, "\x00", " | "))
					}
				}
			}
			// The clear-text lab captures were made for this check: tshark
			// must have decoded something of theirs.
			if labClear[base] && checked == before {
				t.Errorf("tshark decoded no argument of %s", base)
			}
			t.Logf("%d values compared", checked-before)
		})
	}
	if checked == 0 {
		t.Fatal("tshark decoded no argument of the fixtures")
	}
	t.Logf("%d values compared with tshark", checked)
}

// sharedCapture finds a fixture's capture: the project's own lab
// captures under testdata/captures, then the shared set, by name under
// pcaps/ or, for suricata_CASE, the input.pcap of that suricata-verify
// case. It returns "" for the fixtures cut from outside captures.
func sharedCapture(t *testing.T, base string) string {
	t.Helper()
	if p := filepath.Join("testdata", "captures", base+".pcap"); fileExists(p) {
		return p
	}
	pcaps := filepath.Join(testenv.SharedDir(t), "pcaps")
	if c, ok := strings.CutPrefix(base, "suricata_"); ok {
		p := filepath.Join(pcaps, "real-lab", "suricata-verify-dcerpc", c, "input.pcap")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	return findCapture(t, pcaps, base)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// tsharkCalls maps a request frame to the values tshark decoded in the
// request and response of the same call.
type tsharkCalls struct {
	frameKey map[int]string
	values   map[string][]string
}

func (o tsharkCalls) call(frame int) []string { return o.values[o.frameKey[frame]] }

func runTshark(t *testing.T, tshark, capPath string, fields []string, opts ...string) []byte {
	t.Helper()
	args := append(append([]string(nil), opts...), "-r", capPath, "-n", "-Y", "dcerpc.pkt_type == 0 || dcerpc.pkt_type == 2", "-T", "fields",
		"-E", "aggregator=|", "-e", "frame.number", "-e", "tcp.stream", "-e", "dcerpc.cn_call_id", "-e", "dcerpc.pkt_type")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(tshark, args...).Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 2) {
		t.Fatalf("tshark: %v", err)
	}
	return out
}

// recordedHeader starts a recorded tshark output: the fields it holds, so a
// change of oracleFields asks for a new recording instead of comparing
// against columns that moved.
func recordedHeader() string { return "# tshark fields: " + strings.Join(oracleFields, ",") + "\n" }

func writeRecorded(t *testing.T, path string, out []byte) {
	t.Helper()
	if err := os.WriteFile(path, append([]byte(recordedHeader()), out...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", path)
}

// readRecorded returns the recorded tshark output, nil when there is none.
func readRecorded(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	h := recordedHeader()
	if !bytes.HasPrefix(b, []byte(h)) {
		t.Fatalf("%s was recorded with other tshark fields: record it again (go test -run TestOracleTshark -record-tshark DIR, DIR holding the capture named in SOURCES.md)", path)
	}
	return b[len(h):]
}

// findCapture looks for the capture of a fixture anywhere under dir.
func findCapture(t *testing.T, dir, base string) string {
	t.Helper()
	var found string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.TrimSuffix(d.Name(), filepath.Ext(d.Name())) == base {
			found = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func parseTshark(out []byte) tsharkCalls {
	o := tsharkCalls{frameKey: map[int]string{}, values: map[string][]string{}}
	// Call ids repeat when a connection opens a pipe twice: a response
	// belongs to the latest request of its stream and call id.
	latest := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 4 {
			continue
		}
		frame, _ := strconv.Atoi(cols[0])
		// A frame may hold several PDUs: take the first call id.
		call := cols[1] + "/" + strings.Split(cols[2], "|")[0]
		key := latest[call]
		if strings.Split(cols[3], "|")[0] == "0" {
			key = cols[0]
			latest[call] = key
			o.frameKey[frame] = key
		}
		if key == "" {
			continue
		}
		for _, c := range cols[4:] {
			for _, v := range strings.Split(c, "|") {
				if v = strings.TrimSpace(v); v != "" && !seen(o.values[key], v) {
					o.values[key] = append(o.values[key], v)
				}
			}
		}
	}
	return o
}

func seen(l []string, v string) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}
