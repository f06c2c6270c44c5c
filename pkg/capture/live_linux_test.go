//go:build linux

package capture_test

// Live tests: real traffic from trafgen between two network namespaces the
// test creates (internal/netns), captured on the receiving veth end from a
// socket opened inside that namespace. They need root and trafgen, and skip
// without them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/netns"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/capture/livefilter"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"golang.org/x/sys/unix"
)

// livePair makes the namespaces, or skips.
func livePair(t *testing.T) *netns.Pair {
	t.Helper()
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	return netns.NewPair(t)
}

// openIn opens a capture from inside ns.
func openIn(t *testing.T, ns *netns.NS, cfg capture.Config) *capture.Capture {
	t.Helper()
	var c *capture.Capture
	if err := ns.Do(func() (err error) { c, err = capture.Open(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// running is a capture started in the background.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	stats  capture.Stats
	err    error
}

func start(c *capture.Capture, sinks ...capture.Sink) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.stats, r.err = c.Run(ctx, sinks)
	}()
	return r
}

// stop cancels the capture and waits for Run to return.
func (r *running) stop(t *testing.T) (capture.Stats, error) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of cancel")
	}
	return r.stats, r.err
}

// flowSink counts packets per UDP source port and checks every frame as it
// comes, keeping nothing, so it is fast enough for a full-speed burst.
type flowSink struct {
	packets, bytes int
	perPort        map[uint16]int
	wantLen        int // expected captured length; 0: any
	wantOrig       int
	bad            int
	firstBad       string
	flushes        atomic.Int32
	lastTS         time.Time
	backwards      int
}

func newFlowSink(wantLen, wantOrig int) *flowSink {
	return &flowSink{perPort: map[uint16]int{}, wantLen: wantLen, wantOrig: wantOrig}
}

func (s *flowSink) WritePacket(ts time.Time, data []byte, origLen int) error {
	s.packets++
	s.bytes += len(data)
	if (s.wantLen != 0 && len(data) != s.wantLen) || (s.wantOrig != 0 && origLen != s.wantOrig) {
		if s.bad == 0 {
			s.firstBad = fmt.Sprintf("len %d orig %d: % x", len(data), origLen, data)
		}
		s.bad++
	}
	if ts.Before(s.lastTS) {
		s.backwards++
	}
	s.lastTS = ts
	if len(data) >= 36 && binary.BigEndian.Uint16(data[12:]) == 0x0800 && data[23] == 17 {
		s.perPort[binary.BigEndian.Uint16(data[34:])]++
	}
	return nil
}

func (s *flowSink) Flush() error { s.flushes.Add(1); return nil }

func (s *flowSink) check(t *testing.T) {
	t.Helper()
	if s.bad > 0 {
		t.Errorf("%d packets with unexpected lengths; first: %s", s.bad, s.firstBad)
	}
	if s.backwards > 0 {
		t.Errorf("timestamps went backwards %d times", s.backwards)
	}
}

