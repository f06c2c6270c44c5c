package demogen

import (
	"bufio"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// tshark is the second oracle: it must dissect the sample without a
// malformed packet or a bad checksum, and read from the lateral movement
// the same service, account and share names as the labels.

// tsharkFields runs tshark with a display filter and returns one row of
// the given fields per matching frame.
func tsharkFields(t *testing.T, path, filter string, fields ...string) [][]string {
	t.Helper()
	args := []string{"-n", "-r", path,
		"-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-Y", filter, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=|"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(testenv.Tool(t, "tshark"), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", filter, err, stderr.String())
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows
}

// TestTsharkDissectsTheSample: no malformed packet, no bad checksum, and
// no expert warning but "Long frame" where Wireshark's dissectors stop
// short of the spec: its drsuapi dissector predates DRS_EXTENSIONS_INT
// and the V8 request, and its samr LookupRids stops before the RID array
// (it does the same on Windows' own traffic).
func TestTsharkDissectsTheSample(t *testing.T) {
	testenv.Tool(t, "tshark")
	path, _ := defaultSample(t)
	rows := tsharkFields(t, path, "_ws.malformed || ip.checksum.status == 0 || tcp.checksum.status == 0 || udp.checksum.status == 0 || _ws.expert.severity >= 6291456",
		"frame.number", "frame.protocols", "_ws.expert.message", "drsuapi.opnum", "samr.opnum")
	for _, r := range rows {
		msg, drs, samr := r[2], r[3], r[4]
		if msg != "Long frame" || drs == "" && samr != "18" {
			t.Errorf("frame %s (%s): %s", r[0], r[1], msg)
		}
	}
}

// attackPcap extracts the patient zero's conversations with inside admin
// ports (445, 135 and the replication port) into a small capture.
func attackPcap(t *testing.T, path string, l *Labels) string {
	t.Helper()
	zero := netip.MustParseAddr(l.LateralPairs[0].Src)
	r, err := pcapio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := filepath.Join(t.TempDir(), "attack.pcap")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriter(f)
	w, err := pcapio.NewWriter(bw, pkthdr.LinkEthernet, 65535, false)
	if err != nil {
		t.Fatal(err)
	}
	var h pkthdr.Packet
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !pkthdr.Parse(p.LinkType, p.Data, &h) || h.Proto != 6 || (h.Src != zero && h.Dst != zero) {
			continue
		}
		port := min(h.SrcPort, h.DstPort)
		if port == 445 || port == 135 || port == drsPort {
			if err := w.WritePacket(p.Timestamp, p.Data, p.OrigLen); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTsharkReadsTheLateralMovement(t *testing.T) {
	testenv.Tool(t, "tshark")
	path, l := defaultSample(t)
	ap := attackPcap(t, path, l)
	zero := l.LateralPairs[0].Src
	type key struct{ dst, a, b string }
	var want []key
	for _, o := range l.Operations {
		if o.Operation == "CreateServiceW" {
			want = append(want, key{o.Dst, o.Target, o.Command})
		}
	}
	var got []key
	for _, r := range tsharkFields(t, ap, "svcctl.opnum == 12 && dcerpc.pkt_type == 0", "ip.dst", "svcctl.servicename", "svcctl.binarypathname") {
		got = append(got, key{r[0], r[1], r[2]})
	}
	if !slices.Equal(got, want) {
		t.Errorf("CreateServiceW: tshark %q, labels %q", got, want)
	}

	// Every session of the stolen account authenticates as it; the patient
	// zero's own sessions as the machine or its user.
	stolen := map[string]int{}
	for _, r := range tsharkFields(t, ap, "ntlmssp.messagetype == 3", "ip.src", "ip.dst", "ntlmssp.auth.domain", "ntlmssp.auth.username", "ntlmssp.auth.hostname") {
		if r[0] != zero || r[2] != nbDomain || r[4] != "WS-017" {
			t.Errorf("AUTHENTICATE %q", r)
		}
		if r[3] == "svc_backup" {
			stolen[r[1]]++
		}
	}
	sessions := map[string]int{}
	for _, o := range l.Operations {
		if o.Kind == "tree" && strings.HasSuffix(o.Target, `\IPC$`) || o.Operation == "DRSBind" || o.Step == "psexec" && o.Operation == "tree connect" && strings.HasSuffix(o.Target, `\ADMIN$`) {
			sessions[o.Dst]++
		}
	}
	// psexec sessions connect ADMIN$ and IPC$ in one session.
	for dst, n := range sessions {
		for _, o := range l.Operations {
			if o.Dst == dst && o.Step == "psexec" && strings.HasSuffix(o.Target, `\ADMIN$`) {
				n--
			}
		}
		sessions[dst] = n
	}
	if len(stolen) != len(sessions) {
		t.Errorf("svc_backup sessions per host: tshark %v, labels %v", stolen, sessions)
	}
	for dst, n := range sessions {
		if stolen[dst] != n {
			t.Errorf("%s: %d svc_backup sessions in tshark, %d in labels", dst, stolen[dst], n)
		}
	}

	// The trees the labels name are the trees tshark sees connected.
	trees := map[string]bool{}
	for _, r := range tsharkFields(t, ap, "smb2.cmd == 3 && smb2.flags.response == 0", "smb2.tree") {
		trees[r[0]] = true
	}
	for _, o := range l.Operations {
		if o.Kind == "tree" && !trees[o.Target] {
			t.Errorf("tree %s not seen by tshark (it saw %v)", o.Target, trees)
		}
	}

	// Share enumeration and replication targets.
	var servers, ncs []string
	for _, r := range tsharkFields(t, ap, "srvsvc.opnum == 15 && dcerpc.pkt_type == 0", "srvsvc.srvsvc_NetShareEnumAll.server_unc") {
		servers = append(servers, r[0])
	}
	for _, r := range tsharkFields(t, ap, "drsuapi.opnum == 3 && dcerpc.pkt_type == 0", "drsuapi.DsReplicaSyncRequest1Info.nc_dn") {
		ncs = append(ncs, r[0])
	}
	var wantServers, wantNCs []string
	for _, o := range l.Operations {
		switch o.Operation {
		case "NetrShareEnum":
			wantServers = append(wantServers, o.Target)
		case "DRSGetNCChanges":
			wantNCs = append(wantNCs, o.Target)
		}
	}
	if !slices.Equal(servers, wantServers) || !slices.Equal(ncs, wantNCs) {
		t.Errorf("tshark: share enumeration of %q, replication of %q; labels %q and %q", servers, ncs, wantServers, wantNCs)
	}
}
