package flow

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// TestTableChurn runs many short and long UDP and TCP flows, in random
// order, through a small table (evictions, timeouts, deletions from the
// middle of probe runs) and checks every packet against a model that
// keeps one count per flow: no packet is lost or counted twice, no two
// open records are for one flow, and Open and Evicted add up.
func TestTableChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, maxFlows := range []int{7, 1000, 1 << 20} {
		b := NewBuilder(Options{MaxFlows: maxFlows})
		type fk struct {
			a    netip.Addr
			port uint16
		}
		sent := map[fk]uint64{}
		got := map[fk]uint64{}
		var records int
		emit := func(r *Record) {
			got[fk{r.Orig, r.OrigPort}] += r.OrigPkts
			records++
		}
		ts := t0
		for i := range 60000 {
			// A few heavy flows and many one- and two-packet ones.
			n := rng.IntN(40000)
			if rng.IntN(4) == 0 {
				n = rng.IntN(16)
			}
			src := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
			port := uint16(30000 + n%20000)
			proto := uint8(17)
			if n%3 == 0 {
				proto = 6
			}
			f := frame(frameSpec{src: src, dst: addr("198.51.100.7"), sport: port, dport: 9999, proto: proto, flags: 0x18, payload: []byte("x")})
			b.Add(ts, 1, f, len(f))
			sent[fk{src, port}]++
			ts = ts.Add(time.Duration(rng.IntN(5000)) * time.Microsecond)
			if i%5000 == 0 {
				b.Expire(ts, emit)
			}
			if b.Open() > maxFlows {
				t.Fatalf("%d open, limit %d", b.Open(), maxFlows)
			}
		}
		open := b.Open()
		b.Flush(emit)
		if b.Open() != 0 {
			t.Errorf("%d open after Flush", b.Open())
		}
		if !reflect.DeepEqual(sent, got) {
			t.Errorf("max %d: records hold %d flows' packets, %d flows sent", maxFlows, len(got), len(sent))
			for k, v := range sent {
				if got[k] != v {
					t.Fatalf("flow %v: %d packets recorded, %d sent", k, got[k], v)
				}
			}
		}
		st := b.Stats()
		if uint64(records) != st.Flows || maxFlows == 7 && st.Evicted == 0 || maxFlows == 1<<20 && st.Evicted != 0 {
			t.Errorf("max %d: %d records, stats %+v (%d open before Flush)", maxFlows, records, st, open)
		}
	}
}

// TestFloodAllocatesNothing: with a new flow in every packet and a full
// table (each new flow evicts the oldest), adding packets and writing the
// records into a flow file allocates nothing.
func TestFloodAllocatesNothing(t *testing.T) {
	b := NewBuilder(Options{MaxFlows: 4096, Encoded: true})
	frames := make([][]byte, 8192)
	for i := range frames {
		frames[i] = frame(frameSpec{src: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), dst: addr("198.51.100.7"), sport: uint16(1024 + i), dport: 9, proto: 17, payload: make([]byte, 22)})
	}
	ts := t0
	n := 0
	var fw FileWriter
	add := func() {
		f := frames[n%len(frames)]
		b.Add(ts, 1, f, len(f))
		ts = ts.Add(time.Microsecond)
		if n%256 == 0 {
			b.ExpireInto(ts, &fw)
		}
		if n%(1<<15) == 0 {
			fw = FileWriter{buf: fw.buf[:0], recs: fw.recs[:0]} // as if a shard was sealed
		}
		n++
	}
	for range 3 * len(frames) { // fill the table and its free lists
		add()
	}
	if got := testing.AllocsPerRun(5000, add); got != 0 {
		t.Errorf("%.2f allocations a packet", got)
	}
	if b.Stats().Evicted == 0 || fw.Len() == 0 {
		t.Errorf("no eviction: %+v", b.Stats())
	}
}

