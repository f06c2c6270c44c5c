package flow

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// addHandle adds an Ethernet frame and returns its flow's handle.
func addHandle(b *Builder, ts time.Time, f []byte) Handle {
	var p pkthdr.Packet
	pkthdr.Parse(1, f, &p)
	return b.AddParsedNanos(ts.UnixNano(), &p, f, len(f))
}

// fillTable opens n two-packet UDP flows, which fill a table of n.
func fillTable(b *Builder, ts time.Time, n int) {
	for i := range n {
		a, c := netip.AddrFrom4([4]byte{172, 16, 0, byte(i)}), addr("172.16.1.1")
		for _, rev := range []bool{false, true} {
			s := frameSpec{src: a, dst: c, sport: 20000, dport: 7000, proto: 17, payload: []byte("fill")}
			if rev {
				s.src, s.dst, s.sport, s.dport = s.dst, s.src, s.dport, s.sport
			}
			f := frame(s)
			b.Add(ts, 1, f, len(f))
		}
	}
}

// TestAdmitCarriesFirstPacket: under pressure a new flow's first packet
// waits outside the table, and its second admits the flow with the first
// one counted: the record is the one a table with room gives for the same
// two packets (start time, counts, flags, originator, ports, bursts).
// First packets with a name to search (DNS, a client's TCP payload) enter
// the table at once, as before.
func TestAdmitCarriesFirstPacket(t *testing.T) {
	cli, srv := addr("198.51.100.20"), addr("203.0.113.5")
	v6c, v6s := addr("2001:db8::20"), addr("2001:db8::5")
	type pkt = frameSpec
	req := func(s pkt) pkt { s.src, s.dst = cli, srv; return s }
	rep := func(s pkt) pkt { s.src, s.dst = srv, cli; return s }
	cases := []struct {
		name   string
		first  frameSpec
		second frameSpec
		held   bool // the first packet waits
	}{
		{"udp request, reply", req(pkt{sport: 40000, dport: 4444, proto: 17, payload: []byte("ping")}),
			rep(pkt{sport: 4444, dport: 40000, proto: 17, payload: []byte("pong!")}), true},
		{"udp reply first", rep(pkt{sport: 123, dport: 40001, proto: 17, payload: []byte("time")}),
			req(pkt{sport: 40001, dport: 123, proto: 17, payload: []byte("q")}), true},
		{"udp no payload", req(pkt{sport: 40002, dport: 9, proto: 17}),
			req(pkt{sport: 40002, dport: 9, proto: 17}), true},
		{"tcp syn, syn-ack", req(pkt{sport: 50000, dport: 445, proto: 6, flags: 0x02, seq: 100}),
			rep(pkt{sport: 445, dport: 50000, proto: 6, flags: 0x12, seq: 900, ack: 101}), true},
		{"tcp syn-ack first", rep(pkt{sport: 445, dport: 50001, proto: 6, flags: 0x12, seq: 900, ack: 101}),
			req(pkt{sport: 50001, dport: 445, proto: 6, flags: 0x10, seq: 101, ack: 901}), true},
		{"tcp syn, rst", req(pkt{sport: 50002, dport: 23, proto: 6, flags: 0x02, seq: 7}),
			rep(pkt{sport: 23, dport: 50002, proto: 6, flags: 0x14, ack: 8}), true},
		{"tcp rst, ack", req(pkt{sport: 50003, dport: 80, proto: 6, flags: 0x04, seq: 7}),
			rep(pkt{sport: 80, dport: 50003, proto: 6, flags: 0x10, seq: 70}), true},
		{"tcp fin, fin", req(pkt{sport: 50004, dport: 80, proto: 6, flags: 0x11, seq: 7}),
			rep(pkt{sport: 80, dport: 50004, proto: 6, flags: 0x11, seq: 70, ack: 8}), true},
		{"tcp server data first", rep(pkt{sport: 80, dport: 50005, proto: 6, flags: 0x18, seq: 70, payload: []byte("HTTP/1.1 200 OK\r\n")}),
			req(pkt{sport: 50005, dport: 80, proto: 6, flags: 0x10, seq: 7, ack: 87}), true},
		// Both ports likely server ports: the lower one's side responds
		// for TCP, the receiver for the rest (the originator is decided
		// when the flow is admitted, from the held packet's ports).
		{"udp between server ports", req(pkt{sport: 8080, dport: 443, proto: 17, payload: []byte("quic?")}),
			rep(pkt{sport: 443, dport: 8080, proto: 17, payload: []byte("no")}), true},
		{"tcp ack between server ports", req(pkt{sport: 3389, dport: 8443, proto: 6, flags: 0x10, seq: 5}),
			rep(pkt{sport: 8443, dport: 3389, proto: 6, flags: 0x10, seq: 50}), true},
		{"tcp ack from the higher server port", req(pkt{sport: 8443, dport: 3389, proto: 6, flags: 0x10, seq: 5}),
			rep(pkt{sport: 3389, dport: 8443, proto: 6, flags: 0x10, seq: 50}), true},
		{"udp from a server port, client replies with a query", rep(pkt{sport: 4444, dport: 40007, proto: 17}),
			req(pkt{sport: 40007, dport: 4444, proto: 17, payload: []byte("GET / HTTP/1.1\r\nHost: admit.example\r\n\r\n")}), true},
		{"icmp echo", req(pkt{proto: 1, icmpType: 8}), rep(pkt{proto: 1, icmpType: 0}), true},
		{"icmp reply first", rep(pkt{proto: 1, icmpType: 0}), req(pkt{proto: 1, icmpType: 8}), true},
		{"ipv6 udp", pkt{src: v6c, dst: v6s, sport: 40003, dport: 4444, proto: 17, payload: []byte("x")},
			pkt{src: v6s, dst: v6c, sport: 4444, dport: 40003, proto: 17, payload: []byte("yy")}, true},
		{"dns query enters", req(pkt{sport: 40004, dport: 53, proto: 17, payload: dnsMessage(7, "admit.example.org", "")}),
			rep(pkt{sport: 53, dport: 40004, proto: 17, payload: []byte("short")}), false},
		{"tcp client payload enters", req(pkt{sport: 50006, dport: 80, proto: 6, flags: 0x18, seq: 7, payload: []byte("GET / HTTP/1.1\r\nHost: admit.example\r\n\r\n")}),
			rep(pkt{sport: 80, dport: 50006, proto: 6, flags: 0x10, seq: 70, ack: 45}), false},
	}
	const table = 8
	t1 := t0.Add(time.Minute)
	t2 := t1.Add(40 * time.Millisecond)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f1, f2 := frame(c.first), frame(c.second)
			// A table with room: the record as it has always been.
			ref := NewBuilder(Options{DropSingles: true, Encoded: true})
			ref.Add(t1, 1, f1, len(f1))
			ref.Add(t2, 1, f2, len(f2))
			var rw FileWriter
			ref.FlushInto(&rw)
			want := rw.Records()
			if len(want) != 1 || ref.adm != nil {
				t.Fatalf("reference: %d records", len(want))
			}

			b := NewBuilder(Options{MaxFlows: table, DropSingles: true, Encoded: true})
			fillTable(b, t0, table)
			h1 := addHandle(b, t1, f1)
			if got := b.held == 1; got != c.held {
				t.Fatalf("first packet held: %v, want %v", got, c.held)
			}
			if h1.Mark == nil || (h1.ID == 0) != c.held {
				t.Fatalf("first packet's handle %+v", h1)
			}
			*h1.Mark = 77 // the store's index block, which must stay the flow's
			h2 := addHandle(b, t2, f2)
			if b.held != 0 || b.Open() != table || *h2.Mark != 77 {
				t.Errorf("after the second packet: %d held, %d open, mark %d", b.held, b.Open(), *h2.Mark)
			}
			var fw FileWriter
			b.FlushInto(&fw)
			var got []Record
			for _, r := range fw.Records() {
				if r.Orig == want[0].Orig || r.Orig == want[0].Resp {
					got = append(got, r)
				}
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], want[0]) {
				t.Errorf("record under pressure:\n got %+v\nwant %+v", got, want[0])
			}
			st := b.Stats()
			if st.Flows != table+1 || st.Packets != 2*table+2 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestAdmitUnrecorded: a held flow that never gets its second packet in