func flood(t *testing.T, p *netns.Pair, f netns.UDPFlood, opt netns.TrafgenOptions) uint64 {
	t.Helper()
	cfg, err := f.TrafgenConfig()
	if err != nil {
		t.Fatal(err)
	}
	sent, err := p.A.Trafgen(context.Background(), t, p.DevA, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if sent != uint64(opt.Count) {
		t.Fatalf("trafgen sent %d of %d packets", sent, opt.Count)
	}
	return sent
}

// arrived waits until the receiving interface has counted want packets
// (the sender's softirq may still be delivering the tail of a burst).
func arrived(t *testing.T, p *netns.Pair, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := p.B.Stats(p.DevB)
		if err != nil {
			t.Fatal(err)
		}
		if st.RxPackets >= want {
			if st.RxPackets != want || st.RxDropped != 0 {
				t.Fatalf("%s received %d packets (%d dropped), %d sent", p.DevB, st.RxPackets, st.RxDropped, want)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s received %d of %d packets", p.DevB, st.RxPackets, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAccounting asserts the capture's books balance and nothing was lost.
func checkAccounting(t *testing.T, st capture.Stats, sent uint64) {
	t.Helper()
	var sum capture.Counters
	for _, w := range st.Workers {
		sum.Packets += w.Packets
		sum.KernelPackets += w.KernelPackets
		sum.KernelDrops += w.KernelDrops
		if w.Packets+w.KernelDrops != w.KernelPackets {
			t.Errorf("worker: handed %d + dropped %d != kernel %d", w.Packets, w.KernelDrops, w.KernelPackets)
		}
	}
	if sum.Packets != st.Total.Packets || sum.KernelPackets != st.Total.KernelPackets || sum.KernelDrops != st.Total.KernelDrops {
		t.Errorf("workers add up to %+v, total says %+v", sum, st.Total)
	}
	if st.Total.KernelPackets != sent {
		t.Errorf("kernel accepted %d packets, %d sent", st.Total.KernelPackets, sent)
	}
	if st.Total.KernelDrops != 0 || st.Total.Packets != sent {
		t.Errorf("handed %d of %d packets to the sinks, kernel dropped %d", st.Total.Packets, sent, st.Total.KernelDrops)
	}
}

// TestEveryPacket: a 200k-packet burst as fast as trafgen goes; with a big
// enough ring every one reaches the sink.
func TestEveryPacket(t *testing.T) {
	p := livePair(t)
	c := openIn(t, p.B, capture.Config{Interface: p.DevB, RingSize: 64 << 20})
	if c.LinkType() != pkthdr.LinkEthernet {
		t.Fatalf("link type %d, want Ethernet", c.LinkType())
	}
	sink := newFlowSink(64, 64)
	r := start(c, sink)
	const n = 200_000
	sent := flood(t, p, p.Flood(), netns.TrafgenOptions{Count: n})
	arrived(t, p, sent)
	st, err := r.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, st, sent)
	sink.check(t)
	if sink.packets != n {
		t.Errorf("sink got %d packets, want %d", sink.packets, n)
	}
	if len(sink.perPort) != 64 {
		t.Errorf("saw %d source ports, want 64", len(sink.perPort))
	}
	if st.Total.Bytes != 64*n {
		t.Errorf("bytes %d, want %d", st.Total.Bytes, 64*n)
	}
	if st.Total.Flushes < 1 {
		t.Errorf("sink never flushed")
	}
	t.Logf("%d packets in %d blocks, %d flushes", st.Total.Packets, st.Total.Blocks, st.Total.Flushes)
}

// TestFanout: two workers split a burst by flow and together lose nothing;
// each flow goes to one worker only.
func TestFanout(t *testing.T) {
	p := livePair(t)
	c := openIn(t, p.B, capture.Config{Interface: p.DevB, Workers: 2, RingSize: 64 << 20})
	s0, s1 := newFlowSink(64, 64), newFlowSink(64, 64)
	r := start(c, s0, s1)
	const n = 200_000
	sent := flood(t, p, p.Flood(), netns.TrafgenOptions{Count: n})
	arrived(t, p, sent)
	st, err := r.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, st, sent)
	s0.check(t)
	s1.check(t)
	if len(st.Workers) != 2 || uint64(s0.packets) != st.Workers[0].Packets || uint64(s1.packets) != st.Workers[1].Packets {
		t.Fatalf("sinks got %d and %d, stats say %+v", s0.packets, s1.packets, st.Workers)
	}
	if s0.packets == 0 || s1.packets == 0 {
		t.Fatalf("no split: %d and %d packets", s0.packets, s1.packets)
	}
	for port := range s0.perPort {
		if s1.perPort[port] > 0 {
			t.Errorf("flow from port %d reached both workers (%d and %d)", port, s0.perPort[port], s1.perPort[port])
		}
	}
	if len(s0.perPort)+len(s1.perPort) != 64 {
		t.Errorf("workers saw %d+%d flows, want 64", len(s0.perPort), len(s1.perPort))
	}
	t.Logf("split %d / %d packets, %d / %d flows", s0.packets, s1.packets, len(s0.perPort), len(s1.perPort))
}

// TestFanoutGroupsAreSeparate: two captures on one interface, each with
// two workers, both see every packet (their fanout groups differ).
func TestFanoutGroupsAreSeparate(t *testing.T) {
	p := livePair(t)
	cfg := capture.Config{Interface: p.DevB, Workers: 2, RingSize: 16 << 20}
	c1, c2 := openIn(t, p.B, cfg), openIn(t, p.B, cfg)
	a0, a1, b0, b1 := newFlowSink(64, 64), newFlowSink(64, 64), newFlowSink(64, 64), newFlowSink(64, 64)
	r1, r2 := start(c1, a0, a1), start(c2, b0, b1)
	const n = 20_000
	sent := flood(t, p, p.Flood(), netns.TrafgenOptions{Count: n, Rate: "200000pps"})
	arrived(t, p, sent)
	for _, r := range []*running{r1, r2} {
		st, err := r.stop(t)
		if err != nil {
			t.Fatal(err)
		}
		checkAccounting(t, st, sent)
	}
}

// TestSnapLen: the sink gets snaplen bytes and the length on the wire.
func TestSnapLen(t *testing.T) {
	p := livePair(t)
	for _, tt := range []struct {
		snaplen, frame, wantLen int
	}{{40, 64, 40}, {64, 64, 64}, {100, 64, 64}, {1, 128, 1}} {
		t.Run(fmt.Sprintf("snap%d-frame%d", tt.snaplen, tt.frame), func(t *testing.T) {
			c := openIn(t, p.B, capture.Config{Interface: p.DevB, SnapLen: tt.snaplen, RingSize: 8 << 20})
			sink := newFlowSink(tt.wantLen, tt.frame)
			r := start(c, sink)
			before, _ := p.B.Stats(p.DevB)
			f := p.Flood()
			f.FrameLen = tt.frame
			sent := flood(t, p, f, netns.TrafgenOptions{Count: 1000})
			arrived(t, p, before.RxPackets+sent)
			st, err := r.stop(t)
			if err != nil {
				t.Fatal(err)
			}
			checkAccounting(t, st, sent)
			sink.check(t)
			if st.Total.Bytes != uint64(tt.wantLen)*sent {
				t.Errorf("bytes %d, want %d", st.Total.Bytes, uint64(tt.wantLen)*sent)
			}
		})
	}
}

// TestCancelMidBurst: cancelling while traffic flows stops promptly, and
// every packet the kernel accepted is handed to the sink.
func TestCancelMidBurst(t *testing.T) {
	p := livePair(t)
	c := openIn(t, p.B, capture.Config{Interface: p.DevB, RingSize: 32 << 20, BlockSize: 1 << 16})
	sink := newFlowSink(64, 64)
	r := start(c, sink)
	ctx, stopTraffic := context.WithCancel(context.Background())
	defer stopTraffic()
	done := make(chan error, 1)
	cfg, err := p.Flood().TrafgenConfig()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := p.A.Trafgen(ctx, t, p.DevA, cfg, netns.TrafgenOptions{Count: 1_000_000, Rate: "100000pps"})
		done <- err
	}()
	// Cancel once packets are flowing.
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Total.Packets < 20_000 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d packets after 5 s", c.Stats().Total.Packets)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t0 := time.Now()
	st, err := r.stop(t)
	took := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	stopTraffic()
	<-done
	// Two block timeouts of drain plus the walk; generous for loaded CI.
	if took > 3*time.Second {
		t.Errorf("stopping took %v", took)
	}
	if st.Total.Packets+st.Total.KernelDrops != st.Total.KernelPackets || st.Total.KernelDrops != 0 {
		t.Errorf("handed %d + dropped %d, kernel accepted %d", st.Total.Packets, st.Total.KernelDrops, st.Total.KernelPackets)
	}
	if uint64(sink.packets) != st.Total.Packets {
		t.Errorf("sink got %d, stats say %d", sink.packets, st.Total.Packets)
	}
	rx, _ := p.B.Stats(p.DevB)
	if st.Total.Packets >= rx.RxPackets || st.Total.Packets < 20_000 {
		t.Errorf("captured %d of %d received: not stopped mid-burst", st.Total.Packets, rx.RxPackets)
	}
	sink.check(t)
	t.Logf("stopped after %d packets in %v", st.Total.Packets, took)
}

// TestCancelIdle: a capture on a silent link stops quickly and cleanly.
func TestCancelIdle(t *testing.T) {
	p := livePair(t)
	c := openIn(t, p.B, capture.Config{Interface: p.DevB, Workers: 2, RingSize: 8 << 20})
	r := start(c, newFlowSink(0, 0), newFlowSink(0, 0))
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	st, err := r.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("stopping an idle capture took %v", took)
	}
	if st.Total.Packets != 0 || st.Total.KernelPackets != 0 {
		t.Errorf("captured %+v on a silent link", st.Total)
	}
}

