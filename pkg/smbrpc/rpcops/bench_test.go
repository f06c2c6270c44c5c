package rpcops

import (
	"path/filepath"
	"testing"
)

// TestBigEndian decodes a few hand-built calls written with a big-endian
// data representation (rare, but legal: HP-UX and mainframe clients).
func TestBigEndian(t *testing.T) {
	build := func(f func(*sb)) []byte { s := newSB(false); s.big = true; f(s); return s.bytes() }
	c := Call{Interface: svcctlUUID, Opnum: 16, BigEndian: true,
		Request:  build(func(s *sb) { s.handle(h(1)).wstr("PSEXESVC").u32(0xf01ff) }),
		Response: build(func(s *sb) { s.handle(h(2)).status(0x424) })}
	check(t, Decode(c), want{op: "OpenServiceW", target: "PSEXESVC", fields: map[string]string{"access": "0x000f01ff"}})
	if d := Decode(c); d.Status != 0x424 {
		t.Fatalf("status %x", d.Status)
	}
	c = Call{Interface: lsaUUID, Opnum: 43, BigEndian: true,
		Request: build(func(s *sb) { s.handle(h(1)).ustr("G$BCKUPKEY_P").null() })}
	check(t, Decode(c), want{op: "RetrievePrivateData", target: "G$BCKUPKEY_P", technique: "T1555", phase: PhaseCredAccess})
}

// BenchmarkDecode decodes every call of the capture fixtures.
func BenchmarkDecode(b *testing.B) {
	files, _ := filepath.Glob("testdata/stubs/*.jsonl")
	var calls []Call
	var size int
	for _, f := range files {
		for _, sc := range loadStubs(b, f) {
			c, _ := sc.call(b, NewShared())
			calls = append(calls, c)
			size += len(c.Request) + len(c.Response)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		shared := NewShared()
		for _, c := range calls {
			s := Session{Shared: shared}
			s.Decode(c)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	b.ReportMetric(float64(len(calls)), "calls/op")
}