// mixedFrames is a workload with every kind of record: TCP with names
// and long burst series, DNS with answers, ICMP, IPv6 and IPv4-mapped IPv6
// addresses, VLAN tags, and one-packet flows.
func mixedFrames(t testing.TB) ([][]byte, []time.Time) {
	var fs [][]byte
	var ts []time.Time
	now := t0
	add := func(f []byte, gap time.Duration) {
		fs, ts = append(fs, f), append(ts, now)
		now = now.Add(gap)
	}
	hello := clientHello(t, "mixed.example.org")
	for i := range 3000 {
		c := netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 40)})
		gap := time.Duration(i%7) * 300 * time.Millisecond
		switch i % 6 {
		case 0:
			q := dnsMessage(uint16(i), fmt.Sprintf("h%d.example.com", i%13), "", addr("192.0.2.1"), addr("2001:db8::7"))
			add(frame(frameSpec{src: addr("10.9.9.53"), dst: c, sport: 53, dport: uint16(40000 + i%7), proto: 17, payload: q}), gap)
		case 1:
			add(frame(frameSpec{src: addr("2001:db8::1"), dst: addr("2001:db8::2"), sport: uint16(40000 + i%5), dport: 443, proto: 6, flags: 0x18, seq: uint32(i), payload: hello[:200], vlan: 12}), gap)
		case 2:
			add(frame(frameSpec{src: addr("::ffff:10.1.1.1"), dst: addr("::ffff:10.1.1.2"), sport: 7, dport: 7, proto: 17, payload: []byte("m")}), gap)
		case 3:
			add(frame(frameSpec{src: c, dst: addr("192.0.2.8"), proto: 1, icmpType: uint8(8 * (i % 2))}), gap)
		case 4:
			add(frame(frameSpec{src: netip.AddrFrom4([4]byte{10, 7, byte(i >> 8), byte(i)}), dst: addr("192.0.2.9"), sport: 999, dport: 9, proto: 17, payload: []byte("x")}), 0)
		default:
			add(frame(frameSpec{src: c, dst: addr("192.0.2.1"), sport: uint16(50000 + i%40), dport: 443, proto: 6, flags: 0x18, seq: uint32(i * 100), payload: make([]byte, 100)}), gap)
		}
	}
	return fs, ts
}

// TestEncodedRecords: a builder that writes records straight into a flow
// file (Options.Encoded, ExpireInto, FlushInto) writes the same bytes as
// encoding the Records another builder hands over.
func TestEncodedRecords(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	fs, ts := mixedFrames(t)
	for _, maxFlows := range []int{0, 25} {
		o := Options{MaxFlows: maxFlows, ActiveTimeout: 20 * time.Second}
		a, b := NewBuilder(o), NewBuilder(Options{MaxFlows: maxFlows, ActiveTimeout: 20 * time.Second, Encoded: true})
		var fa, fb FileWriter
		for i, f := range fs {
			a.Add(ts[i], 1, f, len(f))
			b.Add(ts[i], 1, f, len(f))
			if i%256 == 0 {
				a.Expire(ts[i], fa.Add)
				b.ExpireInto(ts[i], &fb)
			}
		}
		a.Flush(fa.Add)
		b.FlushInto(&fb)
		if fa.Len() < 100 || fa.Len() != fb.Len() || !bytes.Equal(fa.Encode(enc), fb.Encode(enc)) {
			t.Errorf("max flows %d: %d records from Records, %d encoded; the files differ", maxFlows, fa.Len(), fb.Len())
		}
	}
}

