package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/capture/ringtest"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testPkt is one packet of a synthetic block, as the kernel would lay it out.
type testPkt struct {
	ts      time.Time
	frame   []byte // bytes in the ring (tp_snaplen of them)
	origLen int    // 0: len(frame)
	tci     uint32 // tp_vlan_tci
	tpid    uint16 // tp_vlan_tpid
	status  uint32 // tp_status
}

// buildBlock lays packets out as the kernel does (ringtest.Block).
func buildBlock(size int, status uint32, pkts []testPkt) []byte {
	rp := make([]ringtest.Packet, len(pkts))
	for i, p := range pkts {
		rp[i] = ringtest.Packet{TS: p.ts, Frame: p.frame, OrigLen: p.origLen, TCI: p.tci, TPID: p.tpid, Status: p.status}
	}
	return ringtest.Block(size, status, rp)
}

func align8(n int) int { return (n + 7) &^ 7 }

// got is what a recordSink saw of one packet.
type got struct {
	ts      time.Time
	data    []byte
	origLen int
}

// recordSink keeps copies of everything written to it.
type recordSink struct {
	pkts    []got
	flushes int
	failAt  int // fail the write of packet number failAt (1-based); 0 never
}

var errSinkFull = errors.New("sink full")

func (s *recordSink) WritePacket(ts time.Time, data []byte, origLen int) error {
	if s.failAt > 0 && len(s.pkts)+1 == s.failAt {
		return errSinkFull
	}
	s.pkts = append(s.pkts, got{ts, bytes.Clone(data), origLen})
	return nil
}

func (s *recordSink) Flush() error { s.flushes++; return nil }

// runSink is a recordSink taking runs of frames (a FrameSink) from a
// buffer of run frames, so that runs fill and are stored mid-block.
type runSink struct {
	recordSink
	buf  []pcapio.Frame
	runs []int // each WriteFrames call's length
}

func newRunSink(run int) *runSink { return &runSink{buf: make([]pcapio.Frame, run)} }

func (s *runSink) Frames() []pcapio.Frame { return s.buf }

func (s *runSink) WriteFrames(fs []pcapio.Frame) (int, error) {
	s.runs = append(s.runs, len(fs))
	for i, f := range fs {
		if err := s.WritePacket(time.Unix(0, f.Nanos), f.Data, f.OrigLen); err != nil {
			return i, err
		}
	}
	return len(fs), nil
}

// sinks are the kinds of sink the walk feeds, each a packet at a time
// (WritePacket), or in runs (FrameSink) of one frame, of two (a run
// filled mid-block) and of 64 (the store writer's).
var sinks = []struct {
	name string
	make func() (Sink, *recordSink)
}{
	{"packets", func() (Sink, *recordSink) { s := &recordSink{}; return s, s }},
	{"runs of 1", func() (Sink, *recordSink) { s := newRunSink(1); return s, &s.recordSink }},
	{"runs of 2", func() (Sink, *recordSink) { s := newRunSink(2); return s, &s.recordSink }},
	{"runs of 64", func() (Sink, *recordSink) { s := newRunSink(64); return s, &s.recordSink }},
}

// frame returns an Ethernet/IPv4/UDP frame of n bytes whose last byte is tag.
func frame(n int, tag byte) []byte {
	f := make([]byte, n)
	copy(f, []byte{
		0x02, 0, 0, 0, 0, 0x0b, // destination
		0x02, 0, 0, 0, 0, 0x0a, // source
		0x08, 0x00, // IPv4
	})
	f[n-1] = tag
	return f
}