// syncSink is a recordSink safe to inspect while Run is going.
type syncSink struct {
	mu      sync.Mutex
	pkts    [][]byte
	ts      []time.Time
	orig    []int
	flushed int // packets written before the last Flush
	flushes int
	failAt  int
}

var errDiskFull = errors.New("disk full")

func (s *syncSink) WritePacket(ts time.Time, data []byte, origLen int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAt > 0 && len(s.pkts)+1 == s.failAt {
		return errDiskFull
	}
	s.pkts = append(s.pkts, bytes.Clone(data))
	s.ts = append(s.ts, ts)
	s.orig = append(s.orig, origLen)
	return nil
}

func (s *syncSink) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
	s.flushed = len(s.pkts)
	return nil
}

func (s *syncSink) state() (written, flushed, flushes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pkts), s.flushed, s.flushes
}

// TestQuietLinkFlushes: a few packets on an otherwise silent link reach
// the sink within the block timeout and are flushed within the flush
// interval, without waiting for the block to fill or the capture to stop.
func TestQuietLinkFlushes(t *testing.T) {
	p := livePair(t)
	c := openIn(t, p.B, capture.Config{Interface: p.DevB, RingSize: 8 << 20,
		BlockTimeout: 20 * time.Millisecond, FlushInterval: 200 * time.Millisecond})
	sink := &syncSink{}
	r := start(c, sink)
	sent := flood(t, p, p.Flood(), netns.TrafgenOptions{Count: 10})
	t0 := time.Now()
	for {
		written, flushed, _ := sink.state()
		if written == int(sent) && flushed == int(sent) {
			break
		}
		if time.Since(t0) > 2*time.Second {
			t.Fatalf("after 2 s: %d of %d packets written, %d flushed", written, sent, flushed)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("10 packets written and flushed %v after trafgen returned", time.Since(t0))
	st, err := r.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, st, sent)
}

// TestSinkError: a failing sink stops the capture; Run returns its error
// and the stats of what was stored.
func TestSinkError(t *testing.T) {
	p := livePair(t)
	c := openIn(t, p.B, capture.Config{Interface: p.DevB, Workers: 2, RingSize: 8 << 20})
	bad, good := &syncSink{failAt: 101}, &syncSink{}
	r := start(c, bad, good)
	flood(t, p, p.Flood(), netns.TrafgenOptions{Count: 5000, Rate: "50000pps"})
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run still going 5 s after the sink failed")
	}
	if !errors.Is(r.err, errDiskFull) {
		t.Fatalf("Run error %v, want the sink's", r.err)
	}
	if w, _, _ := bad.state(); w != 100 || r.stats.Workers[0].Packets != 100 {
		t.Errorf("failing sink stored %d, stats say %d; want 100", w, r.stats.Workers[0].Packets)
	}
	if w, _, _ := good.state(); uint64(w) != r.stats.Workers[1].Packets {
		t.Errorf("other sink stored %d, stats say %d", w, r.stats.Workers[1].Packets)
	}
}

