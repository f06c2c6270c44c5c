package zeek

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/flow"
)

// A kept-alive connection polled every minute through a forward proxy,
// as Zeek logs it: one conn row, four http rows, one ssl row, and the DNS
// lookup (in a connection of its own) that named the destination.

const joinConn = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n" +
	"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\n" +
	"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tstring\tcount\tcount\tcount\tcount\n" +
	"1700000000.000000\tCkeep1\t10.0.0.111\t50000\t10.0.0.238\t3128\ttcp\thttp\t200.5\t4000\t9000\tSF\tShADadFf\t40\t6000\t40\t11000\n" +
	"1700000001.000000\tCdns1\t10.0.0.111\t53000\t10.0.0.53\t53\tudp\tdns\t0.01\t40\t80\tSF\tDd\t1\t68\t1\t108\n" +
	"1700000002.000000\tCplain\t10.0.0.111\t50001\t198.51.100.7\t443\ttcp\tssl\t1.5\t600\t4000\tSF\tShADadFf\t8\t900\t8\t4400\n"

const joinHTTP = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\thttp\n" +
	"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\ttrans_depth\tmethod\thost\turi\tproxied\n" +
	"#types\ttime\tstring\taddr\tport\taddr\tport\tcount\tstring\tstring\tstring\tset[string]\n" +
	"1700000060.100000\tCkeep1\t10.0.0.111\t50000\t10.0.0.238\t3128\t2\tPOST\tc2.example.net\thttp://c2.example.net/beacon\t-\n" +
	"1700000000.100000\tCkeep1\t10.0.0.111\t50000\t10.0.0.238\t3128\t1\tPOST\tc2.example.net\thttp://User:pw@C2.Example.net/beacon\t-\n" +
	"1700000120.100000\tCkeep1\t10.0.0.111\t50000\t10.0.0.238\t3128\t3\tPOST\tc2.example.net\thttp://c2.example.net/beacon\t-\n" +
	"1700000120.600000\tCkeep1\t10.0.0.111\t50000\t10.0.0.238\t3128\t4\tPOST\tc2.example.net\thttp://c2.example.net/result\t-\n" +
	"1700000180.100000\tCkeep1\t10.0.0.111\t50000\t10.0.0.238\t3128\t5\tPOST\tc2.example.net\thttp://c2.example.net/beacon\t-\n"

const joinSSL = `{"_path":"ssl","ts":1700000002.2,"uid":"Cplain","id.orig_h":"10.0.0.111","id.orig_p":50001,"id.resp_h":"198.51.100.7","id.resp_p":443,"version":"TLSv13","cipher":"TLS_AES_128_GCM_SHA256","server_name":"Telemetry.Example.COM"}` + "\n"

const joinDNS = `{"ts":1700000001.0,"uid":"Cdns1","id.orig_h":"10.0.0.111","id.orig_p":53000,"id.resp_h":"10.0.0.53","id.resp_p":53,"proto":"udp","query":"telemetry.example.com","qtype_name":"A","answers":["telemetry.example.com.cdn.net","198.51.100.7","2001:db8::7"],"TTLs":[60,60,60]}` + "\n"

func writeFiles(t *testing.T, files map[string][]byte) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

func join(t *testing.T, paths []string) ([]flow.Record, Report) {
	t.Helper()
	var recs []flow.Record
	rp, err := Join(paths, func(r *flow.Record) { recs = append(recs, *r) })
	if err != nil {
		t.Fatal(err)
	}
	return recs, rp
}

func byUIDTime(recs []flow.Record, ts int64) *flow.Record {
	for i := range recs {
		if recs[i].First.Unix() == ts {
			return &recs[i]
		}
	}
	return nil
}