func TestWalkBlock(t *testing.T) {
	t0 := time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC)
	tagged := func(tpid uint16, tci uint16) []byte {
		f := frame(64, 1)
		out := append([]byte{}, f[:12]...)
		out = binary.BigEndian.AppendUint16(out, tpid)
		out = binary.BigEndian.AppendUint16(out, tci)
		return append(out, f[12:]...)
	}
	tests := []struct {
		name    string
		pkts    []testPkt
		snaplen int
		ether   bool
		want    []got
	}{{
		name:    "three packets",
		pkts:    []testPkt{{ts: t0, frame: frame(64, 1)}, {ts: t0.Add(1), frame: frame(1514, 2)}, {ts: t0.Add(time.Second), frame: frame(60, 3)}},
		snaplen: maxSnapLen, ether: true,
		want: []got{{t0, frame(64, 1), 64}, {t0.Add(1), frame(1514, 2), 1514}, {t0.Add(time.Second), frame(60, 3), 60}},
	}, {
		name:    "snaplen cuts, origLen stays",
		pkts:    []testPkt{{ts: t0, frame: frame(200, 1)}, {ts: t0, frame: frame(30, 2)}},
		snaplen: 40, ether: true,
		want: []got{{t0, frame(200, 1)[:40], 200}, {t0, frame(30, 2), 30}},
	}, {
		name:    "kernel truncated, origLen from tp_len",
		pkts:    []testPkt{{ts: t0, frame: frame(96, 1)[:96], origLen: 9000}},
		snaplen: 96, ether: true,
		want: []got{{t0, frame(96, 1), 9000}},
	}, {
		name:    "vlan tag put back",
		pkts:    []testPkt{{ts: t0, frame: frame(64, 1), tci: 100, status: statusVLANValid}},
		snaplen: maxSnapLen, ether: true,
		want: []got{{t0, tagged(0x8100, 100), 68}},
	}, {
		name:    "vlan 0 with priority, 802.1ad tpid",
		pkts:    []testPkt{{ts: t0, frame: frame(64, 1), tci: 0x6000, tpid: 0x88a8, status: statusVLANValid | statusVLANTPIDValid}},
		snaplen: maxSnapLen, ether: true,
		want: []got{{t0, tagged(0x88a8, 0x6000), 68}},
	}, {
		name:    "vlan tag then snaplen",
		pkts:    []testPkt{{ts: t0, frame: frame(64, 1), tci: 7, status: statusVLANValid}},
		snaplen: 20, ether: true,
		want: []got{{t0, tagged(0x8100, 7)[:20], 68}},
	}, {
		name:    "raw IP link keeps frames as they are",
		pkts:    []testPkt{{ts: t0, frame: frame(64, 1), tci: 100, status: statusVLANValid}},
		snaplen: maxSnapLen, ether: false,
		want: []got{{t0, frame(64, 1), 64}},
	}}
	for _, tt := range tests {
		for _, sk := range sinks {
			t.Run(tt.name+"/"+sk.name, func(t *testing.T) {
				blk := buildBlock(1<<16, statusUser, tt.pkts)
				sink, s := sk.make()
				res, err := walk(blk, tt.snaplen, tt.ether, sink)
				if err != nil {
					t.Fatal(err)
				}
				if int(res.packets) != len(tt.want) || len(s.pkts) != len(tt.want) {
					t.Fatalf("got %d packets (counted %d), want %d", len(s.pkts), res.packets, len(tt.want))
				}
				var wantBytes uint64
				for i, w := range tt.want {
					g := s.pkts[i]
					if !g.ts.Equal(w.ts) || g.origLen != w.origLen || !bytes.Equal(g.data, w.data) {
						t.Errorf("packet %d: got ts %v len %d orig %d\n% x\nwant ts %v len %d orig %d\n% x",
							i, g.ts, len(g.data), g.origLen, g.data, w.ts, len(w.data), w.origLen, w.data)
					}
					wantBytes += uint64(len(w.data))
				}
				if res.bytes != wantBytes {
					t.Errorf("bytes %d, want %d", res.bytes, wantBytes)
				}
				if res.timedOut {
					t.Error("block reported as timed out")
				}
			})
		}
	}
}

func TestWalkBlockTimedOut(t *testing.T) {
	blk := buildBlock(4096, statusUser|statusBlockTimeout, []testPkt{{ts: time.Unix(1, 0), frame: frame(60, 1)}})
	res, err := walk(blk, maxSnapLen, true, &recordSink{})
	if err != nil || !res.timedOut || res.packets != 1 {
		t.Fatalf("got %+v, %v; want one packet from a timed-out block", res, err)
	}
}

func TestWalkBlockEmpty(t *testing.T) {
	blk := buildBlock(4096, statusUser|statusBlockTimeout, nil)
	var s recordSink
	res, err := walk(blk, maxSnapLen, true, &s)
	if err != nil || res.packets != 0 || len(s.pkts) != 0 {
		t.Fatalf("got %+v, %v, %d packets; want nothing", res, err, len(s.pkts))
	}
}

