package flow

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkBuilder runs a mix of short TCP connections and DNS exchanges
// between 200 clients and 50 servers through Add.
func BenchmarkBuilder(b *testing.B) {
	type pkt struct {
		ts time.Time
		f  []byte
	}
	var pkts []pkt
	var bytes int
	ts := t0
	for i := range 2000 {
		c := netip.AddrFrom4([4]byte{10, 0, byte(i % 200 / 250), byte(1 + i%200)})
		s := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%50)})
		cp := uint16(40000 + i)
		seq := uint32(i * 7919)
		add := func(sp frameSpec) {
			f := frame(sp)
			pkts = append(pkts, pkt{ts, f})
			bytes += len(f)
			ts = ts.Add(time.Millisecond)
		}
		add(frameSpec{src: c, dst: s, sport: cp, dport: 443, proto: 6, flags: 0x02, seq: seq})
		add(frameSpec{src: s, dst: c, sport: 443, dport: cp, proto: 6, flags: 0x12, ack: seq + 1})
		add(frameSpec{src: c, dst: s, sport: cp, dport: 443, proto: 6, flags: 0x10, seq: seq + 1})
		add(frameSpec{src: c, dst: s, sport: cp, dport: 443, proto: 6, flags: 0x18, seq: seq + 1, payload: make([]byte, 40), wirePay: 600})
		for range 6 {
			add(frameSpec{src: s, dst: c, sport: 443, dport: cp, proto: 6, flags: 0x10, payload: make([]byte, 40), wirePay: 1448})
		}
		add(frameSpec{src: c, dst: s, sport: cp, dport: 443, proto: 6, flags: 0x11, seq: seq + 601})
		add(frameSpec{src: s, dst: c, sport: 443, dport: cp, proto: 6, flags: 0x11})
		if i%4 == 0 {
			q := dnsMessage(uint16(i), "host.example.com", "")
			a := dnsMessage(uint16(i), "host.example.com", "", s)
			add(frameSpec{src: c, dst: addr("10.0.0.53"), sport: cp, dport: 53, proto: 17, payload: q})
			add(frameSpec{src: addr("10.0.0.53"), dst: c, sport: 53, dport: cp, proto: 17, payload: a})
		}
	}
	span := ts.Sub(t0)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := range b.N {
		bl := NewBuilder(Options{})
		shift := time.Duration(i) * span
		var next time.Time
		for _, p := range pkts {
			t := p.ts.Add(shift)
			bl.Add(t, 1, p.f, len(p.f))
			if t.After(next) {
				bl.Expire(t, func(*Record) { n++ })
				next = t.Add(time.Second)
			}
		}
		bl.Flush(func(*Record) { n++ })
	}
	b.ReportMetric(float64(len(pkts)*b.N)/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(float64(bytes*b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
}