func TestJoin(t *testing.T) {
	// Every order, and gzip or not, gives the same records.
	orders := [][]string{{"http.log", "ssl.log", "dns.log", "conn.log.gz"}, {"conn.log.gz", "dns.log", "ssl.log", "http.log"}}
	for _, order := range orders {
		t.Run(strings.Join(order, ","), func(t *testing.T) {
			files := map[string][]byte{"conn.log.gz": gz([]byte(joinConn)), "http.log": []byte(joinHTTP), "ssl.log": []byte(joinSSL), "dns.log": []byte(joinDNS)}
			dir := t.TempDir()
			var paths []string
			for _, n := range order {
				p := filepath.Join(dir, n)
				os.WriteFile(p, files[n], 0o644)
				paths = append(paths, p)
			}
			recs, rp := join(t, paths)
			if rp.Damaged != 0 || len(rp.Unused) != 0 || len(recs) != 3 {
				t.Fatalf("%d records, report %+v", len(recs), rp)
			}
			keep := byUIDTime(recs, 1700000000)
			if keep.ProxyDest != "c2.example.net:80" || keep.HTTPTarget != "http://c2.example.net/beacon" ||
				keep.Name != "c2.example.net" || keep.NameSource != flow.NameHTTP {
				t.Errorf("proxied connection: %+v", keep)
			}
			// Five requests, two of them half a second apart: four bursts.
			if want := (flow.Bursts{N: 4, At: []uint32{100, 60100, 120100, 180100}, Head: 4}); !reflect.DeepEqual(keep.Bursts, want) {
				t.Errorf("bursts %+v, want %+v", keep.Bursts, want)
			}
			plain := byUIDTime(recs, 1700000002)
			if plain.Name != "telemetry.example.com" || plain.NameSource != flow.NameSNI || plain.ProxyDest != "" || plain.HTTPTarget != "" {
				t.Errorf("tls connection: %+v", plain)
			}
			dns := byUIDTime(recs, 1700000001)
			if dns.Name != "telemetry.example.com" || dns.NameSource != flow.NameDNS ||
				!reflect.DeepEqual(dns.Answers, []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::7")}) {
				t.Errorf("dns connection: %+v", dns)
			}
		})
	}
}

func TestJoinDamage(t *testing.T) {
	full := gz([]byte(joinConn + strings.Repeat("1700000003.000000\tCx\t10.0.0.5\t1\t192.0.2.1\t443\ttcp\t-\t1\t1\t1\tSF\tShAD\t1\t1\t1\t1\n", 2000)))
	tests := []struct {
		name       string
		files      map[string][]byte
		wantRecs   int
		wantDamage []string // substrings of the damage places, in order
		damaged    int
		unused     int
	}{
		{
			name:  "uids that match no conn row",
			files: map[string][]byte{"conn.log": []byte(joinConn), "http.log": []byte(strings.ReplaceAll(joinHTTP, "Ckeep1", "Cgone"))},
			// The three conn rows, and the requests of the missing
			// connection as a record of their own.
			wantRecs:   4,
			wantDamage: []string{"1 connections named by http, ssl or dns rows are in no conn log given", "http.log:8: uid in no conn log"},
			damaged:    1,
		},
		{
			name:     "http rows without their conn log: no damage",
			files:    map[string][]byte{"http.log": []byte(joinHTTP)},
			wantRecs: 1,
		},
		{
			name:       "a header without a needed field",
			files:      map[string][]byte{"conn.log": []byte(strings.Replace(joinConn, "\tid.resp_p\t", "\tid.resp_port\t", 1))},
			wantDamage: []string{"conn.log: lines 8-10 (3 rows): bad port"},
			damaged:    3,
		},
		{
			name:       "a gzip member cut short",
			files:      map[string][]byte{"conn.log.gz": full[:len(full)*2/3]},
			wantRecs:   -1, // some: every row before the cut
			wantDamage: []string{"conn.log.gz: cut short after line"},
			damaged:    1,
		},
		{
			name:     "logs hunt does not read are named",
			files:    map[string][]byte{"conn.log": []byte(joinConn), "x509.log": []byte("#separator \\x09\n#path\tx509\n#fields\tts\tid\tcertificate.version\n1700000000.0\tF1\t3\n")},
			wantRecs: 3,
			unused:   1,
		},
		{
			name:       "a row of no known log",
			files:      map[string][]byte{"mystery.log": []byte(`{"note":"hello"}` + "\n")},
			wantDamage: []string{"mystery.log: line 1: no field says which log the row belongs to"},
			damaged:    1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, rp := join(t, writeFiles(t, tc.files))
			if tc.wantRecs >= 0 && len(recs) != tc.wantRecs || tc.wantRecs < 0 && (len(recs) < 100 || len(recs) > 2002) {
				t.Errorf("%d records", len(recs))
			}
			if rp.Damaged != tc.damaged || len(rp.Unused) != tc.unused || len(rp.Damage) < len(tc.wantDamage) {
				t.Fatalf("report %+v", rp)
			}
			for i, want := range tc.wantDamage {
				if !strings.Contains(rp.Damage[i].Place, want) {
					t.Errorf("damage %d %q, want %q", i, rp.Damage[i].Place, want)
				}
			}
		})
	}
}

