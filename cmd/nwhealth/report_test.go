package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/report/stix/stixtest"
)

// readJSONL groups JSON Lines by their type.
func readJSONL(t *testing.T, out string) map[string][]map[string]any {
	t.Helper()
	byType := map[string][]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		typ, _ := m["type"].(string)
		byType[typ] = append(byType[typ], m)
	}
	return byType
}

func strs(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func byKey(list []map[string]any, key, val string) map[string]any {
	for _, m := range list {
		if m[key] == val {
			return m
		}
	}
	return nil
}

// TestReportAcceptance is issue 6's acceptance: the dev.json day with
// PsExec, WMI and DCSync captures rewritten onto a beaconing host.
func TestReportAcceptance(t *testing.T) {
	inc := buildIncident(t)
	stone, c2 := inc.stone.String(), inc.c2.String()
	// The day's background keeps 96 bytes a packet, so replay sees SMB
	// streams with holes and says so: exit 3, with everything reported.
	report := func(t *testing.T, args ...string) string {
		t.Helper()
		out, errOut, code := runCmd(t, append([]string{"report", "--pcap", inc.pcap, "--assets", inc.assets}, args...)...)
		if code != exitPartial || !strings.Contains(errOut, "incomplete streams") {
			t.Fatalf("report exit %d, want %d for the truncated background: %s", code, exitPartial, errOut)
		}
		return out
	}
	out := report(t, "--format", "jsonl")
	doc := readJSONL(t, out)
	for _, typ := range []string{"summary", "host", "controller", "action", "finding", "operation"} {
		if len(doc[typ]) == 0 {
			t.Fatalf("no %q lines", typ)
		}
	}
	sum := doc["summary"][0]
	if sum["severity"] != "critical" || !slices.Contains(strs(sum["compromised"]), stone) || !slices.Contains(strs(sum["controllers"]), c2) {
		t.Errorf("summary %v", sum)
	}

	// Every labelled beaconing host is named, with its controller, and
	// every controller lists it.
	for _, p := range inc.labels.C2Pairs {
		h := byKey(doc["host"], "host", p.Src)
		if h == nil || !slices.Contains(strs(h["controllers"]), p.Dst) || h["compromised"] != true {
			t.Errorf("beaconing host %s (controller %s): %v", p.Src, p.Dst, h)
		}
		c := byKey(doc["controller"], "addr", p.Dst)
		if c == nil {
			t.Errorf("controller %s missing", p.Dst)
			continue
		}
		var talkers []string
		for _, x := range c["hosts"].([]any) {
			talkers = append(talkers, x.(map[string]any)["host"].(string))
		}
		if !slices.Contains(talkers, p.Src) {
			t.Errorf("controller %s lists %v, not %s", p.Dst, talkers, p.Src)
		}
	}

	// The stepping stone: right role and phase, its progression from
	// check-ins to lateral movement, its impact scope and accounts.
	h := byKey(doc["host"], "host", stone)
	if h == nil {
		t.Fatalf("stepping stone %s missing", stone)
	}
	if h["role"] != "stepping-stone" || h["phase"] != "lateral-movement" || h["severity"] != "critical" || h["dcsync"] != true || h["name"] != "ws-finance-07" {
		t.Errorf("stepping stone: role %v phase %v severity %v dcsync %v name %v", h["role"], h["phase"], h["severity"], h["dcsync"], h["name"])
	}
	var phases []string
	for _, s := range h["steps"].([]any) {
		phases = append(phases, s.(map[string]any)["phase"].(string))
	}
	if len(phases) < 3 || phases[0] != "command-and-control" || !slices.Contains(phases, "lateral-movement") || !slices.Contains(phases, "credential-access") {
		t.Errorf("progression %v: want command-and-control first, then lateral-movement and credential-access", phases)
	}
	scope := map[string]string{}
	for _, r := range h["reached"].([]any) {
		m := r.(map[string]any)
		scope[m["host"].(string)] = m["phase"].(string)
	}
	want := map[string]string{inc.victims["psexec"].String(): "executed-on", inc.victims["wmi"].String(): "executed-on", inc.victims["dcsync"].String(): "targeted"}
	for a, p := range want {
		if scope[a] != p {
			t.Errorf("impact scope %s = %q, want %q (scope %v)", a, scope[a], p, scope)
		}
	}
	for _, p := range inc.labels.LateralPairs {
		if p.Src == stone && scope[p.Dst] == "" {
			t.Errorf("labelled lateral target %s not in the impact scope", p.Dst)
		}
	}
	for _, acc := range []string{`3B\backdoor`, `3B\lgreen`} {
		if !slices.Contains(strs(h["accounts_used"]), acc) {
			t.Errorf("accounts used %v lack %s", h["accounts_used"], acc)
		}
	}
	if len(h["windows"].([]any)) == 0 {
		t.Error("no evidence windows")
	}
	for a := range want {
		t2 := byKey(doc["host"], "host", a)
		if t2 == nil || t2["role"] != "target" || !slices.Contains(strs(t2["reached_by"]), stone) {
			t.Errorf("target %s: %v", a, t2)
		}
	}

	// Each lateral operation is linked to the beaconing host that ran it.
	lateral := 0
	for _, op := range doc["operation"] {
		if op["src"] != stone || op["phase"] == "" {
			continue
		}
		lateral++
		if op["src_role"] != "stepping-stone" || len(strs(op["src_findings"])) == 0 || !slices.Contains(strs(op["controllers"]), c2) {
			t.Errorf("operation %v %v not linked to its stepping stone: %v %v %v", op["id"], op["operation"], op["src_role"], op["src_findings"], op["controllers"])
		}
	}
	techs := map[string]bool{}
	for _, op := range doc["operation"] {
		techs[op["technique"].(string)] = true
	}
	for _, tech := range []string{"T1569.002", "T1047", "T1003.006", "T1021.002"} {
		if !techs[tech] {
			t.Errorf("no %s operation (PsExec, WMI, DCSync)", tech)
		}
	}
	if lateral < 8 {
		t.Errorf("only %d lateral operations from %s", lateral, stone)
	}

	// Isolating the stepping stone comes first; every action has a reason.
	acts := doc["action"]
	if acts[0]["action"] != "isolate host" || acts[0]["target"] != stone || acts[0]["escalation"] != "CSIRT" {
		t.Errorf("first action %v", acts[0])
	}
	kinds := map[string]bool{}
	for _, a := range acts {
		kinds[a["action"].(string)] = true
		if a["why"] == "" || len(strs(a["evidence"])) == 0 {
			t.Errorf("action without a reason: %v", a)
		}
	}
	for _, k := range []string{"block destination at proxy/firewall", "reset domain credentials (krbtgt twice, replicated accounts)", "collect memory and disk"} {
		if !kinds[k] {
			t.Errorf("no %q action", k)
		}
	}

	// The other formats render the same analysis in-process: the
	// command's own analysis and writer, one pass over the day (the
	// race detector makes each pass slow).
	o := &reportOptions{s: streams{out: io.Discard, errOut: io.Discard}, pcaps: []string{inc.pcap}, assetsFile: inc.assets,
		format: "table", minSeverity: "medium", now: func() time.Time { return time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC) }}
	analysis, _, _, err := analyzeReport(o)
	if err != nil {
		t.Fatal(err)
	}
	render := func(t *testing.T, format string) string {
		t.Helper()
		o.format, o.output = format, filepath.Join(inc.dir, "report."+format)
		if err := writeReport(o, analysis); err != nil {
			t.Fatal(err)
		}
		return o.output
	}
	t.Run("table", func(t *testing.T) {
		raw, err := os.ReadFile(render(t, "table"))
		if err != nil {
			t.Fatal(err)
		}
		out := string(raw)
		first := ""
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "isolate host") {
				first = line
				break
			}
		}
		if !strings.Contains(first, stone) || !strings.Contains(out, "stepping-stone *") || !strings.Contains(out, "Progression:") ||
			!strings.Contains(out, "nwhealth query --store STORE") {
			t.Errorf("table:\n%s", out)
		}
	})
	t.Run("html", func(t *testing.T) {
		dom := chromiumCheck(t, render(t, "html"), "report-acceptance")
		for _, a := range []string{stone, c2, inc.victims["psexec"].String(), inc.victims["wmi"].String(), inc.dc.String(), "dc01"} {
			if !strings.Contains(dom, a) {
				t.Errorf("rendered page lacks %s", a)
			}
		}
	})
	t.Run("store", func(t *testing.T) {
		// The same incident from a store: hunt reads its flow records,
		// replay its packets of the range.
		st := filepath.Join(inc.dir, "store")
		if _, errOut, code := runCmd(t, "import", "--store", st, inc.pcap); code != 0 {
			t.Fatalf("import: %s", errOut)
		}
		day := inc.start.Format(time.RFC3339)
		next := inc.start.Add(25 * time.Hour).Format(time.RFC3339)
		out, errOut, code := runCmd(t, "report", "--store", st, "--from", day, "--to", next, "--assets", inc.assets, "--format", "jsonl")
		if code != exitPartial {
			t.Fatalf("report --store: exit %d: %s", code, errOut)
		}
		fromStore := readJSONL(t, out)
		if len(fromStore["operation"]) != len(doc["operation"]) {
			t.Errorf("%d operations from the store, %d from the capture", len(fromStore["operation"]), len(doc["operation"]))
		}
		for _, h := range doc["host"] {
			s := byKey(fromStore["host"], "host", h["host"].(string))
			if s == nil || s["role"] != h["role"] || s["phase"] != h["phase"] {
				t.Errorf("host %v: %v/%v from the capture, %v from the store", h["host"], h["role"], h["phase"], s)
			}
		}
		if a := fromStore["action"][0]; a["action"] != "isolate host" || a["target"] != stone {
			t.Errorf("first action from the store %v", a)
		}
		// A range before the lateral movement holds none of it.
		out, _, _ = runCmd(t, "report", "--store", st, "--from", day, "--to", inc.start.Add(12*time.Hour).Format(time.RFC3339), "--format", "jsonl")
		early := readJSONL(t, out)
		if n := len(early["operation"]); n != 0 {
			t.Errorf("%d operations before the lateral movement", n)
		}
		if h := byKey(early["host"], "host", stone); h == nil || h["role"] != "beaconing" {
			t.Errorf("before its lateral movement %s is %v", stone, h)
		}
	})
	t.Run("stix", func(t *testing.T) {
		objs := stixtest.Validate(t, render(t, "stix"))
		var patterns []string
		for _, o := range objs {
			if o["type"] == "indicator" {
				patterns = append(patterns, o["pattern"].(string))
			}
		}
		if !slices.Contains(patterns, "[ipv4-addr:value = '"+c2+"']") {
			t.Errorf("no indicator for %s: %v", c2, patterns)
		}
	})
}