// TestStatsWhileRunning: Stats() is safe during Run and only grows.
func TestStatsWhileRunning(t *testing.T) {
	p := livePair(t)
	c := openIn(t, p.B, capture.Config{Interface: p.DevB, Workers: 2, RingSize: 64 << 20})
	r := start(c, newFlowSink(64, 64), newFlowSink(64, 64))
	cfg, _ := p.Flood().TrafgenConfig()
	done := make(chan error, 1)
	go func() {
		_, err := p.A.Trafgen(context.Background(), t, p.DevA, cfg, netns.TrafgenOptions{Count: 150_000, Rate: "100000pps"})
		done <- err
	}()
	var last capture.Counters
	samples := 0
	for loop := true; loop; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			loop = false
		case <-time.After(20 * time.Millisecond):
		}
		st := c.Stats()
		samples++
		if st.Total.Packets < last.Packets || st.Total.KernelPackets < last.KernelPackets || st.Total.Blocks < last.Blocks {
			t.Fatalf("stats went back: %+v after %+v", st.Total, last)
		}
		last = st.Total
	}
	arrived(t, p, 150_000)
	st, err := r.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, st, 150_000)
	if samples < 10 || last.KernelPackets == 0 {
		t.Errorf("%d samples, last %+v: kernel counters never collected during the run", samples, last)
	}
}

