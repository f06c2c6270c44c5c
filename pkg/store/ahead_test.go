package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Frames for the lookahead tests, each built from floodFrame's
// Ethernet/IPv4/UDP frame from src:sport.

// tagged puts VLAN tags (outer first) in front of f's EtherType.
func tagged(f []byte, vids ...uint16) []byte {
	out := append([]byte(nil), f[:12]...)
	for i, v := range vids {
		tpid := uint16(0x8100)
		if i == 0 && len(vids) > 1 {
			tpid = 0x88a8
		}
		out = binary.BigEndian.AppendUint16(out, tpid)
		out = binary.BigEndian.AppendUint16(out, v)
	}
	return append(out, f[12:]...)
}

// ipInIP carries f's IPv4 packet in an outer IPv4 header (protocol 4)
// from outer to 192.0.2.1.
func ipInIP(f []byte, outer uint32) []byte {
	inner := f[14:]
	out := append([]byte(nil), f[:14]...)
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 4
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(inner)))
	binary.BigEndian.PutUint32(ip[12:], outer)
	copy(ip[16:], []byte{192, 0, 2, 1})
	return append(append(out, ip...), inner...)
}

// tcpSyn is an Ethernet/IPv4/TCP SYN from src:sport to 198.51.100.7:443.
func tcpSyn(src uint32, sport uint16) []byte {
	f := make([]byte, 54)
	copy(f, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00})
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], 40)
	binary.BigEndian.PutUint32(ip[12:], src)
	copy(ip[16:], []byte{198, 51, 100, 7})
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], 443)
	binary.BigEndian.PutUint32(tcp[4:], uint32(sport)*7919)
	tcp[12], tcp[13] = 5<<4, 0x02
	return f
}

// udp6 is an Ethernet/IPv6/UDP frame from 2001:db8::<src>:sport to
// 2001:db8::53:53 (a DNS question's header, no question).
func udp6(src uint32, sport uint16) []byte {
	f := make([]byte, 14+40+8+12)
	copy(f, []byte{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd})
	ip := f[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 8+12)
	ip[6], ip[7] = 17, 64
	copy(ip[8:], []byte{0x20, 0x01, 0x0d, 0xb8})
	binary.BigEndian.PutUint32(ip[20:], src)
	copy(ip[24:], []byte{0x20, 0x01, 0x0d, 0xb8})
	ip[39] = 0x53
	u := ip[40:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], 53)
	binary.BigEndian.PutUint16(u[4:], 8+12)
	return f
}

// icmpEcho is an Ethernet/IPv4 ICMP echo request (or reply) from src.
func icmpEcho(src uint32, reply bool) []byte {
	f := floodFrame(src, 0)
	f[14+9] = 1
	f[14+20], f[14+21] = 8, 0
	if reply {
		f[14+20] = 0
	}
	return f
}

// arpFrame is an Ethernet ARP request.
func arpFrame(i int) []byte {
	f := make([]byte, 42)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 2, 0x08, 0x06})
	copy(f[14:], []byte{0, 1, 8, 0, 6, 4, 0, 1})
	binary.BigEndian.PutUint32(f[28:], 0x0a000001)
	binary.BigEndian.PutUint32(f[38:], 0x0a000000|uint32(i&0xff))
	return f
}

// aheadLoad is the frames of one lookahead case.
type aheadLoad func() [][]byte

func floodLoad(n int) aheadLoad {
	return func() [][]byte {
		out := make([][]byte, n)
		x := uint32(2463534242)
		for i := range out {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			out[i] = floodFrame(x, uint16(x>>16))
		}
		return out
	}
}

func flows64Load(n int) aheadLoad {
	return func() [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = floodFrame(0x0a000000|uint32(i%64), 1024+uint16(i%64))
		}
		return out
	}
}