func TestWalkBlockMalformed(t *testing.T) {
	ne := binary.NativeEndian
	good := func() []byte {
		return buildBlock(4096, statusUser, []testPkt{
			{ts: time.Unix(1, 0), frame: frame(64, 1)},
			{ts: time.Unix(2, 0), frame: frame(64, 2)},
		})
	}
	secondHdr := blkHeaderSize + align8(86+64)
	tests := []struct {
		name     string
		mutate   func(b []byte) []byte
		wantPkts int // delivered before the walk stopped
	}{
		{"short block", func(b []byte) []byte { return b[:20] }, 0},
		{"first packet past the end", func(b []byte) []byte { ne.PutUint32(b[blkFirstPkt:], 4090); return b }, 0},
		{"first packet inside the header", func(b []byte) []byte { ne.PutUint32(b[blkFirstPkt:], 8); return b }, 0},
		{"snaplen past the end", func(b []byte) []byte { ne.PutUint32(b[blkHeaderSize+pktSnaplen:], 1<<31); return b }, 0},
		{"mac inside the header", func(b []byte) []byte { ne.PutUint16(b[blkHeaderSize+pktMac:], 4); return b }, 0},
		{"next offset past the end", func(b []byte) []byte { ne.PutUint32(b[blkHeaderSize+pktNext:], 1<<20); return b }, 1},
		{"count larger than the chain", func(b []byte) []byte { ne.PutUint32(b[blkNumPkts:], 3); return b }, 2},
		{"second frame past blk_len", func(b []byte) []byte { ne.PutUint32(b[secondHdr+pktSnaplen:], 4000); return b }, 1},
	}
	for _, tt := range tests {
		for _, sk := range sinks {
			t.Run(tt.name+"/"+sk.name, func(t *testing.T) {
				sink, s := sk.make()
				res, err := walk(tt.mutate(good()), maxSnapLen, true, sink)
				if !errors.Is(err, ErrBadBlock) {
					t.Fatalf("err = %v, want ErrBadBlock", err)
				}
				if int(res.packets) != tt.wantPkts || len(s.pkts) != tt.wantPkts || res.bytes != uint64(64*tt.wantPkts) {
					t.Fatalf("delivered %d (counted %d, %d bytes), want %d", len(s.pkts), res.packets, res.bytes, tt.wantPkts)
				}
			})
		}
	}
	// A count smaller than the chain is not an error: the kernel's count rules.
	b := good()
	ne.PutUint32(b[blkNumPkts:], 1)
	var s recordSink
	if res, err := walk(b, maxSnapLen, true, &s); err != nil || res.packets != 1 {
		t.Fatalf("count 1: got %+v, %v", res, err)
	}
}

func TestWalkBlockSinkError(t *testing.T) {
	blk := buildBlock(8192, statusUser, []testPkt{
		{ts: time.Unix(1, 0), frame: frame(64, 1)},
		{ts: time.Unix(2, 0), frame: frame(64, 2)},
		{ts: time.Unix(3, 0), frame: frame(64, 3)},
	})
	for _, sk := range sinks {
		sink, s := sk.make()
		s.failAt = 2
		res, err := walk(blk, maxSnapLen, true, sink)
		if !errors.Is(err, errSinkFull) || res.packets != 1 || res.bytes != 64 || len(s.pkts) != 1 {
			t.Fatalf("%s: got %+v, %v, %d packets; want the sink error after one packet", sk.name, res, err, len(s.pkts))
		}
	}
}

// discardSink counts and drops.
type discardSink struct{ n, bytes int }

func (s *discardSink) WritePacket(_ time.Time, data []byte, _ int) error {
	s.n++
	s.bytes += len(data)
	return nil
}
func (s *discardSink) Flush() error { return nil }

func manyPackets(n int, tagEvery int) []testPkt {
	pkts := make([]testPkt, n)
	for i := range pkts {
		pkts[i] = testPkt{ts: time.Unix(1700000000, int64(i)), frame: frame(64, byte(i))}
		if tagEvery > 0 && i%tagEvery == 0 {
			pkts[i].tci, pkts[i].status = 5, statusVLANValid
		}
	}
	return pkts
}

