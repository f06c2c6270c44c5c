package rpcops

import (
	"bufio"
	"bytes"
	"errors"
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
}

// TestOracleTshark decodes the capture fixtures and checks that every
// argument string tshark decodes for the same call (request and response)
// appears in what rpcops reports for it.
func TestOracleTshark(t *testing.T) {
	tshark := testenv.Tool(t, "tshark")
	files, err := filepath.Glob("testdata/stubs/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatal("no fixtures")
	}
	dirs := []string{"otrf", "pcap-attack", "zeek"}
	checked := 0
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".jsonl")
		var capPath string
		for _, d := range dirs {
			for _, ext := range []string{".cap", ".pcap", ".pcapng"} {
				if p := sharedCapture(t, d, base+ext); p != "" {
					capPath = p
				}
			}
		}
		if capPath == "" {
			testenv.Missing(t, "capture %s not in the shared directory", base)
		}
		t.Run(base, func(t *testing.T) {
			oracle := tsharkValues(t, tshark, capPath)
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
		})
	}
	if checked == 0 {
		t.Fatal("tshark decoded no argument of the fixtures")
	}
	t.Logf("%d values compared with tshark", checked)
}

func sharedCapture(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(testenv.SharedDir(t), "pcaps", "remote-ops", dir, name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// tsharkCalls maps a request frame to the values tshark decoded in the
// request and response of the same call.
type tsharkCalls struct {
	frameKey map[int]string
	values   map[string][]string
}

func (o tsharkCalls) call(frame int) []string { return o.values[o.frameKey[frame]] }

func tsharkValues(t *testing.T, tshark, capPath string) tsharkCalls {
	t.Helper()
	args := []string{"-r", capPath, "-n", "-Y", "dcerpc.pkt_type == 0 || dcerpc.pkt_type == 2", "-T", "fields",
		"-E", "aggregator=|", "-e", "frame.number", "-e", "tcp.stream", "-e", "dcerpc.cn_call_id", "-e", "dcerpc.pkt_type"}
	for _, f := range oracleFields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command(tshark, args...).Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 2) {
		t.Fatalf("tshark: %v", err)
	}
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