// TestPromiscuous: the interface is promiscuous while the capture is open
// and not after Close.
func TestPromiscuous(t *testing.T) {
	p := livePair(t)
	promisc := func() string {
		out, err := exec.Command("ip", "-n", p.B.Name, "-d", "link", "show", "dev", p.DevB).Output()
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(out))
		for i, w := range f {
			if w == "promiscuity" && i+1 < len(f) {
				return f[i+1]
			}
		}
		t.Fatalf("no promiscuity in %s", out)
		return ""
	}
	var c *capture.Capture
	if err := p.B.Do(func() (err error) {
		c, err = capture.Open(capture.Config{Interface: p.DevB, Workers: 2, RingSize: 8 << 20, Promiscuous: true})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := promisc(); got != "1" {
		t.Errorf("promiscuity %s while capturing, want 1", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if got := promisc(); got != "0" {
		t.Errorf("promiscuity %s after Close, want 0", got)
	}
}

func TestOpenErrors(t *testing.T) {
	p := livePair(t)
	for _, tt := range []struct {
		name string
		cfg  capture.Config
		want string
	}{
		{"no such interface", capture.Config{Interface: "nwh-absent0"}, "nwh-absent0"},
		{"interface of another namespace", capture.Config{Interface: p.DevA}, p.DevA},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := p.B.Do(func() error {
				c, err := capture.Open(tt.cfg)
				if err == nil {
					c.Close()
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one naming %q", err, tt.want)
			}
		})
	}
}

// testFrame builds an Ethernet (optionally 802.1Q) IPv4 frame carrying UDP
// or a TCP SYN, n bytes long.
func testFrame(n int, vlan uint16, proto byte, sport, dport uint16) []byte {
	f := []byte{0x02, 0x6e, 0x77, 0x68, 0xff, 0xfe, 0x02, 0x6e, 0x77, 0x68, 0x00, 0x0a}
	if vlan != 0 {
		f = binary.BigEndian.AppendUint16(f, 0x8100)
		f = binary.BigEndian.AppendUint16(f, vlan)
	}
	f = binary.BigEndian.AppendUint16(f, 0x0800)
	l3 := len(f)
	ipLen := n - l3
	f = append(f, 0x45, 0)
	f = binary.BigEndian.AppendUint16(f, uint16(ipLen))
	f = append(f, 0, 0, 0x40, 0, 64, proto, 0, 0, 198, 18, 200, 1, 198, 18, 200, 2)
	var sum uint32
	for i := l3; i < l3+20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(f[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(f[l3+10:], ^uint16(sum))
	f = binary.BigEndian.AppendUint16(f, sport)
	f = binary.BigEndian.AppendUint16(f, dport)
	if proto == 17 {
		f = binary.BigEndian.AppendUint16(f, uint16(ipLen-20))
		f = append(f, 0, 0)
	} else {
		f = append(f, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0)
	}
	return append(f, make([]byte, n-len(f))...)
}

// pcapPacket is one record of a pcap file.
type pcapPacket struct {
	ts      time.Time
	data    []byte
	origLen int
}

// readPcap reads what tcpdump wrote.
func readPcap(t *testing.T, path string) []pcapPacket {
	t.Helper()
	r, err := pcapio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Nanosecond() {
		t.Fatalf("%s: not a nanosecond pcap", path)
	}
	var out []pcapPacket
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, pcapPacket{ts: p.Timestamp, data: bytes.Clone(p.Data), origLen: p.OrigLen})
	}
}

// tcpdump runs tcpdump on the receiving end until stop is called.
type tcpdumpRun struct {
	cmd    *exec.Cmd
	file   string
	stderr bytes.Buffer
}

func startTcpdump(t *testing.T, p *netns.Pair, snaplen int, expr string) *tcpdumpRun {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tcpdump.pcap")
	args := []string{"-i", p.DevB, "-n", "-p", "-Z", "root", "-B", "16384", "-s", fmt.Sprint(snaplen),
		"--time-stamp-precision=nano", "-w", file}
	if expr != "" {
		args = append(args, expr)
	}
	td := &tcpdumpRun{cmd: p.B.Command(context.Background(), "tcpdump", args...), file: file}
	pr, pw := io.Pipe()
	td.cmd.Stderr = io.MultiWriter(pw, &td.stderr)
	if err := td.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// tcpdump says "listening on" once its filter is in place.
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("tcpdump did not start: %s", td.stderr.String())
	}
	t.Cleanup(func() { _ = td.cmd.Process.Kill(); pw.Close() })
	return td
}

func (td *tcpdumpRun) stop(t *testing.T) []pcapPacket {
	t.Helper()
	_ = td.cmd.Process.Signal(os.Interrupt)
	if err := td.cmd.Wait(); err != nil {
		t.Fatalf("tcpdump: %v: %s", err, td.stderr.String())
	}
	return readPcap(t, td.file)
}

// TestMatchesTcpdump: over the same mixed traffic (plain and VLAN-tagged
// UDP, TCP), the capture and tcpdump, given the same filter and snap
// length, store the same packets: same bytes, same lengths, same
// nanosecond timestamps (both read the kernel's per-packet time stamp).
func TestMatchesTcpdump(t *testing.T) {
	p := livePair(t)
	testenv.Tool(t, "tcpdump")
	frames := [][]byte{
		testFrame(64, 0, 17, 1111, 9),
		testFrame(80, 0, 17, 2222, 53),
		testFrame(90, 7, 17, 3333, 53),
		testFrame(70, 0, 6, 4444, 80),
		testFrame(300, 9, 6, 5555, 443),
	}
	cases := []struct {
		expr    string
		snaplen int
		want    int // packets per round of the five frames
	}{
		{"", 262144, 5},
		{"", 40, 5},
		// Live on Linux the kernel has taken the tag out before the filter
		// runs, so an expression without "vlan" also matches tagged
		// frames, in tcpdump as here.
		{"udp dst port 53", 262144, 2},
		{"vlan 7", 262144, 1},
		{"vlan and tcp", 96, 1},
		{"tcp or (vlan and udp)", 262144, 3},
		{"not vlan", 262144, 3},
	}
	type side struct {
		c    *capture.Capture
		r    *running
		sink *syncSink
		td   *tcpdumpRun
	}
	sides := make([]side, len(cases))
	for i, tc := range cases {
		var prog []capture.Instruction
		if tc.expr != "" {
			var lt pkthdr.LinkType
			if err := p.B.Do(func() (err error) { prog, lt, err = livefilter.Compile(p.DevB, tc.snaplen, tc.expr); return err }); err != nil {
				t.Fatal(err)
			}
			if lt != pkthdr.LinkEthernet {
				t.Fatalf("libpcap link type %d, want Ethernet", lt)
			}
		}
		c := openIn(t, p.B, capture.Config{Interface: p.DevB, SnapLen: tc.snaplen, RingSize: 8 << 20, Filter: prog})
		sides[i] = side{c: c, sink: &syncSink{}, td: startTcpdump(t, p, tc.snaplen, tc.expr)}
		sides[i].r = start(c, sides[i].sink)
	}
	const rounds = 400
	sent, err := p.A.Trafgen(context.Background(), t, p.DevA, netns.TrafgenFrames(frames...), netns.TrafgenOptions{Count: rounds * len(frames), Rate: "20000pps"})
	if err != nil {
		t.Fatal(err)
	}
	arrived(t, p, sent)
	// tcpdump loses what sits in a ring block not yet handed over when it
	// is interrupted: give its kernel time to retire the last one.
	time.Sleep(1200 * time.Millisecond)
	for i, tc := range cases {
		t.Run(fmt.Sprintf("%q/snap%d", tc.expr, tc.snaplen), func(t *testing.T) {
			st, err := sides[i].r.stop(t)
			if err != nil {
				t.Fatal(err)
			}
			ref := sides[i].td.stop(t)
			s := sides[i].sink
			if len(ref) != rounds*tc.want {
				t.Errorf("tcpdump stored %d packets, want %d: %s", len(ref), rounds*tc.want, sides[i].td.stderr.String())
				if len(ref) > 0 {
					t.Logf("tcpdump first %v last %v; capture first %v last %v", ref[0].ts, ref[len(ref)-1].ts, s.ts[0], s.ts[len(s.ts)-1])
				}
			}
			if len(s.pkts) != len(ref) || st.Total.Packets != uint64(len(ref)) || st.Total.KernelDrops != 0 {
				t.Fatalf("capture stored %d (stats %+v), tcpdump %d", len(s.pkts), st.Total, len(ref))
			}
			for j, r := range ref {
				if !bytes.Equal(s.pkts[j], r.data) || s.orig[j] != r.origLen || !s.ts[j].Equal(r.ts) {
					t.Fatalf("packet %d differs:\ncapture %v orig %d % x\ntcpdump %v orig %d % x",
						j, s.ts[j], s.orig[j], s.pkts[j], r.ts, r.origLen, r.data)
				}
			}
		})
	}
}

// TestRawIPLink: a tun device has no link-layer header; what it receives
// is stored as raw IP.
func TestRawIPLink(t *testing.T) {
	p := livePair(t)
	const tun = "nwhtun0"
	var tunFile *os.File
	if err := p.B.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		tunFile = os.NewFile(uintptr(fd), "tun")
		ifr, err := unix.NewIfreq(tun)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		return unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}); err != nil {
		t.Skipf("no tun device: %v", err)
	}
	defer tunFile.Close()
	if out, err := exec.Command("ip", "-n", p.B.Name, "link", "set", tun, "up").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	c := openIn(t, p.B, capture.Config{Interface: tun, RingSize: 4 << 20})
	if c.LinkType() != pkthdr.LinkRaw {
		t.Fatalf("link type %d, want raw IP", c.LinkType())
	}
	sink := &syncSink{}
	r := start(c, sink)
	// Writing to the tun file descriptor makes the device receive it.
	ipUDP := testFrame(64, 0, 17, 1234, 9)[14:]
	for range 3 {
		if _, err := tunFile.Write(ipUDP); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if len(sink.pkts) != 3 {
		t.Fatalf("captured %d packets, want 3", len(sink.pkts))
	}
	for _, d := range sink.pkts {
		var pk pkthdr.Packet
		if !bytes.Equal(d, ipUDP) || !pkthdr.Parse(pkthdr.LinkRaw, d, &pk) || pk.IPVersion != 4 || pk.DstPort != 9 {
			t.Errorf("not the raw IPv4 UDP datagram written: % x", d)
		}
	}
}

// countSink is the cheapest possible sink, so a benchmark measures the
// engine alone.
type countSink struct{ n, bytes int }

func (s *countSink) WritePacket(_ time.Time, data []byte, _ int) error {
	s.n++
	s.bytes += len(data)
	return nil
}
func (s *countSink) Flush() error { return nil }

// BenchmarkLiveCapture: the engine's own CPU per packet (process user+sys
// time; trafgen is a child and not counted) over a full-speed trafgen
// burst of 500k 64-byte frames per iteration. scripts/bench-capture.sh
// compares the whole command with tcpdump.
func BenchmarkLiveCapture(b *testing.B) {
	testenv.Root(b)
	testenv.Tool(b, "trafgen")
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			p := netns.NewPair(b)
			cfg, err := p.Flood().TrafgenConfig()
			if err != nil {
				b.Fatal(err)
			}
			const perIter = 500_000
			var cpu time.Duration
			var packets, drops uint64
			for range b.N {
				var c *capture.Capture
				if err := p.B.Do(func() (err error) {
					c, err = capture.Open(capture.Config{Interface: p.DevB, Workers: workers, RingSize: 128 << 20})
					return err
				}); err != nil {
					b.Fatal(err)
				}
				sinks := make([]capture.Sink, workers)
				for i := range sinks {
					sinks[i] = &countSink{}
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan capture.Stats, 1)
				before := cpuTime(b)
				go func() { st, _ := c.Run(ctx, sinks); done <- st }()
				if _, err := p.A.Trafgen(context.Background(), b, p.DevA, cfg, netns.TrafgenOptions{Count: perIter}); err != nil {
					b.Fatal(err)
				}
				for c.Stats().Total.Packets+c.Stats().Total.KernelDrops < perIter {
					time.Sleep(time.Millisecond)
				}
				cancel()
				st := <-done
				cpu += cpuTime(b) - before
				packets += st.Total.Packets
				drops += st.Total.KernelDrops
				c.Close()
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(packets), "cpu-ns/pkt")
			b.ReportMetric(cpu.Seconds()/(float64(packets)/1e6), "cpu-s/Mpkt")
			b.ReportMetric(float64(drops), "drops")
		})
	}
}

