package zeek

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/flow"
)

const tsvHeader = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2022-06-17-00-00-07\n" +
	"#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tlabel\tdetailedlabel\n" +
	"#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tstring\tstring\n"

const tsvRow = "1655071198.444458\tCHLXQF2OBY4onAR0Ug\t147.32.81.167\t62771\t40.74.108.123\t443\ttcp\tssl\t1.135424\t1596\t4039\tSF\tT\tF\t5138\tShADdaFf\t14\t1016\t16\t1226\t(empty)\tBenign\tMicrosoft\n"

var wantRow = flow.Record{
	First: time.Unix(1655071198, 444458000).UTC(), Last: time.Unix(1655071198, 444458000).UTC().Add(1135424 * time.Microsecond),
	Proto: 6, Orig: netip.MustParseAddr("147.32.81.167"), Resp: netip.MustParseAddr("40.74.108.123"),
	OrigPort: 62771, RespPort: 443, OrigPkts: 14, RespPkts: 16, OrigBytes: 1016, RespBytes: 1226,
	OrigData: 1596, RespData: 4039, OrigFlags: 0x1b, RespFlags: 0x1b,
}

func readAll(t *testing.T, in []byte) ([]flow.Record, []*RowError) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	var recs []flow.Record
	var bad []*RowError
	for {
		var rec flow.Record
		err := r.Next(&rec)
		if err == io.EOF {
			return recs, bad
		}
		var re *RowError
		if errors.As(err, &re) {
			bad = append(bad, re)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestFormats(t *testing.T) {
	jsonDot := `{"ts":1655071198.444458,"uid":"CHLXQF2OBY4onAR0Ug","id.orig_h":"147.32.81.167","id.orig_p":62771,"id.resp_h":"40.74.108.123","id.resp_p":443,"proto":"tcp","service":"ssl","duration":1.135424,"orig_bytes":1596,"resp_bytes":4039,"conn_state":"SF","local_orig":true,"missed_bytes":5138,"history":"ShADdaFf","orig_pkts":14,"orig_ip_bytes":1016,"resp_pkts":16,"resp_ip_bytes":1226,"tunnel_parents":["a","b]"],"x":{"y":[1,2]}}` + "\n"
	jsonUnderscore := strings.NewReplacer("id.", "id_").Replace(jsonDot)
	jsonISO := strings.Replace(jsonDot, `"ts":1655071198.444458`, `"ts":"2022-06-12T21:59:58.444458Z"`, 1)
	tests := []struct {
		name string
		in   []byte
	}{
		{"tsv", []byte(tsvHeader + tsvRow)},
		{"tsv crlf", []byte(strings.ReplaceAll(tsvHeader+tsvRow, "\n", "\r\n"))},
		{"tsv gzip", gz([]byte(tsvHeader + tsvRow))},
		{"json dotted keys", []byte(jsonDot)},
		{"json underscore keys", []byte(jsonUnderscore)},
		{"json iso time", []byte(jsonISO)},
		{"json gzip", gz([]byte(jsonDot))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, bad := readAll(t, tc.in)
			if len(bad) != 0 || len(recs) != 1 {
				t.Fatalf("got %d records, bad %v", len(recs), bad)
			}
			if fmt.Sprintf("%+v", recs[0]) != fmt.Sprintf("%+v", wantRow) {
				t.Errorf("\n got %+v\nwant %+v", recs[0], wantRow)
			}
		})
	}
}

func TestMalformedRowsSkipped(t *testing.T) {
	rows := []string{
		tsvRow,
		"notatime\tC\t10.0.0.1\t1\t10.0.0.2\t2\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t40\t0\t0\t-\t-\t-\n",
		"1.5\tC\t10.0.0.999\t1\t10.0.0.2\t2\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t40\t0\t0\t-\t-\t-\n",
		"1.5\tC\t10.0.0.1\t70000\t10.0.0.2\t2\ttcp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t40\t0\t0\t-\t-\t-\n",
		"1.5\tC\t10.0.0.1\t1\t10.0.0.2\t2\tsctp\t-\t-\t-\t-\tS0\t-\t-\t0\tS\t1\t40\t0\t0\t-\t-\t-\n",
		"1.5\tC\t10.0.0.1\t1\t10.0.0.2\n",
		"1.5\tC\t10.0.0.1\t1\t10.0.0.2\t2\tudp\t-\t-1\t-\t-\tS0\t-\t-\t0\tS\t1\t40\t0\t0\t-\t-\t-\n",
		"1.5\tC\t10.0.0.1\t1\t10.0.0.2\t2\tudp\t-\t-\tx12\t-\tS0\t-\t-\t0\tS\t1\t40\t0\t0\t-\t-\t-\n",
		"{\"ts\":1.0,\"id.orig_h\":\"10.0.0.1\"\n",
		"{\"ts\":1.0,\"id.orig_h\":\"10.0.0.1\",\"id.orig_p\":1,\"id.resp_h\":\"::1\",\"id.resp_p\":2,\"proto\":\"udp\"}\n",
		"\x00\x01binary garbage\n",
		tsvRow,
	}
	recs, bad := readAll(t, []byte(tsvHeader+strings.Join(rows, "")))
	if len(recs) != 3 || len(bad) != len(rows)-3 {
		t.Fatalf("got %d records and %d bad rows: %v", len(recs), len(bad), bad)
	}
	if bad[0].Line != 10 {
		t.Errorf("first bad row reported at line %d, want 10", bad[0].Line)
	}
	// A row before any header.
	recs, bad = readAll(t, []byte(tsvRow+tsvHeader+tsvRow))
	if len(recs) != 1 || len(bad) != 1 {
		t.Errorf("row before header: %d records, %d bad", len(recs), len(bad))
	}
}

func TestHeaderBlocksAndUnset(t *testing.T) {
	// Concatenated hourly files repeat their headers, possibly with other fields.
	second := "#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tduration\n" +
		"100.25\t10.0.0.1\t5353\tff02::fb\t5353\tudp\t-\n#close\t2022\n"
	recs, bad := readAll(t, []byte(tsvHeader+tsvRow+second))
	if len(recs) != 2 || len(bad) != 0 {
		t.Fatalf("%d records, bad %v", len(recs), bad)
	}
	r := recs[1]
	if r.First != time.Unix(100, 250000000).UTC() || r.Last != r.First || r.OrigPkts != 0 || r.Resp != netip.MustParseAddr("ff02::fb") {
		t.Errorf("%+v", r)
	}
}

func TestLongLineSkipped(t *testing.T) {
	long := strings.Repeat("x", maxLine+10) + "\n"
	recs, bad := readAll(t, []byte(tsvHeader+long+tsvRow))
	if len(recs) != 1 || len(bad) != 1 {
		t.Fatalf("%d records, %d bad", len(recs), len(bad))
	}
}

func TestStratosphereLogs(t *testing.T) {
	// Every row of the real labelled logs parses.
	for _, name := range []string{"strato-001-njrat-conn.log.labeled", "strato-008-benign-conn.log.labeled"} {
		path := testenv.SharedFile(t, "zeek", name)
		r, err := OpenFile(path)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			var rec flow.Record
			err := r.Next(&rec)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			n++
		}
		r.Close()
		if n < 900 {
			t.Errorf("%s: only %d rows", name, n)
		}
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte(tsvHeader + tsvRow))
	f.Add([]byte(`{"ts":1.5,"id_orig_h":"10.0.0.1","id_orig_p":1,"id_resp_h":"10.0.0.2","id_resp_p":2,"proto":"tcp","history":"ShAD"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		for range 10000 {
			var rec flow.Record
			err := r.Next(&rec)
			if err == io.EOF {
				return
			}
			var re *RowError
			if err != nil && !errors.As(err, &re) {
				return // a read error of the gzip layer
			}
			if err == nil && (!rec.Orig.IsValid() || !rec.Resp.IsValid() || rec.Last.Before(rec.First)) {
				t.Fatalf("accepted a bad record %+v", rec)
			}
		}
		t.Fatal("reader did not finish")
	})
}

func BenchmarkTSV(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(tsvHeader)
	const rows = 20000
	for i := range rows {
		fmt.Fprintf(&buf, "%d.%06d\tC%x\t10.20.%d.%d\t%d\t198.18.%d.%d\t443\ttcp\t-\t0.204964\t513\t275\tSF\t-\t-\t0\tShADadFf\t5\t713\t3\t395\t-\t-\t-\n",
			1772409600+i, i%1000000, i, i%3, i%250, 40000+i%20000, i%200, i%250)
	}
	in := buf.Bytes()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, _ := NewReader(bytes.NewReader(in))
		var rec flow.Record
		for r.Next(&rec) == nil {
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

func BenchmarkJSON(b *testing.B) {
	var buf bytes.Buffer
	const rows = 20000
	for i := range rows {
		fmt.Fprintf(&buf, `{"ts":%d.%06d,"uid":"C%x","id.orig_h":"10.20.%d.%d","id.orig_p":%d,"id.resp_h":"198.18.%d.%d","id.resp_p":443,"proto":"tcp","duration":0.2,"orig_bytes":513,"resp_bytes":275,"conn_state":"SF","history":"ShADadFf","orig_pkts":5,"orig_ip_bytes":713,"resp_pkts":3,"resp_ip_bytes":395}`+"\n",
			1772409600+i, i%1000000, i, i%3, i%250, 40000+i%20000, i%200, i%250)
	}
	in := buf.Bytes()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, _ := NewReader(bytes.NewReader(in))
		var rec flow.Record
		for r.Next(&rec) == nil {
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