// time (its slot taken by another flow, its idle timeout past, a new
// connection after its reset, still waiting at Flush) is counted
// unrecorded; records and unrecorded flows account for every packet and
// every flow.
func TestAdmitUnrecorded(t *testing.T) {
	const table = 16
	b := NewBuilder(Options{MaxFlows: table, DropSingles: true, Encoded: true})
	fillTable(b, t0, table)
	ts := t0.Add(time.Second)
	udp := func(sport uint16, rev bool) []byte {
		s := frameSpec{src: addr("192.0.2.7"), dst: addr("198.51.100.9"), sport: sport, dport: 7777, proto: 17, payload: []byte("u")}
		if rev {
			s.src, s.dst, s.sport, s.dport = s.dst, s.src, s.dport, s.sport
		}
		return frame(s)
	}
	// A second packet past the UDP idle timeout: the first is not carried.
	f := udp(30000, false)
	b.Add(ts, 1, f, len(f))
	ts = ts.Add(DefaultUDPIdleTimeout + time.Second)
	b.Add(ts, 1, f, len(f))
	if st := b.Stats(); st.Unrecorded != 1 || b.held != 1 {
		t.Fatalf("after a timed-out second packet: %+v, %d held", st, b.held)
	}
	// A SYN after a held reset is a new connection.
	rst := frame(frameSpec{src: addr("192.0.2.8"), dst: addr("198.51.100.9"), sport: 30001, dport: 80, proto: 6, flags: 0x04})
	syn := frame(frameSpec{src: addr("192.0.2.8"), dst: addr("198.51.100.9"), sport: 30001, dport: 80, proto: 6, flags: 0x02})
	b.Add(ts, 1, rst, len(rst))
	b.Add(ts.Add(time.Millisecond), 1, syn, len(syn))
	if st := b.Stats(); st.Unrecorded != 2 || b.held != 2 {
		t.Fatalf("after a SYN on a held reset: %+v, %d held", st, b.held)
	}
	// Many one-packet flows, a few of them answered at once.
	rng := rand.New(rand.NewPCG(5, 6))
	answered := 0
	for i := range 5000 {
		sport := uint16(31000 + i)
		f := udp(sport, false)
		b.Add(ts, 1, f, len(f))
		if rng.IntN(10) == 0 {
			f := udp(sport, true)
			b.Add(ts, 1, f, len(f))
			answered++
		}
		ts = ts.Add(time.Microsecond)
	}
	var fw FileWriter
	b.FlushInto(&fw)
	st := b.Stats()
	recs := fw.Records()
	var pkts, two uint64
	for _, r := range recs {
		pkts += r.OrigPkts + r.RespPkts
		if r.OrigPort >= 31000 && r.OrigPkts == 1 && r.RespPkts == 1 {
			two++
		}
	}
	if b.held != 0 || pkts+st.Unrecorded != st.Packets || uint64(len(recs))+st.Unrecorded != st.Flows {
		t.Errorf("%d held after Flush; %d records with %d packets, stats %+v", b.held, len(recs), pkts, st)
	}
	// An answered flow is recorded unless the table evicted it as the
	// oldest later on: the last table's worth of them are.
	if two < table {
		t.Errorf("%d answered flows recorded with both packets, %d answered", two, answered)
	}
}