func TestWalkBlockAllocatesNothing(t *testing.T) {
	pkts := manyPackets(1000, 10)
	blk := buildBlock(1<<20, statusUser, pkts)
	orig := bytes.Clone(blk)
	// A worker makes its sink a FrameSink once (asFrameSink), before its
	// first block.
	for _, s := range []FrameSink{asFrameSink(&discardSink{}), asFrameSink(&discardNanoSink{}), &discardRunSink{buf: make([]pcapio.Frame, 64)}} {
		allocs := testing.AllocsPerRun(20, func() {
			copy(blk, orig) // tag reinsertion rewrites the block
			if _, err := walkBlock(blk, maxSnapLen, true, s); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("walkBlock into %T allocates %.1f times per block", s, allocs)
		}
	}
}

// discardNanoSink is a discardSink taking nanosecond time stamps.
type discardNanoSink struct{ discardSink }

func (s *discardNanoSink) WritePacketNanos(_ int64, data []byte, origLen int) error {
	return s.WritePacket(time.Time{}, data, origLen)
}

// discardRunSink is a discardSink taking runs of frames.
type discardRunSink struct {
	discardSink
	buf []pcapio.Frame
}

func (s *discardRunSink) Frames() []pcapio.Frame { return s.buf }

func (s *discardRunSink) WriteFrames(fs []pcapio.Frame) (int, error) {
	for _, f := range fs {
		s.n++
		s.bytes += len(f.Data)
	}
	return len(fs), nil
}

func BenchmarkWalkBlock(b *testing.B) {
	pkts := manyPackets(6000, 0) // about one 1 MiB block of 64-byte frames
	blk := buildBlock(1<<20, statusUser, pkts)
	s := asFrameSink(&discardSink{})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := walkBlock(blk, maxSnapLen, true, s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/pkt")
	b.ReportMetric(float64(b.N*len(pkts))/b.Elapsed().Seconds()/1e6, "Mpps")
}

// realBlock is a block read from a live ring on a veth pair (see
// TestRecordRealBlock), trimmed to the bytes the kernel used.
const realBlock = "testdata/veth-block.bin"

// TestWalkRealBlock checks the walker against a block the kernel wrote, so
// the offsets assumed by buildBlock are the kernel's.
func TestWalkRealBlock(t *testing.T) {
	blk, err := os.ReadFile(realBlock)
	if err != nil {
		t.Fatalf("%v (regenerate as root with go test -run TestRecordRealBlock -update)", err)
	}
	var s recordSink
	res, err := walk(blk, maxSnapLen, true, &s)
	if err != nil {
		t.Fatal(err)
	}
	if res.packets != realBlockPackets {
		t.Fatalf("got %d packets, want %d", res.packets, realBlockPackets)
	}
	for i, p := range s.pkts {
		// The recorder sends 64-byte UDP frames tagged with VLAN 42 on odd
		// packets; the kernel took the tag out, the walker put it back.
		want := 64
		if i%2 == 1 {
			want = 68
			if binary.BigEndian.Uint16(p.data[12:]) != 0x8100 || binary.BigEndian.Uint16(p.data[14:])&0xfff != 42 {
				t.Errorf("packet %d: no VLAN 42 tag: % x", i, p.data[:18])
			}
		}
		if len(p.data) != want || p.origLen != want {
			t.Errorf("packet %d: %d bytes, orig %d; want %d", i, len(p.data), p.origLen, want)
		}
		if i > 0 && p.ts.Before(s.pkts[i-1].ts) {
			t.Errorf("packet %d: time goes back", i)
		}
	}
	// The kernel lays frames out where ringtest.Block does.
	if mac := binary.NativeEndian.Uint16(blk[binary.NativeEndian.Uint32(blk[blkFirstPkt:])+pktMac:]); mac != ringtest.Mac && mac != ringtest.Mac-vlanTagLen {
		t.Errorf("kernel tp_mac %d, ringtest.Block assumes %d", mac, ringtest.Mac)
	}
}

// realBlockPackets is how many packets TestRecordRealBlock puts in the block.
const realBlockPackets = 8

func writeGolden(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func FuzzWalkBlock(f *testing.F) {
	if blk, err := os.ReadFile(realBlock); err == nil {
		f.Add(blk, uint16(maxSnapLen>>4), true)
	}
	f.Add(buildBlock(4096, statusUser, manyPackets(3, 2)), uint16(64), true)
	f.Add(buildBlock(4096, statusUser|statusBlockTimeout, manyPackets(1, 1)), uint16(10), false)
	f.Fuzz(func(t *testing.T, blk []byte, snap16 uint16, ether bool) {
		snaplen := int(snap16)<<4 + 1
		var s discardSink
		res, err := walk(bytes.Clone(blk), snaplen, ether, &s)
		if err != nil && !errors.Is(err, ErrBadBlock) {
			t.Fatalf("unexpected error %v", err)
		}
		if int(res.packets) != s.n || int(res.bytes) != s.bytes {
			t.Fatalf("result %+v disagrees with sink %+v", res, s)
		}
		// In runs, the same packets and the same error.
		rs := &discardRunSink{buf: make([]pcapio.Frame, 3)}
		rres, rerr := walk(blk, snaplen, ether, rs)
		if rres != res || (rerr == nil) != (err == nil) || rs.n != s.n || rs.bytes != s.bytes {
			t.Fatalf("in runs: result %+v, %v, sink %+v; a packet at a time %+v, %v, %+v", rres, rerr, rs.discardSink, res, err, s)
		}
	})
}

// TestFloodBlocks: the cost harness's blocks (ringtest.Flood) walk into
// exactly the flood's frames, time stamps and lengths, block after block.
func TestFloodBlocks(t *testing.T) {
	for _, flows := range []int{64, 0} {
		fl := ringtest.NewFlood(flows, 64, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
		want := ringtest.NewFlood(flows, 64, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
		blk := fl.Block(1 << 16)
		seen := map[[6]byte]bool{} // source address and port
		var i uint64
		for range 3 {
			n := fl.Fill(blk)
			s := &recordSink{}
			got, err := WalkBlock(blk, maxSnapLen, true, s)
			if err != nil || got != n || n != (1<<16-ringtest.HeaderSize)/ringtest.Stride(64) {
				t.Fatalf("flows %d: walked %d of %d: %v", flows, got, n, err)
			}
			for _, p := range s.pkts {
				if f := want.Frame(i); !bytes.Equal(p.data, f) || !p.ts.Equal(want.Time(i)) || p.origLen != 64 {
					t.Fatalf("flows %d: packet %d: % x at %v, want % x at %v", flows, i, p.data, p.ts, f, want.Time(i))
				}
				seen[[6]byte(append(p.data[26:30:30], p.data[34:36]...))] = true
				i++
			}
		}
		if wantFlows := min(uint64(flows), i); flows == 0 && len(seen) != int(i) || flows > 0 && len(seen) != int(wantFlows) {
			t.Errorf("flows %d: %d distinct flows in %d frames", flows, len(seen), i)
		}
	}
}

// nanoSink records what WritePacketNanos gets.
type nanoSink struct {
	recordSink
	nanos []int64
}

func (s *nanoSink) WritePacketNanos(ns int64, data []byte, origLen int) error {
	s.nanos = append(s.nanos, ns)
	return s.WritePacket(time.Unix(0, ns), data, origLen)
}

// TestWalkBlockNanos: a NanoSink gets the same packets, with the kernel's
// time stamps as nanoseconds.
func TestWalkBlockNanos(t *testing.T) {
	fl := ringtest.NewFlood(64, 64, time.Date(2026, 3, 2, 10, 0, 0, 999_999_000, time.UTC))
	blk := fl.Block(1 << 14)
	n := fl.Fill(blk)
	var plain recordSink
	ns := &nanoSink{}
	WalkBlock(blk, maxSnapLen, true, &plain)
	if got, err := WalkBlock(blk, maxSnapLen, true, ns); err != nil || got != n || len(ns.nanos) != n {
		t.Fatalf("walked %d of %d: %v", got, n, err)
	}
	for i, p := range plain.pkts {
		if ns.nanos[i] != p.ts.UnixNano() || !bytes.Equal(ns.pkts[i].data, p.data) {
			t.Fatalf("packet %d: %d ns, want %v", i, ns.nanos[i], p.ts)
		}
	}
}

// TestWalkBlockRuns: a FrameSink gets a block's packets in runs as long
// as its buffer, the last one shorter, and the packets before a malformed
// header as a run of their own.
func TestWalkBlockRuns(t *testing.T) {
	blk := buildBlock(8192, statusUser, manyPackets(5, 0))
	broken := bytes.Clone(blk)
	fourth := blkHeaderSize + 3*align8(86+64)
	binary.NativeEndian.PutUint16(broken[fourth+pktMac:], 4)
	tests := []struct {
		name     string
		blk      []byte
		run      int
		wantRuns []int
		wantErr  error
	}{
		{"runs of 2", blk, 2, []int{2, 2, 1}, nil},
		{"runs of 5", blk, 5, []int{5}, nil},
		{"runs of 64", blk, 64, []int{5}, nil},
		{"malformed fourth header", broken, 2, []int{2, 1}, ErrBadBlock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRunSink(tt.run)
			res, err := walk(bytes.Clone(tt.blk), maxSnapLen, true, s)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			want := 0
			for _, n := range tt.wantRuns {
				want += n
			}
			if !slices.Equal(s.runs, tt.wantRuns) || int(res.packets) != want || len(s.pkts) != want {
				t.Fatalf("runs %v (%d packets, counted %d), want %v", s.runs, len(s.pkts), res.packets, tt.wantRuns)
			}
			for i, p := range s.pkts {
				if p.data[63] != byte(i) || !p.ts.Equal(time.Unix(1700000000, int64(i))) {
					t.Errorf("packet %d: tag %d at %v", i, p.data[63], p.ts)
				}
			}
		})
	}
}

// walk is walkBlock into any sink, as WalkBlock and a worker hand it.
func walk(blk []byte, snaplen int, ether bool, s Sink) (blockResult, error) {
	return walkBlock(blk, snaplen, ether, asFrameSink(s))
}
