//go:build linux

package netns

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// UDPFlood describes a stream of identical-size IPv4/UDP frames for trafgen.
type UDPFlood struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.Addr
	// SrcPorts spreads the frames over this many source ports (1..256),
	// counting up from 0x0400, so a flow hash sees that many flows.
	SrcPorts int
	DstPort  uint16
	// FrameLen is the frame length without FCS, at least 42 (Ethernet +
	// IPv4 + UDP headers); the payload is zeros.
	FrameLen int
	// VLAN, when non-zero, inserts an 802.1Q tag with this id.
	VLAN uint16
}

// Flood returns the default test stream from A to B: 64-byte frames, 64
// source ports, to a MAC address that is not B's, so B's IP stack drops
// them unseen and sends nothing back (capture still sees every frame).
func (p *Pair) Flood() UDPFlood {
	return UDPFlood{
		SrcMAC: p.MACA, DstMAC: net.HardwareAddr{0x02, 0x6e, 0x77, 0x68, 0xff, 0xfe},
		Src: p.AddrA, Dst: p.AddrB,
		SrcPorts: 64, DstPort: 9, FrameLen: 64,
	}
}

// TrafgenConfig renders the stream as a trafgen(8) packet configuration.
func (f UDPFlood) TrafgenConfig() (string, error) {
	if len(f.SrcMAC) != 6 || len(f.DstMAC) != 6 || !f.Src.Is4() || !f.Dst.Is4() {
		return "", fmt.Errorf("udp flood needs 6-byte MACs and IPv4 addresses")
	}
	if f.FrameLen < 42 || f.FrameLen > 1514 {
		return "", fmt.Errorf("udp flood frame length %d outside 42..1514", f.FrameLen)
	}
	if f.SrcPorts < 1 || f.SrcPorts > 256 {
		return "", fmt.Errorf("udp flood source ports %d outside 1..256", f.SrcPorts)
	}
	l2 := 14
	var b strings.Builder
	b.WriteString("{\n")
	fmt.Fprintf(&b, "  %s,\n  %s,\n", macBytes(f.DstMAC), macBytes(f.SrcMAC))
	frameLen := f.FrameLen
	if f.VLAN != 0 {
		fmt.Fprintf(&b, "  c16(0x8100), c16(%d),\n", f.VLAN&0x0fff)
		l2 += 4
		frameLen += 4
	}
	ipLen := frameLen - l2
	b.WriteString("  c16(0x0800),\n")
	// IPv4: no options, DF, TTL 64, UDP; trafgen fills the checksum.
	fmt.Fprintf(&b, "  0x45, 0x00, c16(%d), c16(0), c16(0x4000), 64, 17, csumip(%d, %d),\n", ipLen, l2, l2+19)
	s, d := f.Src.As4(), f.Dst.As4()
	fmt.Fprintf(&b, "  %d, %d, %d, %d,\n  %d, %d, %d, %d,\n", s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3])
	// UDP: the low byte of the source port counts through SrcPorts values;
	// checksum 0 (none) is valid for UDP over IPv4.
	fmt.Fprintf(&b, "  0x04, dinc(0, %d), c16(%d), c16(%d), c16(0),\n", f.SrcPorts-1, f.DstPort, ipLen-20)
	if pad := ipLen - 28; pad > 0 {
		fmt.Fprintf(&b, "  fill(0x00, %d),\n", pad)
	}
	b.WriteString("}\n")
	return b.String(), nil
}

func macBytes(m net.HardwareAddr) string {
	parts := make([]string, len(m))
	for i, x := range m {
		parts[i] = fmt.Sprintf("0x%02x", x)
	}
	return strings.Join(parts, ", ")
}

// TrafgenOptions tune a trafgen run.
type TrafgenOptions struct {
	Count int    // packets to send (required)
	Rate  string // trafgen --rate, e.g. "100000pps"; empty: as fast as it goes
	CPUs  int    // sender processes; 0 means 1 (two senders on one veth slow each other down)
}

var trafgenSent = regexp.MustCompile(`(\d+) packets outgoing`)

// Trafgen sends cfg (a trafgen configuration) on dev inside the namespace
// and returns the packets trafgen reports as sent. It leaves the host's
// socket memory and IRQ affinity settings alone.
func (ns *NS) Trafgen(ctx context.Context, t testing.TB, dev, cfg string, opt TrafgenOptions) (uint64, error) {
	t.Helper()
	if opt.Count <= 0 {
		return 0, fmt.Errorf("trafgen: count must be positive")
	}
	path := filepath.Join(t.TempDir(), "flood.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return 0, err
	}
	cpus := opt.CPUs
	if cpus <= 0 {
		cpus = 1
	}
	args := []string{"--dev", dev, "--conf", path, "--num", strconv.Itoa(opt.Count),
		"--cpus", strconv.Itoa(cpus), "--no-sock-mem", "--notouch-irq", "--no-cpu-stats"}
	if opt.Rate != "" {
		args = append(args, "--rate", opt.Rate)
	}
	cmd := ns.Command(ctx, "trafgen", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// trafgen forks a sender per CPU: on cancel, interrupt the whole
	// process group so the senders stop and report, not just the parent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("trafgen: %w", ctx.Err())
		}
		return 0, fmt.Errorf("trafgen: %w: %s", err, lastLines(out.String(), 5))
	}
	var sent uint64
	for _, m := range trafgenSent.FindAllStringSubmatch(out.String(), -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		sent += n
	}
	if sent == 0 {
		return 0, fmt.Errorf("trafgen sent nothing: %s", lastLines(out.String(), 5))
	}
	return sent, nil
}

// Tcpreplay replays a capture file on dev inside the namespace. Extra
// arguments (e.g. "--topspeed" or "--pps=1000") come before the file.
func (ns *NS) Tcpreplay(ctx context.Context, dev, file string, extra ...string) error {
	args := append([]string{"--intf1=" + dev, "--quiet"}, extra...)
	args = append(args, file)
	cmd := ns.Command(ctx, "tcpreplay", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tcpreplay: %w: %s", err, lastLines(string(out), 5))
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// TrafgenFrames renders literal frames as a trafgen configuration; trafgen
// sends them in turn, round robin.
func TrafgenFrames(frames ...[]byte) string {
	var b strings.Builder
	for _, f := range frames {
		b.WriteString("{")
		for i, x := range f {
			if i%16 == 0 {
				b.WriteString("\n ")
			}
			fmt.Fprintf(&b, " 0x%02x,", x)
		}
		b.WriteString("\n}\n")
	}
	return b.String()
}