// TestAdmitNoPressure: a table that never fills holds nothing back: the
// flow file is byte for byte the one a builder without DropSingles
// writes.
func TestAdmitNoPressure(t *testing.T) {
	fs, ts := mixedFrames(t)
	probe := NewBuilder(Options{Encoded: true})
	peak := 0
	for i, f := range fs {
		probe.Add(ts[i], 1, f, len(f))
		peak = max(peak, probe.Open())
		if i%256 == 0 {
			probe.ExpireInto(ts[i], &FileWriter{})
		}
	}
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	a := NewBuilder(Options{MaxFlows: peak, Encoded: true})
	b := NewBuilder(Options{MaxFlows: peak, DropSingles: true, Encoded: true})
	var fa, fb FileWriter
	for i, f := range fs {
		a.Add(ts[i], 1, f, len(f))
		b.Add(ts[i], 1, f, len(f))
		if i%256 == 0 {
			a.ExpireInto(ts[i], &fa)
			b.ExpireInto(ts[i], &fb)
		}
	}
	a.FlushInto(&fa)
	b.FlushInto(&fb)
	if b.adm != nil || b.Stats() != a.Stats() || fa.Len() < 100 || !bytes.Equal(fa.Encode(enc), fb.Encode(enc)) {
		t.Errorf("table of %d never full: admission used %v; %d and %d records; stats %+v and %+v",
			peak, b.adm != nil, fa.Len(), fb.Len(), a.Stats(), b.Stats())
	}
}

