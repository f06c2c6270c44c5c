package flow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func sampleRecords() []*Record {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 123, time.UTC)
	return []*Record{
		{First: t0.Add(time.Second), Last: t0.Add(3 * time.Second), Proto: 6, Orig: netip.MustParseAddr("10.0.0.1"), Resp: netip.MustParseAddr("192.0.2.7"),
			OrigPort: 50000, RespPort: 443, VLAN: 12, OrigPkts: 10, RespPkts: 8, OrigBytes: 1200, RespBytes: 9000, OrigData: 700, RespData: 8600,
			OrigFlags: 0x1b, RespFlags: 0x1a, Name: "cdn.example.net", NameSource: NameSNI},
		{First: t0, Last: t0.Add(2 * time.Millisecond), Proto: 17, Orig: netip.MustParseAddr("2001:db8::1"), Resp: netip.MustParseAddr("2001:db8::53"),
			OrigPort: 5353, RespPort: 53, OrigPkts: 1, RespPkts: 1, Name: "www.example.org", NameSource: NameDNS,
			Answers: []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::80")}, Partial: true},
	}
}

// sampleRecordsV2 adds what version 2 carries to the sample: a kept-alive
// connection's bursts with the middle dropped, an HTTP target and a proxy
// destination.
func sampleRecordsV2() []*Record {
	recs := sampleRecords()
	at := make([]uint32, 0, MaxBursts)
	for i := range MaxBursts / 2 {
		at = append(at, uint32(i)*60000+15)
	}
	for i := range MaxBursts / 2 {
		at = append(at, uint32(1000+i)*60000+15)
	}
	recs[0].Last = recs[0].First.Add(24 * time.Hour)
	recs[0].Bursts = Bursts{N: 1032, At: at, Head: MaxBursts / 2}
	recs[0].HTTPTarget = "cdn.example.net:443"
	recs[0].ProxyDest = "cdn.example.net:443"
	recs[1].Bursts = Bursts{N: 2, At: []uint32{0, 1}, Head: 2}
	return recs
}

// sampleRecordsV3 adds the certificate facts of version 3.
func sampleRecordsV3() []*Record {
	recs := sampleRecordsV2()
	recs[0].TLS = TLSCert{Flags: TLSCertSeen | TLSSelfSigned | TLSNoSNI, SubjectCN: "Test Server", IssuerCN: "Test Server"}
	return recs
}

func TestCodecRoundTrip(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	dec, _ := zstd.NewReader(nil)
	in := sampleRecordsV3()
	b := EncodeFile(in, enc)
	got, fi, err := DecodeFile(b, dec)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Records != 2 || !fi.First.Equal(in[1].First) || !fi.Last.Equal(in[0].Last) {
		t.Errorf("info %+v", fi)
	}
	want := []*Record{in[1], in[0]} // the file is sorted by first time
	for i := range want {
		if !reflect.DeepEqual(got[i], *want[i]) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], *want[i])
		}
	}
	if _, _, err := DecodeFile(b[:30], dec); !errors.Is(err, ErrNotFlowFile) {
		t.Errorf("short file: %v", err)
	}
	bad := bytes.Clone(b)
	bad[len(bad)-2] ^= 1
	if _, _, err := DecodeFile(bad, dec); !errors.Is(err, ErrDamaged) {
		t.Errorf("flipped body: %v", err)
	}
}

// TestReadsOldVersions decodes files the version 1 encoder (before
// bursts, targets and proxy destinations) and the version 2 encoder
// (before the certificate facts) wrote: old stores stay readable.
func TestReadsOldVersions(t *testing.T) {
	dec, _ := zstd.NewReader(nil)
	for _, tc := range []struct {
		file    string
		version uint16
		records func() []*Record
	}{
		{"testdata/v1.flows", 1, sampleRecords},
		{"testdata/v2.flows", 2, sampleRecordsV2},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if v := binary.LittleEndian.Uint16(b[4:]); v != tc.version {
				t.Fatalf("fixture is version %d", v)
			}
			got, fi, err := DecodeFile(b, dec)
			if err != nil {
				t.Fatal(err)
			}
			in := tc.records()
			want := []*Record{in[1], in[0]}
			if fi.Records != 2 || len(got) != 2 {
				t.Fatalf("%d records (header %d)", len(got), fi.Records)
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], *want[i]) {
					t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], *want[i])
				}
			}
			// A version nobody wrote is refused, not guessed at.
			bad := bytes.Clone(b)
			binary.LittleEndian.PutUint16(bad[4:], FileVersion+1)
			binary.LittleEndian.PutUint32(bad[40:], crc32.Checksum(bad[:40], castagnoli))
			if _, _, err := DecodeFile(bad, dec); !errors.Is(err, ErrFileVersion) {
				t.Errorf("version %d: %v", FileVersion+1, err)
			}
		})
	}
}