func TestJoinRealProxyLogs(t *testing.T) {
	// RITA's proxy_rolling: a client behind a Squid proxy, and the proxy.
	dir := testenv.SharedFile(t, "zeek", "real-lab", "rita-proxy-rolling")
	paths, _ := filepath.Glob(filepath.Join(dir, "*.log.gz"))
	recs, rp := join(t, paths)
	if len(rp.Unused) != 7 { // capture_loss, known_certs, stats, x509
		t.Errorf("unused %v", rp.Unused)
	}
	var proxied, named, bursty int
	for _, r := range recs {
		if r.ProxyDest != "" {
			proxied++
			if r.Resp != netip.MustParseAddr("10.0.0.238") || r.RespPort != 3128 {
				t.Errorf("proxied request not to the proxy: %+v", r)
			}
		}
		if r.Name != "" {
			named++
		}
		if r.Bursts.N > 1 {
			bursty++
		}
	}
	t.Logf("%d records: %d proxied, %d named, %d with several bursts; %d damaged", len(recs), proxied, named, bursty, rp.Damaged)
	// The proxy's upstream requests name the client (X-Forwarded-For),
	// whose own requests to the proxy are logged: nothing is reattributed.
	if rp.Forwarded != 0 {
		t.Errorf("%d connections attributed to a forwarded-for client", rp.Forwarded)
	}
	if proxied < 300 || named < 2000 || bursty < 20 {
		t.Errorf("%d proxied, %d named, %d with bursts", proxied, named, bursty)
	}
}

func FuzzNextRow(f *testing.F) {
	f.Add([]byte(joinConn + joinHTTP))
	f.Add([]byte(joinSSL + joinDNS))
	f.Add([]byte(`{"_path":"dns","ts":1,"uid":"C","answers":["1.2.3.4",["x"],"` + "\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewReader(strings.NewReader(string(in)))
		if err != nil {
			return
		}
		var row Row
		for range 10000 {
			err := r.NextRow(&row)
			if err != nil {
				if _, ok := err.(*RowError); ok {
					continue
				}
				return
			}
			if len(row.Answers) > flow.MaxAnswers {
				t.Fatalf("%d answers", len(row.Answers))
			}
			if row.Kind == KindConn && (!row.Conn.Orig.IsValid() || row.Conn.Last.Before(row.Conn.First)) {
				t.Fatalf("bad conn row %+v", row.Conn)
			}
		}
		t.Fatal("reader did not finish")
	})
}

func TestBurstsOf(t *testing.T) {
	base := time.Unix(1700000000, 0).UnixNano()
	var times []int64
	for i := range 100 {
		times = append(times, base+int64(i)*int64(time.Minute))
	}
	bu := burstsOf(times, 5, base, base+int64(99*time.Minute))
	if bu.N != 105 || len(bu.At) != flow.MaxBursts || int(bu.Head) != flow.MaxBursts/2 ||
		bu.At[31] != 31*60000 || bu.At[32] != 68*60000 || bu.At[63] != 99*60000 {
		t.Errorf("%+v", bu)
	}
}