// TestAdmitChurn: random one-, two- and many-packet flows through small
// tables with DropSingles, expiring as they go: no packet is lost or
// counted twice between records and unrecorded flows, and the table stays
// within its bound.
func TestAdmitChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, maxFlows := range []int{3, 100, 5000} {
		b := NewBuilder(Options{MaxFlows: maxFlows, DropSingles: true, Encoded: true})
		var fw FileWriter
		ts := t0
		for i := range 50000 {
			n := rng.IntN(30000)
			if rng.IntN(4) == 0 {
				n = rng.IntN(16)
			}
			s := frameSpec{src: netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}), dst: addr("198.51.100.7"),
				sport: uint16(30000 + n%20000), dport: 9999, proto: 17, payload: []byte("x")}
			if n%3 == 0 {
				s.proto, s.flags = 6, []uint8{0x02, 0x12, 0x10, 0x04, 0x11}[rng.IntN(5)]
			}
			if rng.IntN(2) == 0 {
				s.src, s.dst, s.sport, s.dport = s.dst, s.src, s.dport, s.sport
			}
			f := frame(s)
			b.Add(ts, 1, f, len(f))
			ts = ts.Add(time.Duration(rng.IntN(8000)) * time.Microsecond)
			if i%4000 == 0 {
				b.ExpireInto(ts, &fw)
			}
			if b.Open() > maxFlows || b.held > len(b.adm) {
				t.Fatalf("%d open, limit %d; %d held", b.Open(), maxFlows, b.held)
			}
		}
		b.FlushInto(&fw)
		st := b.Stats()
		var pkts uint64
		for _, r := range fw.Records() {
			pkts += r.OrigPkts + r.RespPkts
		}
		if pkts+st.Unrecorded != st.Packets || uint64(fw.Len())+st.Unrecorded != st.Flows || b.Open() != 0 || b.held != 0 {
			t.Errorf("table %d: %d packets in %d records, stats %+v, %d open, %d held", maxFlows, pkts, fw.Len(), st, b.Open(), b.held)
		}
	}
}

// TestHeldSlotSize keeps a held slot at the 72 bytes docs/capture.md
// (Floods) counts, 9 MiB for a table of 128 Ki flows.
func TestHeldSlotSize(t *testing.T) {
	if n := unsafe.Sizeof(held{}); n != 72 {
		t.Fatalf("held slot of %d bytes, want 72", n)
	}
}

// TestDropHeld: Flush counts each flow still waiting as unrecorded and
// empties every held slot, whether few slots wait (each is tested) or
// many (the array is cleared whole), so that a reset table holds nothing
// of the last shard's.
func TestDropHeld(t *testing.T) {
	const table = 64
	for _, waiting := range []int{1, 10, 40, 500} { // below and above a quarter of the 64 slots
		b := NewBuilder(Options{MaxFlows: table, DropSingles: true, Encoded: true})
		fillTable(b, t0, table)
		ts := t0.Add(time.Second)
		for i := range waiting {
			f := frame(frameSpec{src: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), dst: addr("198.51.100.9"),
				sport: uint16(40000 + i), dport: 9, proto: 17, payload: []byte("w")})
			b.Add(ts, 1, f, len(f))
		}
		nheld := b.held
		used := 0
		for i := range b.adm {
			if b.adm[i].bits&heldUsed != 0 {
				used++
			}
		}
		if nheld != used || nheld == 0 || nheld > min(waiting, len(b.adm)) {
			t.Fatalf("%d waiting: %d held, %d slots used", waiting, nheld, used)
		}
		before := b.Stats().Unrecorded
		var fw FileWriter
		b.FlushInto(&fw)
		if got := b.Stats().Unrecorded - before; got != uint64(nheld) {
			t.Errorf("%d waiting: Flush counted %d unrecorded, %d were held", waiting, got, nheld)
		}
		if b.held != 0 {
			t.Errorf("%d waiting: %d held after Flush", waiting, b.held)
		}
		for i := range b.adm {
			if b.adm[i] != (held{}) {
				t.Fatalf("%d waiting: slot %d not emptied: %+v", waiting, i, b.adm[i])
			}
		}
	}
}
