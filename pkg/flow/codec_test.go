package flow

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
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

func TestCodecRoundTrip(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	dec, _ := zstd.NewReader(nil)
	in := sampleRecords()
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

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(appendRecord(nil, r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			_, rest, ok := decodeRecord(b)
			if !ok {
				return
			}
			if len(rest) >= len(b) {
				t.Fatal("decodeRecord consumed nothing")
			}
			b = rest
		}
	})
}
