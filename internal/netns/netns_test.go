//go:build linux

package netns

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// trafgenToFile renders cfg through trafgen into a pcap file (no network
// needed) and returns the frames.
func trafgenToFile(t *testing.T, cfg string, n int) [][]byte {
	t.Helper()
	testenv.Tool(t, "trafgen")
	dir := t.TempDir()
	conf, out := filepath.Join(dir, "f.cfg"), filepath.Join(dir, "f.pcap")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("trafgen", "--conf", conf, "--out", out, "--num", strconv.Itoa(n), "--cpus", "1",
		"--no-sock-mem", "--notouch-irq", "--no-cpu-stats")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trafgen: %v: %s", err, b)
	}
	r, err := pcapio.OpenFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var frames [][]byte
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, append([]byte(nil), p.Data...))
	}
}

func ipChecksumOK(h []byte) bool {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

func TestTrafgenConfig(t *testing.T) {
	base := UDPFlood{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		Src: netip.MustParseAddr("198.18.9.1"), Dst: netip.MustParseAddr("198.18.9.2"),
		SrcPorts: 4, DstPort: 53, FrameLen: 64,
	}
	for _, tt := range []struct {
		name   string
		mutate func(*UDPFlood)
		wire   int // frame length including any tag
	}{
		{"64 bytes", func(*UDPFlood) {}, 64},
		{"minimum", func(f *UDPFlood) { f.FrameLen = 42 }, 42},
		{"full size", func(f *UDPFlood) { f.FrameLen = 1514 }, 1514},
		{"vlan", func(f *UDPFlood) { f.VLAN = 100 }, 68},
		{"one port", func(f *UDPFlood) { f.SrcPorts = 1 }, 64},
		{"256 ports", func(f *UDPFlood) { f.SrcPorts = 256 }, 64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := base
			tt.mutate(&f)
			cfg, err := f.TrafgenConfig()
			if err != nil {
				t.Fatal(err)
			}
			frames := trafgenToFile(t, cfg, 2*f.SrcPorts)
			if len(frames) != 2*f.SrcPorts {
				t.Fatalf("trafgen made %d frames, want %d", len(frames), 2*f.SrcPorts)
			}
			ports := map[uint16]int{}
			for i, fr := range frames {
				var p pkthdr.Packet
				if len(fr) != tt.wire || !pkthdr.Parse(pkthdr.LinkEthernet, fr, &p) || p.Truncated {
					t.Fatalf("frame %d: %d bytes, want %d: % x", i, len(fr), tt.wire, fr)
				}
				if p.Src != f.Src || p.Dst != f.Dst || p.Proto != pkthdr.ProtoUDP || p.DstPort != f.DstPort || p.IPLen != tt.wire-p.L3 {
					t.Errorf("frame %d: %+v", i, p)
				}
				if f.VLAN != 0 && (p.NVLAN != 1 || p.VLAN[0] != f.VLAN) {
					t.Errorf("frame %d: vlans %v (%d), want %d", i, p.VLAN, p.NVLAN, f.VLAN)
				}
				if !ipChecksumOK(fr[p.L3 : p.L3+20]) {
					t.Errorf("frame %d: bad IPv4 header checksum", i)
				}
				if ul := int(binary.BigEndian.Uint16(fr[p.L4+4:])); ul != tt.wire-p.L4 {
					t.Errorf("frame %d: UDP length %d, want %d", i, ul, tt.wire-p.L4)
				}
				if p.SrcPort < 0x0400 || p.SrcPort >= 0x0400+uint16(f.SrcPorts) {
					t.Errorf("frame %d: source port %#x outside the range", i, p.SrcPort)
				}
				ports[p.SrcPort]++
			}
			if len(ports) != f.SrcPorts {
				t.Errorf("%d distinct source ports, want %d", len(ports), f.SrcPorts)
			}
		})
	}
}