// chromiumCheck loads a page in headless Chromium from a file:// URL:
// no console message may appear (errors, CSP violations, blocked
// fetches), our script must have run, and a screenshot and a printed PDF
// are kept under $NWHEALTH_TEST_ARTIFACTS (else out/test-artifacts). It
// returns the rendered DOM.
func chromiumCheck(t *testing.T, page, name string) string {
	t.Helper()
	chrome := testenv.Tool(t, "chromium")
	abs, err := filepath.Abs(page)
	if err != nil {
		t.Fatal(err)
	}
	url := "file://" + abs
	run := func(extra ...string) (string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + t.TempDir(),
			"--enable-logging=stderr", "--v=0"}, extra...)
		cmd := exec.CommandContext(ctx, chrome, append(args, url)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", extra, err, errOut.String())
		}
		return out.String(), errOut.String()
	}
	dom, logs := run("--dump-dom")
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, ":CONSOLE") || strings.Contains(line, "Uncaught") {
			t.Errorf("console: %s", line)
		}
	}
	if !strings.Contains(dom, `data-ready="1"`) {
		t.Error("the page's script did not run (CSP hash or a script error)")
	}
	dir := os.Getenv("NWHEALTH_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(testenv.ModuleRoot(t), "out", "test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, name+".png")
	run("--screenshot="+shot, "--window-size=1280,2400", "--hide-scrollbars")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
	// Printed: the page lays out on paper without errors.
	pdf := filepath.Join(dir, name+".pdf")
	_, logs = run("--print-to-pdf="+pdf, "--no-pdf-header-footer")
	if st, err := os.Stat(pdf); err != nil || st.Size() < 10000 {
		t.Errorf("printed page %s: %v", pdf, err)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, ":CONSOLE") {
			t.Errorf("console while printing: %s", line)
		}
	}
	return dom
}

