package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

const connHeader = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n" +
	"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\n" +
	"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\n"

// smallConnLog writes a deterministic conn.log: 12 hosts polling an agent
// and browsing, host .5 beaconing to 203.0.113.9:8080 every ~5 minutes and
// fanning out to six peers on 445, over 12 hours.
func smallConnLog(t *testing.T, bad bool) string {
	t.Helper()
	rng := rand.New(rand.NewSource(42))
	var b strings.Builder
	b.WriteString(connHeader)
	type row struct {
		ts       float64
		src, dst string
		port     int
		out, in  int
		state    string
		respPkts int
	}
	var rows []row
	start := float64(time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC).Unix())
	span := 12 * 3600.0
	for h := 1; h <= 12; h++ {
		src := fmt.Sprintf("10.1.0.%d", h)
		for x := rng.Float64() * 300; x < span; x += 300 {
			rows = append(rows, row{ts: start + x, src: src, dst: "10.1.9.10", port: 8443, out: 600, in: 200, state: "SF", respPkts: 3})
		}
		for x := 0.0; x < span; x += rng.ExpFloat64() * 3600 / 8 {
			rows = append(rows, row{ts: start + x, src: src, dst: fmt.Sprintf("198.18.%d.%d", rng.Intn(8), 1+rng.Intn(3)), port: 443,
				out: 300 + rng.Intn(900), in: 1000 + rng.Intn(90000), state: "SF", respPkts: 20})
		}
	}
	for x := 1800.0; x < span; x += 300 * (0.8 + 0.4*rng.Float64()) {
		rows = append(rows, row{ts: start + x, src: "10.1.0.5", dst: "203.0.113.9", port: 8080, out: 420 + rng.Intn(30), in: 250, state: "SF", respPkts: 3})
	}
	for i := range 6 {
		rows = append(rows, row{ts: start + 7*3600 + float64(i)*40, src: "10.1.0.5", dst: fmt.Sprintf("10.1.0.%d", 20+i), port: 445, out: 3000, in: 2000, state: "SF", respPkts: 6})
	}
	for i, r := range rows {
		fmt.Fprintf(&b, "%.6f\tC%06d\t%s\t%d\t%s\t%d\ttcp\t-\t0.200000\t%d\t%d\t%s\t-\t-\t0\tShADadFf\t5\t%d\t%d\t%d\t-\n",
			r.ts, i, r.src, 40000+i%20000, r.dst, r.port, r.out, r.in, r.state, r.out+200, r.respPkts, r.in+160)
		if bad && i == 10 {
			b.WriteString("garbage\trow\n")
			b.WriteString("1772431200.0\tCx\t10.1.0.1\t1\tnot-an-ip\t2\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t40\t0\t0\t-\n")
		}
	}
	p := filepath.Join(t.TempDir(), "conn.log")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runCmd is nwh with the results in another order.
func runCmd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	code, stdout, stderr = nwh(t, nil, args...)
	return stdout, stderr, code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", p, got)
	}
}

