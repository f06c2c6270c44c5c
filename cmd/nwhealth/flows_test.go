package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/zeek"
)

// trafficsim runs the shared simulator on a scenario and returns the pcap
// and conn.log paths.
func trafficsim(t *testing.T, scenario string) (pcap, conn, labels string) {
	t.Helper()
	sim := testenv.SharedFile(t, "tools", "trafficsim")
	dir := t.TempDir()
	sc := filepath.Join(dir, "scenario.json")
	if err := os.WriteFile(sc, []byte(scenario), 0o644); err != nil {
		t.Fatal(err)
	}
	pcap, conn, labels = filepath.Join(dir, "sim.pcap"), filepath.Join(dir, "sim.conn.log"), filepath.Join(dir, "sim.labels.json")
	cmd := exec.Command("go", "run", ".", "-scenario", sc, "-o", pcap, "-conn", conn, "-labels", labels)
	cmd.Dir = sim
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trafficsim: %v\n%s", err, out)
	}
	return pcap, conn, labels
}

const smallScenario = `{"seed": 5, "start": "2026-03-02T08:00:00Z", "hours": 2, "hosts": 12, "snaplen": 200, "dns": "10.20.0.53",
 "browsing": {"per_hour": 30, "popular": 20, "long_tail": 300, "day_start": 0, "day_end": 24, "resp_kb": 20, "long_share": 0.3},
 "periodic": [{"name": "ntp", "dst": "10.20.0.123", "port": 123, "proto": "udp", "interval": 300, "jitter": 0, "share": 1, "req": 48, "resp": 48}],
 "beacons": [{"host": 3, "name": "c2.example.net", "dst": "203.0.113.9", "port": 443, "interval": 60, "jitter": 0.2, "dist": "uniform", "req": 300, "resp": 200, "size_var": 0.1}],
 "lateral": [], "hard_negatives": []}`

// zeekRows reads a conn.log into rows keyed by start time, 4-tuple and
// protocol.
func zeekRows(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string][]string{}
	var fields []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#fields\t") {
			fields = strings.Split(line, "\t")[1:]
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		v := strings.Split(line, "\t")
		if len(v) != len(fields) {
			t.Fatalf("row has %d fields, header %d: %q", len(v), len(fields), line)
		}
		row := map[string]string{}
		for i, f := range fields {
			row[f] = v[i]
		}
		key := strings.Join([]string{row["ts"], row["id.orig_h"], row["id.orig_p"], row["id.resp_h"], row["id.resp_p"], row["proto"]}, " ")
		if _, dup := rows[key]; dup {
			t.Fatalf("duplicate connection %s", key)
		}
		rows[key] = []string{row["orig_bytes"], row["resp_bytes"], row["orig_pkts"], row["resp_pkts"], row["orig_ip_bytes"], row["resp_ip_bytes"]}
	}
	return rows
}