// TestDropSingles: with DropSingles, a full table drops the
// record of each one-packet flow and counts it; the flood's new flows wait
// for a second packet outside the table (admit.go) instead of evicting the
// flows of more packets, which are recorded; every packet is counted.
func TestDropSingles(t *testing.T) {
	b := NewBuilder(Options{MaxFlows: 100, DropSingles: true, Encoded: true})
	ts := t0
	// Ten two-way flows, then a flood of one-packet flows pushes them out.
	// A builder whose table never filled records one-packet flows.
	small := NewBuilder(Options{DropSingles: true, Encoded: true})
	f := frame(frameSpec{src: addr("10.0.0.1"), dst: addr("192.0.2.1"), sport: 1, dport: 2, proto: 17, payload: []byte("x")})
	small.Add(ts, 1, f, len(f))
	var one FileWriter
	small.FlushInto(&one)
	if one.Len() != 1 || small.Stats().Unrecorded != 0 {
		t.Errorf("a table never full: %d records, %+v", one.Len(), small.Stats())
	}
	for i := range 10 {
		for _, rev := range []bool{false, true} {
			s := frameSpec{src: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), dst: addr("192.0.2.1"), sport: 5000, dport: 53, proto: 17, payload: []byte("q")}
			if rev {
				s.src, s.dst, s.sport, s.dport = s.dst, s.src, s.dport, s.sport
			}
			f := frame(s)
			b.Add(ts, 1, f, len(f))
			ts = ts.Add(time.Millisecond)
		}
	}
	for i := range 1000 {
		f := frame(frameSpec{src: netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), dst: addr("192.0.2.9"), sport: uint16(1024 + i), dport: 80, proto: 6, flags: 0x02})
		b.Add(ts, 1, f, len(f))
		ts = ts.Add(time.Microsecond)
	}
	var fw FileWriter
	b.FlushInto(&fw)
	st := b.Stats()
	recs := fw.Records()
	var pkts, two uint64
	for _, r := range recs {
		pkts += r.OrigPkts + r.RespPkts
		if r.RespPkts == 1 {
			two++
		}
	}
	if st.Evicted != 0 || st.Unrecorded != 1000 || uint64(len(recs)) != st.Flows-st.Unrecorded || two != 10 {
		t.Errorf("stats %+v; %d records, %d of them two-way", st, len(recs), two)
	}
	if pkts+st.Unrecorded != st.Packets {
		t.Errorf("%d packets in records and %d unrecorded, %d given", pkts, st.Unrecorded, st.Packets)
	}
}

// flushOneByOne is Flush as it was before the table was emptied at once:
// each list's head ended and removed in turn (the reference for
// TestFlushAsRemoval).
func (b *Builder) flushOneByOne(emit func(*Record), fw *FileWriter) {
	if fw != nil {
		fw.take(&b.pend)
	} else {
		b.drain(emit)
	}
	b.dropHeld()
	for i := range b.lists {
		l := &b.lists[i]
		for idx := l.head; idx >= 0; idx = l.head {
			b.emitEntry(idx, i == listTCP, emit, fw)
		}
	}
}

// loadMixed adds n packets of up to 3,000 flows (TCP, UDP and DNS
// exchanges that name later flows, either direction) drawn from the
// random stream (seed, stream), and returns their handles.
func loadMixed(b *Builder, seed, stream uint64, n int) []Handle {
	rng := rand.New(rand.NewPCG(seed, stream))
	ts := t0
	var hs []Handle
	for range n {
		i := rng.IntN(3000)
		s := frameSpec{src: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), dst: addr("192.0.2.9"), sport: uint16(1024 + i), dport: 80, proto: 6, flags: 0x02}
		switch rng.IntN(4) {
		case 0:
			s.proto, s.payload = 17, []byte("u")
		case 1: // a DNS exchange: named flows later, details in use
			s = frameSpec{src: addr("10.0.0.53"), dst: addr("10.0.0.1"), sport: 53, dport: uint16(3000 + i%50), proto: 17,
				payload: dnsMessage(uint16(i), "host.example.com", "", netip.AddrFrom4([4]byte{192, 0, 2, 9}))}
		}
		if rng.IntN(3) == 0 {
			s.src, s.dst, s.sport, s.dport = s.dst, s.src, s.dport, s.sport
		}
		f := frame(s)
		var p pkthdr.Packet
		pkthdr.Parse(1, f, &p)
		hs = append(hs, b.AddParsedNanos(ts.UnixNano(), &p, f, len(f)))
		ts = ts.Add(time.Duration(rng.IntN(3000)) * time.Microsecond)
	}
	return hs
}