func TestHuntGolden(t *testing.T) {
	log := smallConnLog(t, false)
	assetsFile := filepath.Join(t.TempDir(), "assets.yaml")
	os.WriteFile(assetsFile, []byte("assets:\n  - cidr: 10.1.0.0/24\n    name: office\n    criticality: medium\n    owner: it\n    role: workstation\n  - host: 10.1.0.5\n    name: finance-pc\n    criticality: high\n"), 0o644)
	for _, format := range []string{"table", "jsonl"} {
		t.Run(format, func(t *testing.T) {
			out, errOut, code := runCmd(t, "hunt", "--zeek", log, "--internal", "10.1.0.0/16", "--assets", assetsFile, "--format", format, "--top", "8")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden(t, "hunt."+format+".golden", out)
		})
	}
	// Both formats say the same: the beacon channel first.
	out, _, _ := runCmd(t, "hunt", "--zeek", log, "--internal", "10.1.0.0/16", "--format", "jsonl")
	sc := bufio.NewScanner(strings.NewReader(out))
	var first map[string]any
	types := map[string]int{}
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad json line %q: %v", sc.Text(), err)
		}
		kind := m["type"].(string)
		if kind == "finding" {
			kind = m["kind"].(string)
		}
		types[kind]++
		if first == nil && kind == "channel" {
			first = m
		}
		for _, k := range []string{"type", "id", "kind", "src", "score", "severity", "connections", "first_seen", "last_seen", "hosts", "fanout", "reasons", "attack", "action"} {
			if _, ok := m[k]; !ok && m["type"] != "action" {
				t.Errorf("line lacks %q: %s", k, sc.Text())
			}
		}
		if kind == "channel" {
			want := []string{"dst", "dport", "proto", "popularity"}
			if m["period_s"] != nil { // a period was found: its measures too
				want = append(want, "jitter", "regularity")
			}
			for _, k := range want {
				if _, ok := m[k]; !ok {
					t.Errorf("channel lacks %q: %s", k, sc.Text())
				}
			}
		}
		if ts, ok := m["first_seen"].(string); ok {
			if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") {
				t.Errorf("first_seen %q is not RFC 3339 UTC", ts)
			}
		}
	}
	if first == nil || first["src"] != "10.1.0.5" || first["dst"] != "203.0.113.9" || types["host"] == 0 || types["action"] == 0 {
		t.Errorf("first channel %v, types %v", first, types)
	}
}

func TestHuntExitCodes(t *testing.T) {
	good := smallConnLog(t, false)
	bad := smallConnLog(t, true)
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no input", []string{"hunt"}, exitUsage, "needs --store, --pcap or --zeek"},
		{"bad format", []string{"hunt", "--zeek", good, "--format", "xml"}, exitUsage, "--format"},
		{"bad cidr", []string{"hunt", "--zeek", good, "--internal", "10.0.0.0/99"}, exitUsage, "--internal"},
		{"bad severity", []string{"hunt", "--zeek", good, "--fail-on", "severe"}, exitUsage, "--fail-on"},
		{"missing file", []string{"hunt", "--zeek", filepath.Join(t.TempDir(), "nope.log")}, exitError, "no such file"},
		{"fail-on hit", []string{"hunt", "--zeek", good, "--internal", "10.1.0.0/16", "--fail-on", "high"}, exitFindings, "findings at high"},
		{"fail-on not hit", []string{"hunt", "--zeek", good, "--internal", "10.1.0.5/32", "--fail-on", "high", "--format", "jsonl"}, exitOK, ""},
		{"malformed rows skipped", []string{"hunt", "--zeek", bad, "--internal", "10.1.0.0/16"}, exitPartial, "2 damaged packets or rows were skipped"},
		{"findings beat partial", []string{"hunt", "--zeek", bad, "--internal", "10.1.0.0/16", "--fail-on", "medium"}, exitFindings, "were skipped"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCmd(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.err) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errOut, tc.err)
			}
			if tc.name == "malformed rows skipped" && !strings.Contains(out, "203.0.113.9") {
				t.Errorf("findings missing after skipped rows:\n%s", out)
			}
		})
	}
}

func TestHuntAllowList(t *testing.T) {
	log := smallConnLog(t, false)
	allow := filepath.Join(t.TempDir(), "allow.txt")
	os.WriteFile(allow, []byte("# known good\n203.0.113.0/24\n*.example.com\n"), 0o644)
	out, errOut, code := runCmd(t, "hunt", "--zeek", log, "--internal", "10.1.0.0/16", "--allow", allow, "--format", "jsonl")
	if code != 0 || strings.Contains(out, `"dst":"203.0.113.9"`) {
		t.Errorf("exit %d, allowed destination reported: %s %s", code, errOut, out)
	}
}