// TestRewriteMatchesTcprewrite checks the Go rewriting used to build the
// acceptance incident against tcprewrite and editcap: the same bytes and
// times, packet for packet.
func TestRewriteMatchesTcprewrite(t *testing.T) {
	in := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng")
	tcprewrite, editcap := testenv.Tool(t, "tcprewrite"), testenv.Tool(t, "editcap")
	dir := t.TempDir()
	from1, from2 := netip.MustParseAddr("172.16.66.1"), netip.MustParseAddr("172.16.66.36")
	to1, to2 := netip.MustParseAddr("10.20.1.18"), netip.MustParseAddr("10.20.1.29")
	start := time.Date(2026, 3, 2, 14, 36, 0, 0, time.UTC)
	ours := filepath.Join(dir, "ours.pcap")
	if err := rewriteCapture(in, ours, map[netip.Addr]netip.Addr{from1: to1, from2: to2}, start); err != nil {
		t.Fatal(err)
	}
	r, err := pcapio.OpenFile(in)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Next()
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	shift := start.Sub(p.Timestamp)
	mapArg := fmt.Sprintf("%s/32:%s/32,%s/32:%s/32", from1, to1, from2, to2)
	tmp, theirs := filepath.Join(dir, "tcprewrite.pcap"), filepath.Join(dir, "theirs.pcap")
	for _, cmd := range [][]string{
		{tcprewrite, "--srcipmap=" + mapArg, "--dstipmap=" + mapArg, "--fixcsum", "-i", in, "-o", tmp},
		{editcap, "-t", fmt.Sprintf("%.6f", shift.Seconds()), tmp, theirs},
	} {
		if b, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, b)
		}
	}
	a, err := pcapio.OpenFile(ours)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := pcapio.OpenFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n := 0
	for ; ; n++ {
		pa, errA := a.Next()
		pb, errB := b.Next()
		if errors.Is(errA, io.EOF) && errors.Is(errB, io.EOF) {
			break
		}
		if errA != nil || errB != nil {
			t.Fatalf("packet %d: %v / %v", n+1, errA, errB)
		}
		if d := pa.Timestamp.Sub(pb.Timestamp); d > time.Microsecond || d < -time.Microsecond {
			t.Errorf("packet %d at %v, tcprewrite+editcap %v", n+1, pa.Timestamp, pb.Timestamp)
		}
		if !bytes.Equal(pa.Data, pb.Data) {
			t.Fatalf("packet %d differs from tcprewrite's:\n% x\n% x", n+1, pa.Data, pb.Data)
		}
	}
	if n < 200 {
		t.Errorf("only %d packets compared", n)
	}
}