// cpuTime is the user+system time of this process so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestLinkDownAndUp: the interface going down does not end the capture;
// it is counted, and packets after it comes back up are captured.
func TestLinkDownAndUp(t *testing.T) {
	p := livePair(t)
	c := openIn(t, p.B, capture.Config{Interface: p.DevB, RingSize: 8 << 20, FlushInterval: 100 * time.Millisecond})
	sink := newFlowSink(64, 64)
	r := start(c, sink)
	sent := flood(t, p, p.Flood(), netns.TrafgenOptions{Count: 1000})
	link := func(state string) {
		if out, err := exec.Command("ip", "-n", p.B.Name, "link", "set", p.DevB, state).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	link("down")
	for deadline := time.Now().Add(3 * time.Second); c.Stats().Total.LinkDowns == 0; {
		if time.Now().After(deadline) {
			t.Fatal("link down not noticed within 3 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	link("up")
	// The veth pair needs a moment to report carrier again.
	for deadline := time.Now().Add(3 * time.Second); ; {
		out, _ := exec.Command("ip", "-n", p.A.Name, "link", "show", p.DevA).Output()
		if strings.Contains(string(out), "LOWER_UP") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no carrier: %s", p.DevA, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent += flood(t, p, p.Flood(), netns.TrafgenOptions{Count: 1000})
	arrived(t, p, sent)
	st, err := r.stop(t)
	if err != nil {
		t.Fatal(err)
	}
	checkAccounting(t, st, sent)
	if st.Total.LinkDowns != 1 {
		t.Errorf("LinkDowns %d, want 1", st.Total.LinkDowns)
	}
}

// TestRunMisuse: wrong sinks, a second Run, Run after Close, and Close
// while Run goes (which stops it as a cancel does).
func TestRunMisuse(t *testing.T) {
	p := livePair(t)
	c := openIn(t, p.B, capture.Config{Interface: p.DevB, Workers: 2, RingSize: 8 << 20})
	ctx := context.Background()
	if _, err := c.Run(ctx, []capture.Sink{newFlowSink(0, 0)}); err == nil {
		t.Error("Run with 1 sink for 2 workers succeeded")
	}
	if _, err := c.Run(ctx, []capture.Sink{newFlowSink(0, 0), nil}); err == nil {
		t.Error("Run with a nil sink succeeded")
	}
	s0, s1 := newFlowSink(64, 64), newFlowSink(64, 64)
	r := start(c, s0, s1)
	sent := flood(t, p, p.Flood(), netns.TrafgenOptions{Count: 2000})
	arrived(t, p, sent)
	if _, err := c.Run(ctx, []capture.Sink{newFlowSink(0, 0), newFlowSink(0, 0)}); err == nil {
		t.Error("second Run succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop Run")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	checkAccounting(t, r.stats, sent)
	if s0.packets+s1.packets != int(sent) {
		t.Errorf("sinks got %d+%d of %d", s0.packets, s1.packets, sent)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.Run(ctx, []capture.Sink{s0, s1}); err == nil {
		t.Error("Run after Close succeeded")
	}
}
