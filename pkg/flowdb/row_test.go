package flowdb

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

func goodRow() Row {
	a := string(addr16(mustAddr("10.0.0.1")))
	return Row{Sensor: "s", Shard: "x", First: 1_000_000, Last: 5_000_000, Proto: 6, Orig: a, Resp: a,
		Answers: []string{a}, Bursts: 3, BurstHead: 2, BurstMs: []uint32{0, 1000, 4000}}
}

func TestRowChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Row)
		err  string
	}{
		{"good", func(*Row) {}, ""},
		{"short address", func(r *Row) { r.Orig = "abc" }, "address"},
		{"time backwards", func(r *Row) { r.Last = r.First - 1 }, "before"},
		{"too many answers", func(r *Row) { r.Answers = make([]string, 33) }, "answers"},
		{"bad answer", func(r *Row) { r.Answers = []string{"x"} }, "answer of 1 bytes"},
		{"head past starts", func(r *Row) { r.BurstHead = 4 }, "burst series"},
		{"more starts than bursts", func(r *Row) { r.Bursts = 2 }, "burst series"},
		{"too many starts", func(r *Row) { r.BurstMs = make([]uint32, 65); r.Bursts = 65 }, "burst series"},
		{"starts backwards", func(r *Row) { r.BurstMs = []uint32{0, 2000, 1000} }, "out of order"},
		{"start past the end", func(r *Row) { r.BurstMs = []uint32{0, 1000, 9000} }, "past the flow's end"},
		{"name source", func(r *Row) { r.NameSource = 9 }, "name_source"},
		{"long target", func(r *Row) { r.Target = strings.Repeat("a", flow.MaxTarget+1) }, "too long"},
		{"undefined tls flag", func(r *Row) { r.TLSFlags = 0x81 }, "tls_flags"},
		{"self-signed unseen", func(r *Row) { r.TLSFlags = uint8(flow.TLSSelfSigned) }, "tls_flags"},
		{"name unseen", func(r *Row) { r.TLSFlags, r.CertSubject = uint8(flow.TLSNoSNI), "x" }, "tls_flags"},
		{"long subject", func(r *Row) { r.TLSFlags, r.CertSubject = uint8(flow.TLSCertSeen), strings.Repeat("a", flow.MaxCN+1) }, "tls_flags"},
	} {
		row := goodRow()
		tc.mod(&row)
		var r flow.Record
		err := row.Record(&r)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}

// FuzzRowRecord: any row the database hands back either makes a record
// that keeps the flow format's invariants or is refused; none panics.
func FuzzRowRecord(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef"), int64(0), int64(1e6), uint32(2), uint8(1), []byte{0, 0, 0, 0, 1, 0, 0, 0}, 1)
	f.Fuzz(func(t *testing.T, addrs []byte, first, last int64, bursts uint32, head uint8, ms []byte, answers int) {
		row := Row{First: first, Last: last, Bursts: bursts, BurstHead: head}
		if len(addrs) >= 32 {
			row.Orig, row.Resp = string(addrs[:16]), string(addrs[16:32])
		} else {
			row.Orig = string(addrs)
		}
		for i := 0; i+4 <= len(ms) && i < 4*80; i += 4 {
			row.BurstMs = append(row.BurstMs, binary.LittleEndian.Uint32(ms[i:]))
		}
		for i := 0; i < answers%40; i++ {
			row.Answers = append(row.Answers, row.Orig)
		}
		var r flow.Record
		if row.Record(&r) != nil {
			return
		}
		if len(r.Bursts.At) > flow.MaxBursts || int(r.Bursts.Head) > len(r.Bursts.At) || r.Last.Before(r.First) || len(r.Answers) > maxAnswers {
			t.Fatalf("accepted a row that breaks the format: %+v", r)
		}
		r.Bursts.Runs(func([]uint32) {})
	})
}

// FuzzUnpackPair: packed records from the server are decoded through
// bounds checks: any bytes give rows or an error, never a panic, and no
// row claims more burst starts than a record keeps.
func FuzzUnpackPair(f *testing.F) {
	rec := make([]byte, pairFixed+1, pairFixed+16)
	rec[pairFixed] = 2
	rec = append(rec, 1, 0, 0, 0, 2, 0, 0, 0, 3, 'a', ':', '1')
	f.Add(rec)
	f.Add(append(slices.Clone(rec), rec...))
	f.Add(rec[:len(rec)-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := unpackPair(b, nil, "", "")
		if err != nil {
			return
		}
		for _, r := range rows {
			if len(r.BurstMs) > 255 || len(r.Proxy) > 255 {
				t.Fatalf("row %+v", r)
			}
			var fr flow.Record
			r.Record(&fr)
		}
	})
}

// TestUnpackPairNames: certificate names of every length a record can
// carry (up to 255 bytes, the one-byte length's limit) decode, and the
// next record starts after them; a name cut short is an error.
func TestUnpackPairNames(t *testing.T) {
	record := func(subject, issuer string, cut int) []byte {
		b := make([]byte, pairFixed+1) // no burst starts
		b = append(b, 0, 1)            // no proxy destination; TLS flags
		b = append(append(b, byte(len(subject))), subject...)
		b = append(append(b, byte(len(issuer))), issuer...)
		return b[:len(b)-cut]
	}
	long := strings.Repeat("s", 255)
	for _, c := range []struct {
		name    string
		b       []byte
		rows    int
		subject string
		issuer  string
		err     bool
	}{
		{"short names", record("host.example", "ca", 0), 1, "host.example", "ca", false},
		{"255-byte subject", record(long, "ca", 0), 1, long, "ca", false},
		{"255-byte names, then a record", append(record(long, long, 0), record("b", "c", 0)...), 2, long, long, false},
		{"255-byte subject cut short", record(long, "", 200), 0, "", "", true},
		{"issuer cut short", record("a", "issuer", 1), 0, "", "", true},
	} {
		rows, err := unpackPair(c.b, nil, "o", "r")
		if (err != nil) != c.err || len(rows) != c.rows {
			t.Errorf("%s: %d rows, error %v", c.name, len(rows), err)
			continue
		}
		if c.rows > 0 && (rows[0].CertSubject != c.subject || rows[0].CertIssuer != c.issuer || rows[0].TLSFlags != 1) {
			t.Errorf("%s: subject %d bytes, issuer %q, flags %d", c.name, len(rows[0].CertSubject), rows[0].CertIssuer, rows[0].TLSFlags)
		}
		if c.rows == 2 && (rows[1].CertSubject != "b" || rows[1].CertIssuer != "c") {
			t.Errorf("%s: second record %+v", c.name, rows[1])
		}
	}
}