// TestFlowsMatchSimulator compares the flow records kept by import with
// the simulator's own conn.log, connection by connection.
func TestFlowsMatchSimulator(t *testing.T) {
	pcap, conn, _ := trafficsim(t, smallScenario)
	st := tempStore(t)
	if code, _, e := nwh(t, nil, "import", "--store", st, pcap); code != 0 {
		t.Fatalf("import: %s", e)
	}
	code, out, e := nwh(t, nil, "flows", "--store", st, "--format", "zeek")
	if code != 0 {
		t.Fatalf("flows: %s", e)
	}
	ours := filepath.Join(t.TempDir(), "ours.log")
	os.WriteFile(ours, []byte(out), 0o644)
	got, want := zeekRows(t, ours), zeekRows(t, conn)
	if len(got) != len(want) {
		t.Errorf("%d flows, simulator wrote %d", len(got), len(want))
	}
	bad := 0
	for k, w := range want {
		g, ok := got[k]
		if !ok || strings.Join(g, " ") != strings.Join(w, " ") {
			if bad++; bad < 5 {
				t.Errorf("connection %s: got %v, want %v", k, g, w)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d connections differ", bad, len(want))
	}

	// JSON Lines and selectors: the beacon host's flows, with DNS names.
	code, out, _ = nwh(t, nil, "flows", "--store", st, "--host", "10.20.1.4", "--format", "jsonl")
	if code != 0 {
		t.Fatal("flows jsonl failed")
	}
	n, named := 0, false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		if m["type"] != "flow" || (m["orig"] != "10.20.1.4" && m["resp"] != "10.20.1.4") {
			t.Fatalf("line does not match the selector: %s", line)
		}
		if m["name"] == "c2.example.net" {
			named = true
		}
		n++
	}
	if n < 100 || !named {
		t.Errorf("%d flows for the beacon host, DNS name seen: %v", n, named)
	}
	code, out, _ = nwh(t, nil, "flows", "--store", st, "--host", "203.0.113.9", "--format", "table")
	if code != 0 || !strings.Contains(out, "203.0.113.9:443") || !strings.Contains(out, "SF") {
		t.Errorf("table output: %s", out)
	}
}

// TestFlowsZeekReadBack: the conn.log flows writes is read back by a Zeek
// conn.log reader (the project's, which follows Zeek's header rules) with
// the same records.
func TestFlowsZeekReadBack(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.pcap")
	genCapture(t, in, pkthdr.LinkEthernet, 2000, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
	st := tempStore(t)
	if code, _, e := nwh(t, nil, "import", "--store", st, in); code != 0 {
		t.Fatalf("import: %s", e)
	}
	_, js, _ := nwh(t, nil, "flows", "--store", st, "--format", "jsonl")
	code, zl, e := nwh(t, nil, "flows", "--store", st, "--format", "zeek")
	if code != 0 {
		t.Fatalf("flows: %s", e)
	}
	r, err := zeek.NewReader(strings.NewReader(zl))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var rec flow.Record
	for {
		err := r.Next(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("row %d: %v", n, err)
		}
		n++
	}
	if want := strings.Count(js, `"type":"flow"`); n != want || n == 0 {
		t.Errorf("read back %d conn.log rows, flows has %d", n, want)
	}
}

// TestImportOutOfOrder: packets stored out of time order come back sorted
// by time, none lost.
func TestImportOutOfOrder(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genCapture(t, filepath.Join(dir, "sorted.pcap"), pkthdr.LinkEthernet, 3000, start, true)
	// Swap neighbours in runs and move a late packet to the front.
	shuffled := append([]pcapio.Packet(nil), pkts...)
	for i := 0; i+1 < len(shuffled); i += 3 {
		shuffled[i], shuffled[i+1] = shuffled[i+1], shuffled[i]
	}
	shuffled[0], shuffled[2500] = shuffled[2500], shuffled[0]
	var buf bytes.Buffer
	w, _ := pcapio.NewWriter(&buf, pkthdr.LinkEthernet, 65535, true)
	for _, p := range shuffled {
		w.WritePacket(p.Timestamp, p.Data, p.OrigLen)
	}
	in := filepath.Join(dir, "shuffled.pcap")
	os.WriteFile(in, buf.Bytes(), 0o644)
	st := tempStore(t)
	if code, _, e := nwh(t, nil, "import", "--store", st, "--block-size", "4K", in); code != 0 {
		t.Fatalf("import: %s", e)
	}
	_, out, _ := nwh(t, nil, "query", "--store", st, "-w", "-")
	comparePackets(t, "out of order input", readCapture(t, []byte(out)), pkts)
	from, to := pkts[1000].Timestamp, pkts[2000].Timestamp
	_, out, _ = nwh(t, nil, "query", "--store", st, "-w", "-", "--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano))
	comparePackets(t, "time range of out of order input", readCapture(t, []byte(out)), pkts[1000:2000])
}

// TestFlowsCertificateFacts: a real RAT capture imported into a store
// comes back from flows --format jsonl with what its servers' certificates
// said (flow format 3): the DcRat server's leaf, issued by a CA it never
// sent, and public servers' leaves, whose issuers were sent.
func TestFlowsCertificateFacts(t *testing.T) {
	pcap := testenv.SharedFile(t, "pcaps", "real-lab", "corelight-c2", "zeek-asyncrat-detector", "Traces__30a385ed-171e-4f15-ac3f-08c96be7bfd1.pcap")
	st := filepath.Join(t.TempDir(), "st")
	if code, _, e := nwh(t, nil, "import", "--store", st, pcap); code != 0 {
		t.Fatalf("import: %s", e)
	}
	code, out, e := nwh(t, nil, "flows", "--store", st, "--format", "jsonl")
	if code != 0 {
		t.Fatalf("flows: %s", e)
	}
	var c2, public int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var f struct {
			Resp, CertSubjectCN, CertIssuerCN string
			RespPort                          uint16
			CertSeen, CertSelfSigned          bool
			CertIssuerAbsent, TLSNoSNI        bool
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(map[string]any{"Resp": m["resp"], "RespPort": m["resp_port"], "CertSubjectCN": m["cert_subject_cn"],
			"CertIssuerCN": m["cert_issuer_cn"], "CertSeen": m["cert_seen"] == true, "CertSelfSigned": m["cert_self_signed"] == true,
			"CertIssuerAbsent": m["cert_issuer_absent"] == true, "TLSNoSNI": m["tls_no_sni"] == true})
		json.Unmarshal(b, &f)
		switch {
		case f.Resp == "186.169.47.11" && f.RespPort == 7084 && !f.CertSeen:
			// Two of its connections were answered by a short alert
			// without a certificate; the client never named a server.
			if !f.TLSNoSNI || f.CertSubjectCN != "" {
				t.Errorf("DcRat flow without a certificate: %s", line)
			}
		case f.Resp == "186.169.47.11" && f.RespPort == 7084:
			c2++
			if !f.TLSNoSNI || f.CertSelfSigned || !f.CertIssuerAbsent || f.CertSubjectCN != "DcRat" || f.CertIssuerCN != "DcRat Server" {
				t.Errorf("DcRat flow: %s", line)
			}
		case f.CertSeen:
			public++
			if f.CertSelfSigned || f.CertIssuerAbsent || f.CertSubjectCN == "" || f.TLSNoSNI {
				t.Errorf("public server: %s", line)
			}
		}
	}
	if c2 == 0 || public == 0 {
		t.Errorf("%d DcRat flows with a certificate, %d public", c2, public)
	}
}