// TestHuntDamagedPcap: a damaged packet record is skipped and counted.
func TestHuntDamagedPcap(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcapio.NewWriter(&buf, pkthdr.LinkEthernet, 65535, false)
	if err != nil {
		t.Fatal(err)
	}
	frame := func(src, dst byte, sport, dport uint16, flags byte) []byte {
		f := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0,
			0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 1, 0, src, 203, 0, 113, dst,
			byte(sport >> 8), byte(sport), byte(dport >> 8), byte(dport), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0}
		return f
	}
	ts := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		f := frame(5, 9, uint16(40000+i), 443, 0x02)
		w.WritePacket(ts.Add(time.Duration(i)*time.Minute), f, len(f))
		g := frame(5, 9, uint16(40000+i), 443, 0x12)
		g[26], g[30], g[29], g[33] = 203, 10, 9, 5 // swap addresses for the reply
		g[27], g[28], g[31], g[32] = 0, 113, 1, 0
		w.WritePacket(ts.Add(time.Duration(i)*time.Minute+time.Millisecond), g, len(g))
	}
	data := buf.Bytes()
	// Claim an absurd captured length in the 3rd record header.
	off := 24 + 2*(16+54)
	copy(data[off+8:], []byte{0xff, 0xff, 0xff, 0x7f})
	p := filepath.Join(t.TempDir(), "x.pcap")
	os.WriteFile(p, data, 0o644)
	_, errOut, code := runCmd(t, "hunt", "--pcap", p, "--format", "jsonl", "--min-severity", "info")
	if code != exitPartial || !strings.Contains(errOut, "skipped") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// Quality gates over the shared data.

var apRE = regexp.MustCompile(`pair_AP=([0-9.]+) host_AP=([0-9.]+)`)

// huntScore runs the shared scorer on a findings file.
func huntScore(t *testing.T, labels, findings string) (pairAP, hostAP float64, out string) {
	t.Helper()
	py := testenv.Tool(t, "python3")
	script := testenv.SharedFile(t, "tools", "huntscore.py")
	b, err := exec.Command(py, script, labels, findings).CombinedOutput()
	if err != nil {
		t.Fatalf("huntscore: %v\n%s", err, b)
	}
	m := apRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("huntscore output: %s", b)
	}
	pairAP, _ = strconv.ParseFloat(string(m[1]), 64)
	hostAP, _ = strconv.ParseFloat(string(m[2]), 64)
	return pairAP, hostAP, string(b)
}

// simulate runs trafficsim on a scenario into dir.
func simulate(t *testing.T, scenario, dir string) (pcap, labels, conn string) {
	t.Helper()
	simDir := testenv.SharedFile(t, "tools", "trafficsim")
	goTool := testenv.Tool(t, "go")
	pcap, labels, conn = filepath.Join(dir, "sim.pcap"), filepath.Join(dir, "sim.labels.json"), filepath.Join(dir, "sim.conn.log")
	cmd := exec.Command(goTool, "run", ".", "-scenario", scenario, "-o", pcap, "-labels", labels, "-conn", conn)
	cmd.Dir = simDir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trafficsim: %v\n%s", err, b)
	}
	return pcap, labels, conn
}

func huntToFile(t *testing.T, path string, args ...string) {
	t.Helper()
	out, errOut, code := runCmd(t, append([]string{"hunt", "--format", "jsonl", "--min-severity", "info"}, args...)...)
	if code != 0 {
		t.Fatalf("hunt exit %d: %s", code, errOut)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGateTrafficsimDev(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates a day of traffic")
	}
	dir := t.TempDir()
	scenario := filepath.Join(testenv.SharedFile(t, "tools", "trafficsim"), "scenarios", "dev.json")
	pcap, labels, conn := simulate(t, scenario, dir)
	// The same day imported into a store, hunted from its flow records.
	st := filepath.Join(dir, "store")
	if _, errOut, code := runCmd(t, "import", "--store", st, pcap); code != 0 {
		t.Fatalf("import: %s", errOut)
	}
	for _, in := range []struct{ name, flag, path string }{{"pcap", "--pcap", pcap}, {"conn.log", "--zeek", conn}, {"store", "--store", st}} {
		out := filepath.Join(dir, in.name+".jsonl")
		huntToFile(t, out, in.flag, in.path)
		pair, host, report := huntScore(t, labels, out)
		t.Logf("dev from %s:\n%s", in.name, report)
		if pair < 0.9 || host < 1.0 {
			t.Errorf("dev from %s: pair AP %.3f (want >= 0.9), host AP %.3f (want 1.0)", in.name, pair, host)
		}
	}
}

func readFindings(t *testing.T, out string) []map[string]any {
	t.Helper()
	var fs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad line %q", line)
		}
		if m["type"] != "action" {
			fs = append(fs, m)
		}
	}
	return fs
}