func TestJoinForwardedFor(t *testing.T) {
	// A sensor outside the proxy logs only the proxy's connections; the
	// proxy named its client in X-Forwarded-For (Zeek's proxied set, the
	// last address being the one the proxy added).
	conn := "#separator \\x09\n#set_separator\t,\n#path\tconn\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\torig_bytes\tresp_bytes\tconn_state\n" +
		"1700000000.0\tCup1\t10.0.0.238\t40000\t192.0.2.77\t80\ttcp\t0.5\t300\t200\tSF\n" +
		"1700000060.0\tCup2\t10.0.0.238\t40001\t192.0.2.78\t80\ttcp\t0.5\t300\t200\tSF\n"
	http := "#separator \\x09\n#set_separator\t,\n#path\thttp\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tmethod\thost\turi\tproxied\n" +
		"1700000000.1\tCup1\t10.0.0.238\t40000\t192.0.2.77\t80\tPOST\tupdate-check.example.net\t/ping\tVIA -> 1.1 prx01,X-FORWARDED-FOR -> 203.0.113.9\\x2c 10.20.1.36\n"
	json := `{"_path":"http","ts":1700000060.1,"uid":"Cup2","id.orig_h":"10.0.0.238","id.orig_p":40001,"id.resp_h":"192.0.2.78","id.resp_p":80,"method":"GET","host":"a.example","uri":"/","proxied":["VIA -> 1.1 prx01","X-FORWARDED-FOR -> 10.20.1.40"]}` + "\n"
	recs, rp := join(t, writeFiles(t, map[string][]byte{"conn.log": []byte(conn), "http.log": []byte(http), "http.json": []byte(json)}))
	if len(recs) != 2 || rp.Forwarded != 2 || rp.Damaged != 0 {
		t.Fatalf("%d records, report %+v", len(recs), rp)
	}
	if a, b := byUIDTime(recs, 1700000000), byUIDTime(recs, 1700000060); a.Orig != netip.MustParseAddr("10.20.1.36") || b.Orig != netip.MustParseAddr("10.20.1.40") {
		t.Errorf("originators %v and %v", a.Orig, b.Orig)
	}
	// When the client's own request to the proxy is logged too, the
	// proxy's connection stays the proxy's (hunt counts it as relayed).
	clientLeg := "#separator \\x09\n#set_separator\t,\n#path\thttp\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tmethod\thost\turi\n" +
		"1700000000.05\tCcli\t10.20.1.36\t50000\t10.0.0.238\t3128\tPOST\tupdate-check.example.net\thttp://update-check.example.net/ping\n"
	recs, rp = join(t, writeFiles(t, map[string][]byte{"conn.log": []byte(conn), "http.log": []byte(http), "client.log": []byte(clientLeg)}))
	if a := byUIDTime(recs, 1700000000); a == nil || a.Orig != netip.MustParseAddr("10.0.0.238") || rp.Forwarded != 0 {
		t.Errorf("with the client's leg: %+v, forwarded %d", a, rp.Forwarded)
	}
}