// TestFlushAsRemoval: Flush and FlushInto, which empty the table at once,
// give the records, counts and builder state (free entries and details in
// order, table, lists, recent cache) that ending and removing each flow
// in turn gives, for tables that filled (one-packet flows dropped) and
// did not, with TCP, UDP and DNS-named flows; and a builder used on
// after either gives the same handles and records.
func TestFlushAsRemoval(t *testing.T) {
	load := func(b *Builder, seed uint64, n int) []Handle { return loadMixed(b, seed, 5, n) }
	for _, o := range []Options{{MaxFlows: 500, DropSingles: true, Encoded: true}, {MaxFlows: 500, DropSingles: true}, {MaxFlows: 1 << 16}} {
		a, b := NewBuilder(o), NewBuilder(o)
		load(a, 1, 20000)
		load(b, 1, 20000)
		var ra, rb []Record
		var fa, fb FileWriter
		if o.Encoded {
			a.FlushInto(&fa)
			b.flushOneByOne(nil, &fb)
			ra, rb = fa.Records(), fb.Records()
		} else {
			a.Flush(func(r *Record) { ra = append(ra, *r) })
			b.flushOneByOne(func(r *Record) { rb = append(rb, *r) }, nil)
		}
		if len(ra) == 0 || !reflect.DeepEqual(ra, rb) || a.Stats() != b.Stats() {
			t.Fatalf("%+v: %d records and %+v, one by one %d and %+v", o, len(ra), a.Stats(), len(rb), b.Stats())
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%+v: builders differ after flushing", o)
		}
		if ha, hb := load(a, 2, 5000), load(b, 2, 5000); !reflect.DeepEqual(ha, hb) {
			t.Fatalf("%+v: handles differ after flushing", o)
		}
	}
}

// TestResetAsNew checks that a builder emptied by a flush and Reset for
// the next shard behaves as a new one: the same flow IDs for the same
// packets (the store's record encoder keys on them), the same records,
// file bytes and counters, with its table full and held slots in use.
func TestResetAsNew(t *testing.T) {
	load := func(b *Builder, seed uint64, n int) []uint32 {
		var ids []uint32
		for _, h := range loadMixed(b, seed, 7, n) {
			if h.Mark == nil {
				t.Fatal("no mark on a flow's handle")
			}
			ids = append(ids, h.ID)
		}
		return ids
	}
	for _, o := range []Options{{MaxFlows: 500, DropSingles: true, Encoded: true}, {MaxFlows: 1 << 16, Encoded: true}} {
		used := NewBuilder(o)
		load(used, 1, 20000)
		var first FileWriter
		used.FlushInto(&first)
		if used.Stats().Unrecorded == 0 && o.DropSingles {
			t.Fatalf("%+v: the first load left no held flow: the test does not reach the held slots", o)
		}
		used.Reset()
		fresh := NewBuilder(o)
		iu, ifr := load(used, 2, 20000), load(fresh, 2, 20000)
		if !reflect.DeepEqual(iu, ifr) {
			t.Fatalf("%+v: flow IDs after Reset differ from a new builder's", o)
		}
		var fu, ff FileWriter
		used.FlushInto(&fu)
		fresh.FlushInto(&ff)
		if ru, rf := fu.Records(), ff.Records(); len(ru) == 0 || !reflect.DeepEqual(ru, rf) {
			t.Fatalf("%+v: %d records after Reset, %d from a new builder", o, len(ru), len(rf))
		}
		enc, _ := zstd.NewWriter(nil)
		if !bytes.Equal(fu.Encode(enc), ff.Encode(enc)) {
			t.Fatalf("%+v: flow file bytes differ after Reset", o)
		}
		if used.Stats() != fresh.Stats() {
			t.Fatalf("%+v: counters after Reset %+v, new %+v", o, used.Stats(), fresh.Stats())
		}
	}
}

// TestBigSliceAligned: a table from 2 MiB up starts on a huge-page
// boundary and has the length asked for, zeroed; a smaller one is plain.
func TestBigSliceAligned(t *testing.T) {
	for _, n := range []int{1, 1000, hugePage / 8, 3*hugePage/8 + 5} {
		s := bigSlice[uint64](n)
		if len(s) != n || cap(s) != n {
			t.Fatalf("n %d: len %d cap %d", n, len(s), cap(s))
		}
		if n*8 >= hugePage && uintptr(unsafe.Pointer(&s[0]))%hugePage != 0 {
			t.Fatalf("n %d: not on a huge-page boundary", n)
		}
		for _, v := range s {
			if v != 0 {
				t.Fatalf("n %d: not zeroed", n)
			}
		}
	}
	// A 72-byte slot cannot always start exactly on a boundary: within
	// one slot past it.
	for range 20 {
		h := bigSlice[held](1 << 17)
		off := uintptr(unsafe.Pointer(&h[0])) % hugePage
		if len(h) != 1<<17 || off >= unsafe.Sizeof(held{}) {
			t.Fatalf("held array %d bytes past a huge-page boundary", off)
		}
		_ = make([]byte, 4096+int(off)) // move the next allocation
	}
}