// mixedLoad interleaves a flood with busy flows, flows whose second
// packet admits them from a held slot, non-IP frames (ARP, a frame too
// short for any header), VLAN and QinQ tags, an IP-in-IP tunnel, TCP,
// IPv6 (DNS: never held) and ICMP, and now and then a packet longer than
// a store record (cut, and a shard of a larger snap length).
func mixedLoad(n int, cuts bool) aheadLoad {
	return func() [][]byte {
		var out [][]byte
		x := uint32(88172645)
		for i := 0; len(out) < n; i++ {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			switch i % 16 {
			case 0, 3, 6, 9:
				out = append(out, floodFrame(x, uint16(x>>16)))
			case 1:
				out = append(out, floodFrame(0x0a000000|uint32(i%64), 2000))
			case 2:
				// Its second packet comes a few groups later.
				out = append(out, floodFrame(0xc6336400|uint32(i/16%256), 3000))
				if k := len(out) - 40; k > 0 && i%32 == 2 {
					out = append(out, floodFrame(0xc6336400|uint32((i/16-2)%256), 3000))
				}
			case 4:
				out = append(out, arpFrame(i))
			case 5:
				out = append(out, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
			case 7:
				out = append(out, tagged(floodFrame(x, 4000), uint16(10+i%3)))
			case 8:
				out = append(out, tagged(floodFrame(x, 4001), 100, uint16(200+i%2)))
			case 10:
				out = append(out, ipInIP(floodFrame(x, 5000), 0xcb007100|uint32(i%4)))
			case 11:
				out = append(out, tcpSyn(x, uint16(x)))
			case 12:
				out = append(out, udp6(x, uint16(x>>8)))
			case 13:
				out = append(out, icmpEcho(0x0a000100|uint32(i%8), i%32 == 13))
			case 14:
				if cuts && i%512 == 14 {
					big := make([]byte, pcapio.MaxRecord+100)
					copy(big, floodFrame(x, 6000))
					out = append(out, big)
				} else {
					out = append(out, floodFrame(x, 6001))
				}
			case 15:
				out = append(out, floodFrame(0x0a000000|uint32(i%64), 2000))
			}
		}
		return out
	}
}

// aheadMode is how a case's frames reach the writer.
type aheadMode struct {
	name   string
	runs   []int // run lengths, cycled; nil: a packet at a time
	always bool  // every group in lookahead
}

// writeAhead stores frames in dir in mode m and returns the writer.
func writeAhead(t *testing.T, dir string, frames [][]byte, opts WriterOptions, m aheadMode) *Writer {
	t.Helper()
	_, w := newTestWriter(t, dir, opts)
	w.SetLinkType(pkthdr.LinkEthernet)
	w.aheadAlways = m.always
	ts := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC).UnixNano()
	frame := func(i int) pcapio.Frame {
		return pcapio.Frame{Nanos: ts + int64(i)*1000, Data: frames[i], OrigLen: len(frames[i])}
	}
	var cut *CutError
	if m.runs == nil {
		for i := range frames {
			f := frame(i)
			if err := w.WritePacketNanos(f.Nanos, f.Data, f.OrigLen); err != nil && !errors.As(err, &cut) {
				t.Fatal(err)
			}
		}
	} else {
		fs := w.Frames()
		for i, r := 0, 0; i < len(frames); r++ {
			n := min(m.runs[r%len(m.runs)], len(frames)-i, len(fs))
			for j := range n {
				fs[j] = frame(i + j)
			}
			got, err := w.WriteFrames(fs[:n])
			if err != nil && !errors.As(err, &cut) {
				t.Fatal(err)
			}
			if got == 0 {
				t.Fatalf("a run of %d stored nothing", n)
			}
			i += got
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w
}

// storeFiles reads every file of the store in dir but its lock, the
// shards with their header's creation time and CRC zeroed (the wall
// clock when each was opened).
func storeFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "LOCK" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if filepath.Ext(path) == ".shard" {
			h := bytes.Index(b, []byte("NWHS"))
			if h < 0 || h+40 > len(b) {
				t.Fatalf("%s: no shard header", path)
			}
			clear(b[h+16 : h+24])
			clear(b[h+36 : h+40])
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestWriteFramesAhead: runs stored with lookahead (a group's packets
// parsed and their flow keys hashed first, their flow-table slots read
// together, the keys handed to the table) give the store a packet at a
// time gives: shards (but their creation time), index and flow files,
// byte for byte, and the same counts.
func TestWriteFramesAhead(t *testing.T) {
	flowsOf := func(maxFlows int) func() FlowTable {
		return func() FlowTable {
			return flow.NewBuilder(flow.Options{MaxFlows: maxFlows, DropSingles: true, Encoded: true})
		}
	}
	modes := []aheadMode{
		{name: "one at a time"},
		{name: "runs", runs: []int{64}},
		{name: "runs, every group ahead", runs: []int{64, 1, 17, 5, 33, 2, 16}, always: true},
	}
	for _, tc := range []struct {
		name string
		load aheadLoad
		opts WriterOptions
		// wantAhead: whether runs (without aheadAlways) go in lookahead
		// for most of the load, or for hardly any of it.
		wantAhead bool
	}{
		{"flood, full table", floodLoad(6000), WriterOptions{BlockSize: 8 << 10, NewFlows: flowsOf(256)}, true},
		{"flood, room in the table", floodLoad(6000), WriterOptions{BlockSize: 8 << 10, NewFlows: flowsOf(1 << 16)}, true},
		{"64 flows", flows64Load(6000), WriterOptions{BlockSize: 8 << 10, NewFlows: flowsOf(256)}, false},
		{"seals mid-run", floodLoad(6000), WriterOptions{BlockSize: 4 << 10, ShardSize: 24 << 10, NewFlows: flowsOf(128)}, true},
		{"mixed", mixedLoad(6000, false), WriterOptions{BlockSize: 8 << 10, NewFlows: flowsOf(128)}, true},
		{"mixed, cut packets", mixedLoad(3000, true), WriterOptions{BlockSize: 8 << 10, NewFlows: flowsOf(128)}, true},
		{"mixed, seals mid-run", mixedLoad(6000, false), WriterOptions{BlockSize: 4 << 10, ShardSize: 32 << 10, NewFlows: flowsOf(128)}, true},
		{"no flow table", mixedLoad(2000, false), WriterOptions{BlockSize: 8 << 10}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames := tc.load()
			var want map[string][]byte
			var wantStats WriterStats
			for _, m := range modes {
				opts := tc.opts
				opts.ID, opts.Compressors, opts.Inline = "c00", 1, true
				w := writeAhead(t, t.TempDir(), frames, opts, m)
				got, st := storeFiles(t, w.st.Dir), w.Stats()
				if want == nil {
					want, wantStats = got, st
					if st.StoredPackets != uint64(len(frames)) || st.Sealed == 0 {
						t.Fatalf("%s: stored %d of %d packets in %d shards", m.name, st.StoredPackets, len(frames), st.Sealed)
					}
					continue
				}
				if st != wantStats {
					t.Errorf("%s: stats %+v, want %+v", m.name, st, wantStats)
				}
				if len(got) != len(want) {
					t.Errorf("%s: %d files, want %d", m.name, len(got), len(want))
				}
				for name, b := range want {
					if !bytes.Equal(got[name], b) {
						t.Errorf("%s: %s differs (%d bytes, want %d)", m.name, name, len(got[name]), len(b))
					}
				}
				groups := uint64(len(frames)) / aheadGroup
				switch {
				case m.always && tc.opts.NewFlows != nil && w.aheadGroups < groups:
					t.Errorf("%s: %d groups ahead, want every one of about %d", m.name, w.aheadGroups, groups)
				case m.runs != nil && !m.always && tc.wantAhead && w.aheadGroups < groups/2:
					t.Errorf("%s: %d groups of %d ahead, want most", m.name, w.aheadGroups, groups)
				case m.runs != nil && !m.always && !tc.wantAhead && w.aheadGroups > uint64(st.Sealed)*(64/aheadGroup+1):
					// A new shard's table misses the first packet of each
					// of its flows: 64 in this load.
					t.Errorf("%s: %d groups of %d ahead, want at most a shard's start", m.name, w.aheadGroups, groups)
				}
			}
			if tc.name == "mixed, cut packets" && wantStats.Cut == 0 {
				t.Error("no packet was cut")
			}
		})
	}
}

// FuzzWriteFramesAhead: frames of any bytes (a two-byte length before
// each) stored in runs with every group in lookahead give the store a
// packet at a time gives, through a flow table small enough that first
// packets are held, and shards small enough to be sealed mid-run.
func FuzzWriteFramesAhead(f *testing.F) {
	enc := func(frames [][]byte) []byte {
		var b []byte
		for _, fr := range frames {
			b = binary.BigEndian.AppendUint16(b, uint16(len(fr)))
			b = append(b, fr...)
		}
		return b
	}
	f.Add(enc(mixedLoad(250, false)()))
	f.Add(enc(floodLoad(250)()))
	f.Add(enc(flows64Load(100)()))
	f.Fuzz(func(t *testing.T, in []byte) {
		// Bounded so that an input seals few shards: each seal syncs files.
		var frames [][]byte
		for len(in) >= 2 && len(frames) < 256 {
			n := min(int(binary.BigEndian.Uint16(in))%1601, len(in)-2)
			frames = append(frames, in[2:2+n])
			in = in[2+n:]
		}
		if len(frames) == 0 {
			return
		}
		opts := WriterOptions{ID: "c00", BlockSize: 2 << 10, ShardSize: 16 << 10, Compressors: 1, Inline: true,
			NewFlows: func() FlowTable {
				return flow.NewBuilder(flow.Options{MaxFlows: 8, DropSingles: true, Encoded: true})
			}}
		one := writeAhead(t, t.TempDir(), frames, opts, aheadMode{name: "one at a time"})
		runs := writeAhead(t, t.TempDir(), frames, opts, aheadMode{name: "runs", runs: []int{64, 3, 16, 1}, always: true})
		want, got := storeFiles(t, one.st.Dir), storeFiles(t, runs.st.Dir)
		if len(got) != len(want) {
			t.Fatalf("%d files, want %d", len(got), len(want))
		}
		for name, b := range want {
			if !bytes.Equal(got[name], b) {
				t.Fatalf("%s differs (%d bytes, want %d)", name, len(got[name]), len(b))
			}
		}
		if one.Stats() != runs.Stats() {
			t.Fatalf("stats %+v, want %+v", runs.Stats(), one.Stats())
		}
	})
}