// TestJoinSSLCertificate: ssl.log's certificate facts join their
// connections as the packets' do (flow format 3): Zeek 3's TSV with
// subject and issuer, and the validate-certs policy's validation_status.
func TestJoinSSLCertificate(t *testing.T) {
	conn := "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n" +
		"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\n" +
		"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tstring\tcount\tcount\tcount\tcount\n" +
		"1700000001.000000\tCasync\t10.0.0.5\t49207\t198.51.100.39\t4041\ttcp\tssl\t60\t600\t4000\tSF\tShADadFf\t8\t900\t8\t4400\n" +
		"1700000002.000000\tCdcrat\t10.0.0.5\t49221\t198.51.100.11\t7084\ttcp\tssl\t60\t600\t4000\tSF\tShADadFf\t8\t900\t8\t4400\n" +
		"1700000003.000000\tCpublic\t10.0.0.5\t49300\t192.0.2.80\t443\ttcp\tssl\t1\t600\t4000\tSF\tShADadFf\t8\t900\t8\t4400\n" +
		"1700000004.000000\tCtls13\t10.0.0.5\t49301\t192.0.2.81\t443\ttcp\tssl\t1\t600\t4000\tSF\tShADadFf\t8\t900\t8\t4400\n" +
		"1700000005.000000\tCchain\t10.0.0.5\t49302\t192.0.2.82\t8443\ttcp\tssl\t1\t600\t4000\tSF\tShADadFf\t8\t900\t8\t4400\n" +
		"1700000006.000000\tCplain\t10.0.0.5\t49303\t192.0.2.83\t80\ttcp\thttp\t1\t600\t4000\tSF\tShADadFf\t8\t900\t8\t4400\n"
	// Zeek 3.0 ssl.log fields (subject and issuer), with validation_status.
	ssl := "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tssl\n" +
		"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tversion\tcipher\tcurve\tserver_name\tresumed\tlast_alert\tnext_protocol\testablished\tcert_chain_fuids\tclient_cert_chain_fuids\tsubject\tissuer\tclient_subject\tclient_issuer\tvalidation_status\n" +
		"#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tstring\tstring\tstring\tbool\tstring\tstring\tbool\tvector[string]\tvector[string]\tstring\tstring\tstring\tstring\tstring\n" +
		"1700000001.1\tCasync\t10.0.0.5\t49207\t198.51.100.39\t4041\tTLSv10\tTLS_RSA_WITH_AES_256_CBC_SHA\t-\t-\tF\t-\t-\tT\tFa\t(empty)\tCN=AsyncRAT Server\tCN=AsyncRAT Server\t-\t-\tself signed certificate\n" +
		"1700000002.1\tCdcrat\t10.0.0.5\t49221\t198.51.100.11\t7084\tTLSv10\tTLS_RSA_WITH_AES_256_CBC_SHA\t-\t-\tF\t-\t-\tT\tFb\t(empty)\tCN=DcRat\tCN=DcRat Server,OU=qwqdanchun,O=DcRat By qwqdanchun,L=SH,C=CN\t-\t-\tunable to get local issuer certificate\n" +
		"1700000003.1\tCpublic\t10.0.0.5\t49300\t192.0.2.80\t443\tTLSv12\tTLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\tx25519\twww.example.com\tF\t-\th2\tT\tFc,Fd\t(empty)\tCN=www.example.com,O=Example\\, Inc.,C=US\tCN=Example CA 1,O=Example CA\tT\t-\tok\n" +
		"1700000004.1\tCtls13\t10.0.0.5\t49301\t192.0.2.81\t443\tTLSv13\tTLS_AES_128_GCM_SHA256\tx25519\tcdn.example.net\tF\t-\th2\tT\t-\t-\t-\t-\t-\t-\t-\n" +
		"1700000005.1\tCchain\t10.0.0.5\t49302\t192.0.2.82\t8443\tTLSv12\tTLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\tx25519\t-\tF\t-\t-\tT\tFe,Ff\t(empty)\tO=Lab\\, Ltd,CN=lab-server\tCN=Lab Root\t-\t-\tself signed certificate in certificate chain\n"
	paths := writeFiles(t, map[string][]byte{"conn.log": []byte(conn), "ssl.log": []byte(ssl)})
	recs, rp := join(t, paths)
	if rp.Damaged != 0 || len(recs) != 6 {
		t.Fatalf("%d records, report %+v", len(recs), rp)
	}
	tests := []struct {
		ts   int64
		want flow.TLSCert
	}{
		{1700000001, flow.TLSCert{Flags: flow.TLSCertSeen | flow.TLSSelfSigned | flow.TLSNoSNI, SubjectCN: "AsyncRAT Server", IssuerCN: "AsyncRAT Server"}},
		{1700000002, flow.TLSCert{Flags: flow.TLSCertSeen | flow.TLSIssuerAbsent | flow.TLSNoSNI, SubjectCN: "DcRat", IssuerCN: "DcRat Server"}},
		{1700000003, flow.TLSCert{Flags: flow.TLSCertSeen, SubjectCN: "www.example.com", IssuerCN: "Example CA 1"}},
		{1700000004, flow.TLSCert{}},
		{1700000005, flow.TLSCert{Flags: flow.TLSCertSeen | flow.TLSIssuerAbsent | flow.TLSNoSNI, SubjectCN: "lab-server", IssuerCN: "Lab Root"}},
		{1700000006, flow.TLSCert{}}, // no ssl.log row: nothing said of TLS
	}
	for _, tc := range tests {
		if r := byUIDTime(recs, tc.ts); r == nil || r.TLS != tc.want {
			t.Errorf("%d: got %+v, want %+v", tc.ts, r.TLS, tc.want)
		}
	}
	// Newer Zeek JSON without subject, issuer or validation_status: only
	// whether the client named a server.
	js := `{"_path":"ssl","ts":1700000001.2,"uid":"Casync","id.orig_h":"10.0.0.5","id.orig_p":49207,"id.resp_h":"198.51.100.39","id.resp_p":4041,"version":"TLSv12","cipher":"TLS_RSA_WITH_AES_256_CBC_SHA","established":true}` + "\n"
	recs, _ = join(t, writeFiles(t, map[string][]byte{"conn.log": []byte(conn), "ssl.log": []byte(js)}))
	if r := byUIDTime(recs, 1700000001); r.TLS != (flow.TLSCert{Flags: flow.TLSNoSNI}) {
		t.Errorf("JSON without certificate fields: %+v", r.TLS)
	}
}