func TestTrafgenConfigRejects(t *testing.T) {
	good := UDPFlood{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		Src: netip.MustParseAddr("198.18.9.1"), Dst: netip.MustParseAddr("198.18.9.2"),
		SrcPorts: 1, DstPort: 9, FrameLen: 64,
	}
	for name, mutate := range map[string]func(*UDPFlood){
		"short frame": func(f *UDPFlood) { f.FrameLen = 41 },
		"jumbo":       func(f *UDPFlood) { f.FrameLen = 9000 },
		"no ports":    func(f *UDPFlood) { f.SrcPorts = 0 },
		"many ports":  func(f *UDPFlood) { f.SrcPorts = 257 },
		"ipv6":        func(f *UDPFlood) { f.Src = netip.MustParseAddr("2001:db8::1") },
		"no mac":      func(f *UDPFlood) { f.DstMAC = nil },
	} {
		f := good
		mutate(&f)
		if _, err := f.TrafgenConfig(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTrafgenFrames(t *testing.T) {
	in := [][]byte{make([]byte, 60), make([]byte, 17)}
	for i := range in[0] {
		in[0][i] = byte(i)
	}
	in[1][16] = 0xff
	got := trafgenToFile(t, TrafgenFrames(in...), 4)
	if len(got) != 4 {
		t.Fatalf("%d frames, want 4", len(got))
	}
	for i, g := range got {
		if string(g) != string(in[i%2]) {
			t.Errorf("frame %d: % x, want % x", i, g, in[i%2])
		}
	}
}

// exists reports whether a named namespace is present.
func exists(name string) bool {
	_, err := os.Stat(filepath.Join(runDir, name))
	return err == nil
}

func TestPairTraffic(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	p := NewPair(t)
	if !exists(p.A.Name) || !exists(p.B.Name) || p.A.Name == p.B.Name {
		t.Fatalf("namespaces %q and %q", p.A.Name, p.B.Name)
	}
	// Each end is visible only inside its own namespace.
	if _, err := net.InterfaceByName(p.DevB); err == nil {
		t.Errorf("%s visible outside its namespace", p.DevB)
	}
	if err := p.B.Do(func() error {
		ifc, err := net.InterfaceByName(p.DevB)
		if err != nil {
			return err
		}
		if ifc.HardwareAddr.String() != p.MACB.String() || ifc.Flags&net.FlagUp == 0 {
			return errors.New("wrong address or down: " + ifc.HardwareAddr.String())
		}
		addrs, err := ifc.Addrs()
		if err != nil || len(addrs) != 1 || addrs[0].String() != netip.PrefixFrom(p.AddrB, 30).String() {
			return errors.New("unexpected addresses")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	cfg, err := p.Flood().TrafgenConfig()
	if err != nil {
		t.Fatal(err)
	}
	sent, err := p.A.Trafgen(context.Background(), t, p.DevA, cfg, TrafgenOptions{Count: 1000})
	if err != nil || sent != 1000 {
		t.Fatalf("sent %d, %v", sent, err)
	}
	waitRx(t, p, 1000)
	if st, _ := p.A.Stats(p.DevA); st.TxPackets != 1000 {
		t.Errorf("%s sent %d", p.DevA, st.TxPackets)
	}
}

// waitRx waits for the receiving end to count n packets, and no more.
func waitRx(t *testing.T, p *Pair, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		st, err := p.B.Stats(p.DevB)
		if err != nil {
			t.Fatal(err)
		}
		if st.RxPackets == n {
			return
		}
		if st.RxPackets > n || time.Now().After(deadline) {
			t.Fatalf("%s received %d packets, want %d (the namespaces should be silent)", p.DevB, st.RxPackets, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestVLANTraffic(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	p := NewPair(t)
	// Tagged frames are written whole (this kernel may lack 802.1Q
	// sub-interfaces); the receiving end counts them like any other.
	f := p.Flood()
	f.VLAN = 5
	cfg, _ := f.TrafgenConfig()
	if _, err := p.A.Trafgen(context.Background(), t, p.DevA, cfg, TrafgenOptions{Count: 100}); err != nil {
		t.Fatal(err)
	}
	waitRx(t, p, 100)
}

func TestTcpreplay(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "tcpreplay")
	p := NewPair(t)
	file := filepath.Join(t.TempDir(), "replay.pcap")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	w, err := pcapio.NewWriter(bw, pkthdr.LinkEthernet, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := p.Flood().TrafgenConfig()
	frames := trafgenToFile(t, cfg, 50)
	for i, fr := range frames {
		if err := w.WritePacket(time.Unix(1700000000, int64(i)*1000), fr, len(fr)); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := p.A.Tcpreplay(context.Background(), p.DevA, file, "--topspeed"); err != nil {
		t.Fatal(err)
	}
	waitRx(t, p, 50)
}

func TestDoRestoresNamespace(t *testing.T) {
	testenv.Root(t)
	ns := New(t)
	self := func() string {
		l, err := os.Readlink("/proc/thread-self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	before := self()
	var inside string
	if err := ns.Do(func() error {
		l, err := os.Readlink("/proc/thread-self/ns/net")
		inside = l
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside == before {
		t.Fatalf("Do ran in the caller's namespace %s", inside)
	}
	want := errors.New("from fn")
	if err := ns.Do(func() error { return want }); !errors.Is(err, want) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	// Many calls leave no thread in the namespace: every later goroutine
	// still sees the host's.
	for range 50 {
		_ = ns.Do(func() error { return nil })
	}
	done := make(chan string)
	for range 20 {
		go func() {
			l, _ := os.Readlink("/proc/thread-self/ns/net")
			done <- l
		}()
	}
	for range 20 {
		if l := <-done; l != before {
			t.Fatalf("a goroutine ran in %s after Do", l)
		}
	}
}

func TestCleanupAndSweep(t *testing.T) {
	testenv.Root(t)
	var name string
	t.Run("make", func(t *testing.T) { name = New(t).Name })
	if name == "" || exists(name) {
		t.Fatalf("namespace %q still there after its test", name)
	}
	// A namespace left by a dead test process is removed by the next New.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	orphan := namePrefix + strconv.Itoa(dead.Process.Pid) + "-1"
	if err := ip("netns", "add", orphan); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ip("netns", "del", orphan) }()
	// A name that only looks similar is left alone.
	other := namePrefix + "keep-1"
	if err := ip("netns", "add", other); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ip("netns", "del", other) }()
	New(t)
	if exists(orphan) {
		t.Errorf("orphan %s not swept", orphan)
	}
	if !exists(other) {
		t.Errorf("%s was swept", other)
	}
}
