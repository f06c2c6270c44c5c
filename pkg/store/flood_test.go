package store

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// floodFrame is a 64-byte Ethernet/IPv4/UDP frame from src:sport to
// 198.51.100.7:9.
func floodFrame(src uint32, sport uint16) []byte {
	f := make([]byte, 64)
	copy(f, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00})
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], 50)
	binary.BigEndian.PutUint32(ip[12:], src)
	copy(ip[16:], []byte{198, 51, 100, 7})
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], 9)
	binary.BigEndian.PutUint16(ip[24:], 30)
	return f
}

// TestFloodFlowCounts: a flood of one-packet flows through a small flow
// table, with two-packet flows among them, stores every packet; the
// writer's counts say how many flows a full table ended early (only
// flows admitted on their second packet evict) and how
// many one-packet flows it left without a record; every two-packet flow
// has its record, and records plus unrecorded flows are all the flows.
func TestFloodFlowCounts(t *testing.T) {
	const maxFlows, singles, pairs = 64, 20000, 500
	st, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	newFlows := func() FlowTable {
		return flow.NewBuilder(flow.Options{MaxFlows: maxFlows, DropSingles: true, Encoded: true})
	}
	w, err := st.NewWriter(WriterOptions{ID: "c00", BlockSize: 64 << 10, Compressors: 1, Inline: true, NewFlows: newFlows})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var sent uint64
	write := func(f []byte) {
		if err := w.Write(ts, pkthdr.LinkEthernet, f, len(f)); err != nil {
			t.Fatal(err)
		}
		ts = ts.Add(time.Microsecond)
		sent++
	}
	for i := range singles {
		write(floodFrame(0x0a000000|uint32(i), uint16(i)))
		if i%(singles/pairs) == 0 { // a two-packet flow: its packets back to back
			f := floodFrame(0xc0000200|uint32(i/(singles/pairs)), 40000)
			write(f)
			write(f)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ws := w.Stats()
	if ws.StoredPackets != sent {
		t.Fatalf("%d packets stored of %d", ws.StoredPackets, sent)
	}
	var recs, twos uint64
	if err := Flows([]Reader{st}, Selector{}, newFlows, func(r *flow.Record) error {
		recs++
		if r.OrigPkts+r.RespPkts == 2 {
			twos++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	flows := uint64(singles + pairs)
	// Once the table is full, one-packet flows wait outside it (held
	// first packets, docs/capture.md Floods): only a two-packet flow
	// admitted on its second packet evicts one.
	if ws.FlowsEvicted+maxFlows < pairs || ws.FlowsEvicted > pairs {
		t.Errorf("%d flows evicted, want about %d", ws.FlowsEvicted, pairs)
	}
	if twos != pairs {
		t.Errorf("%d two-packet flows recorded, want %d", twos, pairs)
	}
	if recs+ws.FlowsUnrecorded != flows {
		t.Errorf("%d records + %d unrecorded, want %d flows", recs, ws.FlowsUnrecorded, flows)
	}
	if ws.FlowsUnrecorded < singles-maxFlows {
		t.Errorf("only %d one-packet flows unrecorded", ws.FlowsUnrecorded)
	}
	// The index written under the flood (keys recorded once a block a
	// flow, held flows included) is the one rebuilt from the packets alone.
	shards, err := st.Shards()
	if err != nil || len(shards) == 0 {
		t.Fatalf("%d shards, %v", len(shards), err)
	}
	written := map[string][]byte{}
	for _, sf := range shards {
		b, err := os.ReadFile(sf.IndexPath())
		if err != nil {
			t.Fatal(err)
		}
		written[sf.Name()] = b
		if err := os.Remove(sf.IndexPath()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Reindex(nil); err != nil {
		t.Fatal(err)
	}
	for _, sf := range shards {
		if b, err := os.ReadFile(sf.IndexPath()); err != nil || !bytes.Equal(b, written[sf.Name()]) {
			t.Errorf("%s: index rebuilt from the packets differs from the one written (%v)", sf.Name(), err)
		}
	}
}

// TestFloodReusesShardMemory: under a flood that seals shard after shard,
// a shard's flow table, index builder and index file memory serve the
// next, so the store path allocates little per packet once warmed up
// (a flow table and index a shard, fresh, were most of a flood's page
// faults). The bound is loose; a table allocated each shard is over it.
func TestFloodReusesShardMemory(t *testing.T) {
	defer func(n int) { maxIndexKeys = n }(maxIndexKeys)
	maxIndexKeys = 1 << 14 // a shard every ~5,500 packets
	const maxFlows = 4096
	for _, reuse := range []bool{true, false} {
		st, err := Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		newFlows := func() FlowTable {
			b := flow.NewBuilder(flow.Options{MaxFlows: maxFlows, DropSingles: true, Encoded: true})
			if reuse {
				return b
			}
			return noReset{b}
		}
		w, err := st.NewWriter(WriterOptions{ID: "c00", BlockSize: 64 << 10, Compressors: 1, Inline: true, NewFlows: newFlows})
		if err != nil {
			t.Fatal(err)
		}
		ts := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		frames := make([][]byte, 1<<12)
		for i := range frames {
			frames[i] = floodFrame(0x0a000000|uint32(i*2654435761), uint16(i*40503))
		}
		n := 0
		write := func(count int) {
			for range count {
				f := frames[n%len(frames)]
				// A new source in every packet: the address's top bytes
				// count up, so no flow repeats.
				binary.BigEndian.PutUint16(f[26:], uint16(n>>12))
				if err := w.Write(ts, pkthdr.LinkEthernet, f, len(f)); err != nil {
					t.Fatal(err)
				}
				ts = ts.Add(time.Microsecond)
				n++
			}
		}
		// Several shards: both alternating tables allocated, and the
		// compressed blocks' buffers grown to a flood block's size (an
		// inline writer holds up to maxBatch of them, so more circulate).
		write(240000)
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		const measured = 100000
		write(measured)
		runtime.ReadMemStats(&m1)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		perPacket := float64(m1.TotalAlloc-m0.TotalAlloc) / measured
		sealed := w.Stats().Sealed
		t.Logf("reuse %v: %.1f bytes allocated a packet, %d shards", reuse, perPacket, sealed)
		if sealed < 15 {
			t.Fatalf("only %d shards sealed: the test does not cycle shards", sealed)
		}
		if reuse && perPacket > 64 {
			t.Errorf("%.1f bytes allocated a packet in steady state, want at most 64", perPacket)
		}
		if !reuse && perPacket <= 64 {
			t.Errorf("a table a shard allocated only %.1f bytes a packet: the bound does not tell reuse apart", perPacket)
		}
	}
}

// noReset hides flow.Builder's Reset: the writer then opens a new table
// for each shard, as before it reused them.
type noReset struct{ FlowTable }

// TestFloodQueries: queries over a store written under a flood, whose
// indexes hold mostly keys of one block (a spoofed source, its port) and
// a few of many (the destination, busy flows' ends), give the packets a
// scan of what was written selects, for keys of either kind, their
// intersections and address ranges.
func TestFloodQueries(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var pkts []pcapio.Packet
	for i := range 30000 {
		f := floodFrame(0x0a000000|uint32(i*7919)&0xffffff, uint16(i*31))
		if i%10 == 0 { // a busy flow among the spoofed ones
			f = floodFrame(0xc0000201, 40000+uint16(i%3))
		}
		pkts = append(pkts, pcapio.Packet{Timestamp: start.Add(time.Duration(i) * time.Microsecond), LinkType: pkthdr.LinkEthernet, Data: f, OrigLen: len(f)})
	}
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{BlockSize: 8 << 10, ShardSize: 256 << 10})
	if shards, _ := st.Shards(); len(shards) < 2 {
		t.Fatalf("%d shards; want several", len(shards))
	}
	v := 0x0a000000 | uint32(1234*7919)&0xffffff // packet 1234's source
	spoofed := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	for i, sel := range []Selector{
		{Hosts: []netip.Addr{spoofed}},
		{Ports: []uint16{1234 * 31}},
		{Hosts: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
		{Hosts: []netip.Addr{netip.MustParseAddr("198.51.100.7")}, Ports: []uint16{40001}},
		{Hosts: []netip.Addr{spoofed}, Ports: []uint16{9}},
		{Nets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/20")}},
		{Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Ports: []uint16{62000, 31, 93}},
		{Hosts: []netip.Addr{netip.MustParseAddr("10.255.255.254")}},
	} {
		want := oracle(pkts, sel)
		if absent := i == 7; (len(want) == 0) != absent {
			t.Fatalf("%+v: the scan selects %d packets", sel, len(want))
		}
		pl, err := PlanQuery([]Reader{st}, sel)
		if err != nil {
			t.Fatal(err)
		}
		if len(pl.Damage) != 0 {
			t.Errorf("%+v: plan damage %v", sel, pl.Damage)
		}
		pl.Close()
		got, err := runQuery(t, []*Store{st}, sel)
		if err != nil {
			t.Fatal(err)
		}
		samePackets(t, got, want)
	}
}