func TestDNCN(t *testing.T) {
	for in, want := range map[string]string{
		"CN=a":                          "a",
		"O=x\\, CN=y,CN=b":              "b",
		"C=US,CN=Example\\, Inc.":       "Example, Inc.",
		"CN=one+OU=two":                 "one",
		"OU=z":                          "",
		"CN=\\1b[31m" + "red":           "?[31mred",
		"cn=low":                        "low",
		"":                              "",
		"CN=" + strings.Repeat("é", 50): strings.Repeat("é", 32),
	} {
		if got := dnCN([]byte(in)); got != want {
			t.Errorf("dnCN(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzDNCN(f *testing.F) {
	f.Add([]byte("CN=DcRat Server,OU=qwqdanchun,O=DcRat By qwqdanchun,L=SH,C=CN"))
	f.Add([]byte("O=a\\, b,CN=\\x1b\\41"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s := dnCN(b); len(s) > flow.MaxCN || !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\x1b\n\r\t") {
			t.Fatalf("dnCN(%q) = %q", b, s)
		}
	})
}

// TestJoinDNSQuestions: every dns.log row's client, query and type reach
// the DNS callback, TSV (qtype_name after qtype wins; unset "-" is empty)
// and JSON alike, several rows of one connection
// each; rows without a query or client are not handed over.
func TestJoinDNSQuestions(t *testing.T) {
	tsv := "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n" +
		"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tquery\tqtype\tqtype_name\tanswers\n" +
		"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tcount\tstring\tvector[string]\n" +
		"1700000001.000000\tCt1\t10.0.0.5\t40000\t10.0.0.53\t53\tudp\tab1.t.example.com\t16\tTXT\t-\n" +
		"1700000001.500000\tCt1\t10.0.0.5\t40000\t10.0.0.53\t53\tudp\tab2.t.example.com\t10\tNULL\t-\n" +
		"1700000002.000000\tCt2\t10.0.0.5\t40001\t10.0.0.53\t53\tudp\twww.example.org\t-\t-\t-\n" +
		"1700000003.000000\tCt3\t10.0.0.5\t40002\t10.0.0.53\t53\tudp\t-\t-\t-\t-\n"
	for _, tc := range []struct {
		name, file string
		body       []byte
		want       []DNSQuestion
	}{
		{"tsv", "dns.log", []byte(tsv), []DNSQuestion{
			{netip.MustParseAddr("10.0.0.5"), "ab1.t.example.com", "TXT"},
			{netip.MustParseAddr("10.0.0.5"), "ab2.t.example.com", "NULL"},
			{netip.MustParseAddr("10.0.0.5"), "www.example.org", ""},
		}},
		{"json", "dns.json", []byte(joinDNS), []DNSQuestion{{netip.MustParseAddr("10.0.0.111"), "telemetry.example.com", "A"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			paths := writeFiles(t, map[string][]byte{tc.file: tc.body})
			var got []DNSQuestion
			if _, err := JoinDNS(paths, func(*flow.Record) {}, func(q DNSQuestion) { got = append(got, q) }); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("questions %+v, want %+v", got, tc.want)
			}
		})
	}
}