func TestGateStratosphereBenign(t *testing.T) {
	for _, n := range []string{"008", "010", "011", "012"} {
		t.Run(n, func(t *testing.T) {
			log := testenv.SharedFile(t, "zeek", "strato-"+n+"-benign-conn.log.labeled")
			out, errOut, code := runCmd(t, "hunt", "--zeek", log, "--internal", "147.32.0.0/16", "--format", "jsonl", "--min-severity", "info")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			fs := readFindings(t, out)
			if len(fs) < 10 {
				t.Fatalf("only %d findings", len(fs))
			}
			for _, f := range fs {
				if s := f["severity"]; s == "high" || s == "critical" {
					t.Errorf("benign %s %v -> %v:%v at %v (%v)", f["kind"], f["src"], f["dst"], f["dport"], s, f["reasons"])
				}
			}
		})
	}
}

// firstChannel is the highest-ranked channel finding and its rank among
// channels.
func firstChannel(fs []map[string]any, src, dst string, dport float64) (int, map[string]any) {
	rank := 0
	for _, f := range fs {
		if f["kind"] != "channel" {
			continue
		}
		rank++
		if f["src"] == src && f["dst"] == dst && f["dport"] == dport {
			return rank, f
		}
	}
	return 0, nil
}

// TestGateRealC2: public captures and logs of real implants made in other
// people's labs (../shared/pcaps/real-lab, ../shared/pcaps/beacons,
// ../shared/zeek): the command-and-control channel ranks first among the
// channels, at the severity an analyst would act on.
func TestGateRealC2(t *testing.T) {
	type want struct {
		src, dst string
		dport    float64
		rank     int
		severity string // at least
		dir      string
		reason   string // a reason that must be given
	}
	lab := func(dir, file string) []string {
		return []string{"--pcap", testenv.SharedFile(t, "pcaps", "real-lab", "corelight-c2", dir, file)}
	}
	tests := []struct {
		name string
		args func() []string
		want []want
	}{
		{"caldera sandcat: 58 check-ins in two kept-alive connections", func() []string { return lab("zeek-caldera-detector", "Traces__sandcat.pcap") },
			[]want{{"172.18.0.3", "172.18.0.2", 8888, 1, "high", "internal", "judged as outside"}}},
		{"caldera sandcat, the agent's host given as the inside", func() []string {
			return append(lab("zeek-caldera-detector", "Traces__sandcat.pcap"), "--internal", "172.18.0.3/32")
		}, []want{{"172.18.0.3", "172.18.0.2", 8888, 1, "high", "outbound", "inside kept-open connections"}}},
		{"caldera manx over TCP: one connection, pushed every 20 s", func() []string { return lab("zeek-caldera-detector", "Traces__manx-tcp.pcap") },
			[]want{{"172.18.0.3", "172.18.0.2", 7010, 1, "high", "internal", "inside kept-open connections"}}},
		{"caldera manx over UDP: 11 datagrams each way", func() []string { return lab("zeek-caldera-detector", "Traces__manx-udp.pcap") },
			[]want{{"172.18.0.3", "172.18.0.2", 6000, 2, "medium", "internal", ""}, {"172.18.0.2", "172.18.0.3", 7011, 2, "medium", "internal", ""}}},
		{"caldera ragdoll: 8 connections 40-55 s apart", func() []string { return lab("zeek-caldera-detector", "Traces__ragdoll.pcap") },
			[]want{{"172.18.0.3", "172.18.0.2", 8888, 1, "low", "internal", ""}}},
		{"QuasarRAT: 77 reconnects to 1337", func() []string {
			return lab("zeek-quasarrat-detector", "Traces__09ffabf7-774a-43a3-8c97-68f2046fd385.pcap")
		}, []want{{"192.168.100.7", "86.136.67.231", 1337, 1, "high", "outbound", "population too small to judge"}}},
		{"STRRAT: heartbeats in one connection", func() []string {
			return lab("zeek-strrat-detector", "Traces__strrat-4423258f-59bc-4a88-bfec-d8ac08c88538.pcap")
		}, []want{{"192.168.100.11", "185.255.114.40", 8219, 1, "high", "outbound", "inside kept-open connections"}}},
		{"AsyncRAT: heartbeats in one connection, its server's self-signed certificate", func() []string {
			return lab("zeek-asyncrat-detector", "Traces__cd010953-5faf-4054-86be-58c020c3a532.pcap")
		}, []want{{"192.168.100.124", "181.131.218.39", 4041, 1, "medium", "outbound", "TLS with a self-signed certificate CN=AsyncRAT Server"}}},
		// No schedule to score: the certificate identifies them.
		{"DcRat: two sessions, a certificate from a CA its server never sends", func() []string {
			return lab("zeek-asyncrat-detector", "Traces__30a385ed-171e-4f15-ac3f-08c96be7bfd1.pcap")
		}, []want{{"192.168.100.20", "186.169.47.11", 7084, 1, "medium", "outbound", "TLS with a certificate CN=DcRat issued by CN=DcRat Server"}}},
		{"SXN: one 62 s session, a self-signed certificate", func() []string {
			return lab("zeek-asyncrat-detector", "Traces__9596cf60-0da6-47a7-a375-1f25ae32d843.pcap")
		}, []want{{"192.168.100.163", "94.156.71.237", 4782, 1, "medium", "outbound", "TLS with a self-signed certificate CN=SXN Server CA"}}},
		{"Stratosphere test-cc-capture-1: every 2.2 s to 443", func() []string {
			return []string{"--pcap", testenv.SharedFile(t, "pcaps", "beacons", "test-cc-capture-1.pcap"), "--internal", "147.32.80.37/32"}
		}, []want{{"147.32.80.37", "141.193.213.21", 443, 1, "medium", "outbound", "standard port is held at most medium"}}},
		{"Stratosphere test-cc-capture-2: jittered, to 443", func() []string {
			return []string{"--pcap", testenv.SharedFile(t, "pcaps", "beacons", "test-cc-capture-2.pcap"), "--internal", "147.32.80.37/32"}
		}, []want{{"147.32.80.37", "141.193.213.20", 443, 1, "medium", "outbound", ""}}},
		// Jitter 1.0 (sleeps anywhere from 0 to 10 s): no beat, but bounded
		// intervals, every minute active, the same few requests. Port 80 to
		// an inside server in a capture of three hosts: medium at most.
		{"PowerShell Empire HTTP agent, jitter 100%, to an inside listener on 80", func() []string {
			return []string{"--pcap", testenv.SharedFile(t, "pcaps", "real-lab", "elcabezzonn", "capture-Mon-02-13-17-17-15-34_Empire.pcap")}
		}, []want{{"192.168.1.46", "192.168.1.161", 80, 1, "medium", "internal", "jittered schedule: intervals"}}},
		{"PowerShell Empire launched over WMI on the domain controller", func() []string {
			return []string{"--pcap", testenv.SharedFile(t, "pcaps", "real-lab", "elcabezzonn", "wmi_to_powershell_empire.pcap")}
		}, []want{{"192.168.1.195", "192.168.1.161", 80, 1, "medium", "internal", "inside web server 192.168.1.161 reached by no other inside host"}}},
		{"njRAT conn.log: a loop of refused connections to 1177", func() []string {
			return []string{"--zeek", testenv.SharedFile(t, "zeek", "strato-001-njrat-conn.log.labeled")}
		}, []want{{"192.168.1.115", "41.108.179.197", 1177, 1, "high", "outbound", "reconnect loop"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCmd(t, append([]string{"hunt", "--format", "jsonl", "--min-severity", "info"}, tc.args()...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			fs := readFindings(t, out)
			for _, w := range tc.want {
				rank, f := firstChannel(fs, w.src, w.dst, w.dport)
				if f == nil {
					t.Fatalf("no finding %s -> %s:%v", w.src, w.dst, w.dport)
				}
				sev, _ := hunt.ParseSeverity(fmt.Sprint(f["severity"]))
				min, _ := hunt.ParseSeverity(w.severity)
				if rank > w.rank || sev < min || f["direction"] != w.dir {
					t.Errorf("%s -> %s:%v: rank %d (want <= %d), %v %.2f (want %s or above), %v: %v", w.src, w.dst, w.dport, rank, w.rank,
						f["severity"], f["score"], w.severity, f["direction"], f["reasons"])
				}
				if w.reason != "" && !strings.Contains(fmt.Sprint(f["reasons"]), w.reason) {
					t.Errorf("reasons lack %q: %v", w.reason, f["reasons"])
				}
				if strings.Contains(w.dst, ".") && w.dport != 443 && w.dport != 80 && !strings.Contains(fmt.Sprint(f["attack"]), "T1571") {
					t.Errorf("odd port %v without T1571: %v", w.dport, f["attack"])
				}
				if strings.Contains(w.reason, "certificate") && !strings.Contains(fmt.Sprint(f["attack"]), "T1573.002") {
					t.Errorf("certificate without T1573.002: %v", f["attack"])
				}
			}
		})
	}
}

// TestGateRealNegatives: real logs without command and control rank
// nothing above medium: RITA's proxy_rolling (a client behind a Squid
// proxy, conn, http, ssl and dns logs) and the Stratosphere benign days
// (TestGateStratosphereBenign).
func TestGateRealNegatives(t *testing.T) {
	dir := testenv.SharedFile(t, "zeek", "real-lab", "rita-proxy-rolling")
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log.gz"))
	out, errOut, code := runCmd(t, append([]string{"hunt", "--format", "jsonl", "--min-severity", "info", "--zeek"}, logs...)...)
	// Connections still open when the logs end have http and ssl rows but
	// no conn row: named, used, exit 3.
	if code != exitPartial || !strings.Contains(errOut, "in no conn log given") || !strings.Contains(errOut, "x509") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	fs := readFindings(t, out)
	proxied := 0
	for _, f := range fs {
		if s := f["severity"]; s == "high" || s == "critical" {
			t.Errorf("benign %s %v -> %v:%v at %v (%v)", f["kind"], f["src"], f["dst"], f["dport"], s, f["reasons"])
		}
		if f["via"] == "10.0.0.238" {
			proxied++
		}
		if f["dst"] == "10.0.0.238" && f["dport"] == 3128.0 {
			t.Errorf("the proxy scored as a destination: %v", f)
		}
	}
	if proxied < 3 {
		t.Errorf("%d channels through the proxy", proxied)
	}
}

// TestGateRealChatter: captures of ordinary domain chatter in a real lab
// (../shared/pcaps/real-lab/elcabezzonn: DRSUAPI, NETLOGON, LSA, name
// service, browsing) give no channel above low. (ultra_lab_03-14's host is
// rated on a scan of 1,084 addresses on one port, not on a channel.)
func TestGateRealChatter(t *testing.T) {
	for _, name := range []string{"aug16_part2.pcap", "aug19.pcap", "aug_16_par4.pcap", "ultra_lab_03-14.pcap",
		"macgyver.pcap", "chip_host_signin.pcap", "windows_miscellany.pcap", "normal_share_traversal.pcap"} {
		t.Run(name, func(t *testing.T) {
			pcap := testenv.SharedFile(t, "pcaps", "real-lab", "elcabezzonn", name)
			out, errOut, code := runCmd(t, "hunt", "--pcap", pcap, "--format", "jsonl", "--min-severity", "info")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			fs := readFindings(t, out)
			if len(fs) == 0 {
				t.Fatal("no findings at all")
			}
			for _, f := range fs {
				if s, _ := hunt.ParseSeverity(fmt.Sprint(f["severity"])); f["kind"] == "channel" && s > hunt.Low {
					t.Errorf("benign %v -> %v:%v at %v (%v)", f["src"], f["dst"], f["dport"], f["severity"], f["reasons"])
				}
			}
		})
	}
}

// TestHuntZeekBadInput: damaged Zeek logs lose nothing valid. A gzipped
// conn.log cut in the middle of a member keeps every row before the cut
// (the beacon is still found), an http.log whose uids no conn row has and
// a header without a needed field are named, and the exit status is 3.
func TestHuntZeekBadInput(t *testing.T) {
	raw, err := os.ReadFile(smallConnLog(t, false))
	if err != nil {
		t.Fatal(err)
	}
	// In time order, as Zeek writes it, so that a cut loses the end.
	lines := strings.SplitAfter(string(raw), "\n")
	rows := slices.Clone(lines[7:])
	slices.Sort(rows)
	conn := []byte(strings.Join(append(lines[:7:7], rows...), ""))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(conn)
	zw.Close()
	dir := t.TempDir()
	cut := filepath.Join(dir, "conn.log.gz")
	os.WriteFile(cut, gz.Bytes()[:gz.Len()*9/10], 0o644)
	http := filepath.Join(dir, "http.log")
	os.WriteFile(http, []byte("#separator \\x09\n#path\thttp\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tmethod\thost\turi\n"+
		"1772431200.000000\tCnowhere\t10.1.0.7\t40001\t198.18.1.1\t80\tGET\twww.example.org\t/\n"), 0o644)
	noPort := filepath.Join(dir, "conn-noport.log")
	os.WriteFile(noPort, []byte(strings.Replace(connHeader, "\tid.resp_p\t", "\tid.resp_port\t", 1)+
		"1772431200.000000\tCa\t10.1.0.1\t1\t10.1.0.2\t2\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t40\t0\t0\t-\n"), 0o644)

	for _, tc := range []struct {
		name   string
		files  []string
		stderr []string
	}{
		{"truncated gzip member", []string{cut}, []string{"conn.log.gz: cut short after line", "rows before it were used"}},
		{"uids that match no conn row", []string{http, cut}, []string{"in no conn log given", "http.log:4: uid in no conn log"}},
		{"a header without a needed field", []string{noPort, cut}, []string{"conn-noport.log: line 8: bad port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCmd(t, append([]string{"hunt", "--format", "jsonl", "--zeek"}, tc.files...)...)
			if code != exitPartial {
				t.Fatalf("exit %d, want %d: %s", code, exitPartial, errOut)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
			if rank, f := firstChannel(readFindings(t, out), "10.1.0.5", "203.0.113.9", 8080); rank != 1 {
				t.Errorf("beacon rank %d: %v", rank, f)
			}
		})
	}
}

// TestHuntStoreKeepsBursts: a store keeps the check-ins inside kept-alive
// connections in its flow files (format v2): hunting the store finds
// Caldera's sandcat as hunting its capture does.
func TestHuntStoreKeepsBursts(t *testing.T) {
	pcap := testenv.SharedFile(t, "pcaps", "real-lab", "corelight-c2", "zeek-caldera-detector", "Traces__sandcat.pcap")
	st := filepath.Join(t.TempDir(), "store")
	if _, errOut, code := runCmd(t, "import", "--store", st, pcap); code != 0 {
		t.Fatalf("import: %s", errOut)
	}
	var scores []any
	for _, in := range [][]string{{"--pcap", pcap}, {"--store", st}} {
		out, errOut, code := runCmd(t, append([]string{"hunt", "--format", "jsonl"}, in...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", in, code, errOut)
		}
		rank, f := firstChannel(readFindings(t, out), "172.18.0.3", "172.18.0.2", 8888)
		if rank != 1 || f["severity"] != "high" {
			t.Fatalf("%v: rank %d %v", in, rank, f)
		}
		scores = append(scores, f["score"])
	}
	if scores[0] != scores[1] {
		t.Errorf("pcap scores %v, store %v", scores[0], scores[1])
	}
}