// hostileCapture is the PsExec capture with every UTF-16 "PSEXESVC" (the
// tool's file and pipe names in SMB2 CREATEs) replaced by "<script>": an
// operation derived from packets, with markup in its target.
func hostileCapture(t *testing.T) string {
	t.Helper()
	in := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng")
	utf16 := func(s string) []byte {
		var b []byte
		for _, c := range s {
			b = append(b, byte(c), 0)
		}
		return b
	}
	from, to := utf16("PSEXESVC"), utf16("<script>")
	r, err := pcapio.OpenFile(in)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := filepath.Join(t.TempDir(), "hostile.pcap")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var w *pcapio.Writer
	replaced := 0
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if w == nil {
			if w, err = pcapio.NewWriter(f, p.LinkType, 262144, false); err != nil {
				t.Fatal(err)
			}
		}
		replaced += bytes.Count(p.Data, from)
		if err := w.WritePacket(p.Timestamp, bytes.ReplaceAll(p.Data, from, to), p.OrigLen); err != nil {
			t.Fatal(err)
		}
	}
	if replaced == 0 {
		t.Fatal("no PSEXESVC name in the capture")
	}
	return out
}

// TestReportHTMLHostileCapture: markup that arrives in packets stays
// text in the page, in the browser too.
func TestReportHTMLHostileCapture(t *testing.T) {
	pcap := hostileCapture(t)
	out, errOut, code := runCmd(t, "report", "--pcap", pcap, "--min-severity", "info", "--format", "jsonl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	hostileOps := 0
	for _, op := range readJSONL(t, out)["operation"] {
		if strings.Contains(op["target"].(string), "<script>") {
			hostileOps++
		}
	}
	if hostileOps == 0 {
		t.Fatal("no operation carries the markup: the test would prove nothing")
	}
	page := filepath.Join(t.TempDir(), "hostile.html")
	if _, errOut, code := runCmd(t, "report", "--pcap", pcap, "--min-severity", "info", "--format", "html", "-o", page); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	raw, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "<script"); n != 1 {
		t.Errorf("%d <script in the page, want our one", n)
	}
	dom := chromiumCheck(t, page, "report-hostile")
	if n := strings.Count(dom, "<script"); n != 1 {
		t.Errorf("%d script elements in the rendered page, want our one", n)
	}
	if !strings.Contains(dom, `&lt;script&gt;.exe`) {
		t.Error("the hostile file name is not shown as text")
	}
}

func TestReportUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report"}, "needs --store or --pcap"},
		{[]string{"report", "--zeek", "x.log"}, "needs --store or --pcap"},
		{[]string{"report", "--pcap", "a.pcap", "--store", "st"}, "not both"},
		{[]string{"report", "--pcap", "a.pcap", "--from", "-1h"}, "select from a --store"},
		{[]string{"report", "--pcap", "a.pcap", "--format", "pdf"}, "--format must be"},
		{[]string{"report", "--pcap", "a.pcap", "--fail-on", "urgent"}, "--fail-on"},
		{[]string{"report", "--pcap", "a.pcap", "--min-severity", "x"}, "--min-severity"},
		{[]string{"report", "--pcap", "a.pcap", "--internal", "10.0.0.0/33"}, "--internal"},
		{[]string{"report", "extra"}, "unknown command"},
	} {
		_, errOut, code := runCmd(t, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want usage and %q", tc.args, code, errOut, tc.want)
		}
	}
	_, errOut, code := runCmd(t, "report", "--pcap", filepath.Join(t.TempDir(), "missing.pcap"))
	if code != exitError || !strings.Contains(errOut, "missing.pcap") {
		t.Errorf("missing capture: exit %d %q", code, errOut)
	}
}

// TestReportSmallCaptures runs the command on the PsExec and WMI captures
// alone: no beacon, a lateral source and its target; the output file is
// written whole.
func TestReportSmallCaptures(t *testing.T) {
	psexec := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng")
	wmi := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_WMI_ProcessCallCreate.pcapng")
	dir := t.TempDir()
	outFile := filepath.Join(dir, "r.jsonl")
	out, errOut, code := runCmd(t, "report", "--pcap", psexec, wmi, "--min-severity", "info", "--format", "jsonl", "-o", outFile)
	if code != 0 || out != "" || !strings.Contains(errOut, "report: ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	raw, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	doc := readJSONL(t, string(raw))
	src := byKey(doc["host"], "host", "172.16.66.1")
	dst := byKey(doc["host"], "host", "172.16.66.36")
	if src == nil || src["role"] != "lateral-source" || src["phase"] != "lateral-movement" || dst == nil || dst["role"] != "target" || dst["phase"] != "executed-on" {
		t.Errorf("hosts %v / %v", src, dst)
	}
	if len(doc["controller"]) != 0 || doc["summary"][0]["operations"].(float64) != float64(len(doc["operation"])) {
		t.Errorf("controllers %v, summary %v", doc["controller"], doc["summary"][0])
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	// --fail-on reads hunt's severities: the incident is high.
	for _, tc := range []struct {
		failOn string
		code   int
	}{{"high", exitFindings}, {"medium", exitFindings}, {"critical", exitOK}} {
		if _, errOut, code := runCmd(t, "report", "--pcap", psexec, wmi, "--format", "jsonl", "--fail-on", tc.failOn); code != tc.code {
			t.Errorf("--fail-on %s: exit %d, want %d (%s)", tc.failOn, code, tc.code, errOut)
		}
	}
}

// TestReportZeekInput: conn.log rows add to hunt; replay still reads the
// capture.
func TestReportZeekInput(t *testing.T) {
	pcap, conn, _ := trafficsim(t, smallScenario)
	psexec := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng")
	out, errOut, code := runCmd(t, "report", "--pcap", psexec, "--zeek", conn, "--format", "jsonl", "--min-severity", "low")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	doc := readJSONL(t, out)
	if c := byKey(doc["controller"], "addr", "203.0.113.9"); c == nil {
		t.Errorf("the conn.log's beacon gives no controller: %v", doc["controller"])
	}
	if len(doc["operation"]) == 0 {
		t.Error("no operations from the capture")
	}
	// The same beacon from the simulator's own capture.
	out, errOut, code = runCmd(t, "report", "--pcap", pcap, "--format", "jsonl", "--min-severity", "low")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if byKey(readJSONL(t, out)["controller"], "addr", "203.0.113.9") == nil {
		t.Error("no controller from the capture")
	}
}

// TestReportImplantAfterWMI: a real lab capture: WMI runs a PowerShell
// Empire stager on the domain controller, which then checks in with a
// server in the same private range on port 80 every 5 s. Hunt alone rates
// the schedule low (an inside web server); the report, knowing the
// execution came first, makes it the controller and isolates the host.
func TestReportImplantAfterWMI(t *testing.T) {
	pcap := testenv.SharedFile(t, "pcaps", "real-lab", "elcabezzonn", "wmi_to_powershell_empire.pcap")
	out, errOut, code := runCmd(t, "report", "--pcap", pcap, "--format", "jsonl")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	doc := readJSONL(t, out)
	if byKey(doc["controller"], "addr", "192.168.1.161") == nil {
		t.Errorf("controllers %v lack 192.168.1.161", doc["controller"])
	}
	dc := byKey(doc["host"], "host", "192.168.1.195")
	if dc == nil || dc["compromised"] != true {
		t.Errorf("host 192.168.1.195: %v", dc)
	}
	var acts []string
	for _, a := range doc["action"] {
		if a["host"] == "192.168.1.195" {
			acts = append(acts, a["action"].(string))
		}
	}
	for _, want := range []string{"isolate host", "block destination at proxy/firewall"} {
		if !slices.Contains(acts, want) {
			t.Errorf("actions for 192.168.1.195 %v lack %q", acts, want)
		}
	}
}