// TestDecodeV3Damage: certificate facts the format cannot hold stop the
// reader at that record.
func TestDecodeV3Damage(t *testing.T) {
	r := sampleRecordsV3()[0]
	good := appendRecord(nil, r)
	if _, rest, ok := decodeRecord(good, FileVersion); !ok || len(rest) != 0 {
		t.Fatal("good record refused")
	}
	// The version 3 tail: flags, subject length and name, issuer length and name.
	tail := len(good) - (1 + 1 + len(r.TLS.SubjectCN) + 1 + len(r.TLS.IssuerCN))
	tests := []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"undefined flag", func(b []byte) []byte { b[tail] |= 0x80; return b }},
		{"self-signed without a certificate", func(b []byte) []byte { b[tail] = byte(TLSSelfSigned); return b }},
		{"name without a certificate", func(b []byte) []byte { b[tail] = byte(TLSNoSNI); return b }},
		{"subject too long", func(b []byte) []byte { b[tail+1] = MaxCN + 1; return b }},
		{"issuer past the end", func(b []byte) []byte { return b[:len(b)-1] }},
		{"no flags", func(b []byte) []byte { return b[:tail] }},
	}
	for _, tc := range tests {
		b := tc.edit(bytes.Clone(good))
		if _, _, ok := decodeRecord(b, FileVersion); ok {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	// The writer never writes what the reader refuses.
	odd := *r
	odd.TLS = TLSCert{Flags: TLSSelfSigned | 0x40, SubjectCN: strings.Repeat("x", 100)}
	if got, _, ok := decodeRecord(appendRecord(nil, &odd), FileVersion); !ok || got.TLS != (TLSCert{}) {
		t.Errorf("odd facts written as %+v, %v", got.TLS, ok)
	}
}

// TestDecodeV2Damage: every inconsistency of the version 2 fields stops the
// reader at that record, keeping the ones before.
func TestDecodeV2Damage(t *testing.T) {
	r := sampleRecordsV2()[1]
	good := appendRecord(nil, r)
	good = good[:len(good)-3] // as version 2 wrote it: no certificate facts
	// The version 2 tail: bursts, kept, head, two deltas, target length,
	// proxy length, one byte each.
	tail := len(good) - 7
	tests := []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"kept above the maximum", func(b []byte) []byte { b[tail+1] = MaxBursts + 1; return b }},
		{"head above kept", func(b []byte) []byte { b[tail+2] = 3; return b }},
		{"kept above bursts", func(b []byte) []byte { b[tail] = 1; return b }},
		{"start past the end", func(b []byte) []byte { b[tail+4] = 100; return b }},
		{"head short without a full series", func(b []byte) []byte { b[tail+2] = 1; return b }},
		{"target longer than the rest", func(b []byte) []byte { b[tail+5] = 9; return b }},
		{"proxy longer than the rest", func(b []byte) []byte { b[tail+6] = 1; return b }},
		{"cut in the series", func(b []byte) []byte { return b[:tail+4] }},
		{"varint overflow", func(b []byte) []byte {
			return append(b[:tail:tail], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)
		}},
	}
	if _, rest, ok := decodeRecord(good, fileVersion2); !ok || len(rest) != 0 {
		t.Fatalf("good record: ok %v, %d bytes left", ok, len(rest))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, ok := decodeRecord(tc.edit(bytes.Clone(good)), fileVersion2); ok {
				t.Error("decoded")
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecordsV3() {
		f.Add(appendRecord(nil, r), true)
	}
	f.Add(appendRecord(nil, sampleRecords()[0])[:120], false)
	f.Fuzz(func(t *testing.T, b []byte, v2 bool) {
		version := uint16(fileVersion1)
		if v2 {
			version = FileVersion
		}
		for len(b) > 0 {
			r, rest, ok := decodeRecord(b, version)
			if !ok {
				return
			}
			if len(rest) >= len(b) {
				t.Fatal("decodeRecord consumed nothing")
			}
			bu := r.Bursts
			if len(bu.At) > MaxBursts || int(bu.Head) > len(bu.At) || uint64(len(bu.At)) > uint64(bu.N) ||
				len(r.HTTPTarget) > MaxTarget || len(r.ProxyDest) > maxProxyDest {
				t.Fatalf("out of bounds: %+v", r)
			}
			if !slices.IsSorted(bu.At) {
				t.Fatalf("bursts out of order: %v", bu.At)
			}
			// What was read is written back the same way (unless the
			// times overflow, which the encoder cannot say).
			if d := r.Last.Sub(r.First); d < 0 || d > 1<<62 {
				b = rest
				continue
			}
			again, _, ok := decodeRecord(appendRecord(nil, &r), FileVersion)
			if !ok || !reflect.DeepEqual(again.Bursts, r.Bursts) || again.HTTPTarget != r.HTTPTarget || again.ProxyDest != r.ProxyDest || again.TLS != r.TLS {
				t.Fatalf("re-encoding changed the record:\n%+v\n%+v", r, again)
			}
			b = rest
		}
	})
}
