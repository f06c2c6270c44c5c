package demogen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/replay"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The default sample is generated once for all the tests that read it.
var (
	sampleDir  string
	sampleOnce sync.Once
	samplePath string
	sampleLbl  *Labels
	sampleErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "demogen-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sampleDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// generateFile writes a sample of cfg to path.
func generateFile(path string, cfg Config) (*Labels, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	l, err := Generate(f, cfg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return l, err
}

// defaultSample returns the default sample's file and labels.
func defaultSample(t *testing.T) (string, *Labels) {
	t.Helper()
	sampleOnce.Do(func() {
		samplePath = filepath.Join(sampleDir, "sample.pcap")
		sampleLbl, sampleErr = generateFile(samplePath, Config{})
	})
	if sampleErr != nil {
		t.Fatal(sampleErr)
	}
	return samplePath, sampleLbl
}

func TestConfigLimits(t *testing.T) {
	for _, c := range []Config{
		{Duration: 59 * time.Minute},
		{Duration: 8 * 24 * time.Hour},
		{Workstations: 7},
		{Workstations: 201},
	} {
		if _, err := Generate(io.Discard, c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// flowKey names a TCP connection by its endpoints, client first.
type tcpKey struct{ a, b netip.AddrPort }

type tcpState struct {
	cli     netip.AddrPort
	next    [2]uint32
	acked   [2]uint32
	fin     [2]bool
	closed  bool
	packets int
}

// checkSample reads a sample back with pcapio and checks every frame:
// Ethernet and IPv4, checksums, time order within the sample's span, and
// for TCP, that each connection starts with a handshake and every
// segment's sequence and acknowledgement numbers follow from what the two
// sides sent. It returns the number of packets and of conversations (TCP
// connections and UDP requests to the servers).
func checkSample(t *testing.T, path string, l *Labels) (packets, conns int) {
	t.Helper()
	r, err := pcapio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tcp := map[tcpKey]*tcpState{}
	servers := map[netip.Addr]bool{}
	for _, h := range l.Hosts {
		if h.Role != "workstation" {
			servers[netip.MustParseAddr(h.Addr)] = true
		}
	}
	var last time.Time
	var h pkthdr.Packet
	fail := func(n int, format string, a ...any) {
		t.Helper()
		t.Fatalf("packet %d: %s", n, fmt.Sprintf(format, a...))
	}
	for n := 1; ; n++ {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("packet %d: %v", n, err)
		}
		packets++
		if p.LinkType != pkthdr.LinkEthernet || p.OrigLen != len(p.Data) {
			fail(n, "link type %d, %d of %d bytes", p.LinkType, len(p.Data), p.OrigLen)
		}
		if p.Timestamp.Before(last) || p.Timestamp.Before(l.Start) || p.Timestamp.After(l.End.Add(time.Minute)) {
			fail(n, "time %s after %s", p.Timestamp, last)
		}
		last = p.Timestamp
		if !checksumsOK(p.Data) {
			fail(n, "bad checksum")
		}
		if !pkthdr.Parse(pkthdr.LinkEthernet, p.Data, &h) || h.Truncated || !h.HasPorts {
			fail(n, "does not parse: %+v", h)
		}
		if h.Proto != 6 {
			if servers[h.Dst] {
				conns++
			}
			continue
		}
		src, dst := netip.AddrPortFrom(h.Src, h.SrcPort), netip.AddrPortFrom(h.Dst, h.DstPort)
		k := tcpKey{src, dst}
		if dst.Addr().Less(src.Addr()) || (dst.Addr() == src.Addr() && dst.Port() < src.Port()) {
			k = tcpKey{dst, src}
		}
		s := tcp[k]
		syn := h.TCPFlags&tcpSYN != 0
		if s == nil || s.closed {
			if !syn || h.TCPFlags&tcpACK != 0 {
				fail(n, "connection %v -> %v does not start with a SYN", src, dst)
			}
			conns++
			s = &tcpState{cli: src}
			s.next[0] = h.TCPSeq + 1
			tcp[k] = s
			continue
		}
		d := 0
		if src != s.cli {
			d = 1
		}
		s.packets++
		if syn {
			if d != 1 || s.packets != 1 || h.TCPAck != s.next[0] {
				fail(n, "stray SYN")
			}
			s.next[1], s.acked[1] = h.TCPSeq+1, h.TCPAck
			continue
		}
		if h.TCPSeq != s.next[d] {
			fail(n, "%v -> %v: seq off by %d", src, dst, int32(h.TCPSeq-s.next[d]))
		}
		if h.TCPFlags&tcpACK == 0 || seqLess(s.next[1-d], h.TCPAck) || (s.acked[d] != 0 && seqLess(h.TCPAck, s.acked[d])) {
			fail(n, "%v -> %v: ack %d beyond what the peer sent or behind an earlier ack", src, dst, h.TCPAck)
		}
		s.acked[d] = h.TCPAck
		if s.fin[d] && h.PayloadN > 0 {
			fail(n, "data after FIN")
		}
		s.next[d] += uint32(h.PayloadN)
		if h.TCPFlags&tcpFIN != 0 {
			s.fin[d] = true
			s.next[d]++
		}
		if h.TCPFlags&tcpRST != 0 || (s.fin[0] && s.fin[1] && h.TCPAck == s.next[1-d] && h.TCPFlags&tcpFIN == 0) {
			s.closed = true
		}
	}
	for k, s := range tcp {
		if !s.closed {
			t.Errorf("connection %v left open", k)
		}
	}
	return packets, conns
}

func TestSampleReadBack(t *testing.T) {
	path, l := defaultSample(t)
	packets, conns := checkSample(t, path, l)
	if packets != l.Packets {
		t.Errorf("read %d packets, labels say %d", packets, l.Packets)
	}
	if conns != l.Connections {
		t.Errorf("%d conversations, labels say %d", conns, l.Connections)
	}
}

func TestSampleDeterministic(t *testing.T) {
	cfg := Config{Seed: 7, Duration: time.Hour, Workstations: 10}
	var a, b, c bytes.Buffer
	la, err := Generate(&a, cfg)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := Generate(&b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same config, different bytes")
	}
	ja, _ := json.Marshal(la)
	jb, _ := json.Marshal(lb)
	if !bytes.Equal(ja, jb) {
		t.Fatal("same config, different labels")
	}
	cfg.Seed = 8
	if _, err := Generate(&c, cfg); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("another seed, same bytes")
	}
}

// TestSampleGolden pins the default sample: its SHA-256 and its labels.
// A change to the generator shows up here; review the labels diff and
// rewrite with -update.
func TestSampleGolden(t *testing.T) {
	path, l := defaultSample(t)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var lb bytes.Buffer
	if err := l.WriteJSON(&lb); err != nil {
		t.Fatal(err)
	}
	golden(t, "default.sha256", []byte(hex.EncodeToString(h.Sum(nil))+"  sample.pcap\n"))
	golden(t, "labels.golden.json", lb.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -run %s -update rewrites it)", p, t.Name())
	}
}

func TestAssetsParse(t *testing.T) {
	_, l := defaultSample(t)
	var b bytes.Buffer
	if err := l.WriteAssets(&b); err != nil {
		t.Fatal(err)
	}
	inv, err := assets.ParseInventory(&b)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]struct {
		name string
		crit assets.Criticality
	}{
		"10.20.0.10": {"dc01", assets.Critical},
		"10.20.0.20": {"fs01", assets.High},
		"10.20.1.17": {"ws-017", assets.Medium},
	} {
		a, ok := inv.Lookup(netip.MustParseAddr(addr))
		if !ok || a.Name != want.name || a.Criticality != want.crit {
			t.Errorf("%s: %+v", addr, a)
		}
	}
}

// replayOps runs the replay pipeline over a sample.
func replayOps(t *testing.T, path string) ([]replay.Operation, replay.Stats) {
	t.Helper()
	src, c, err := replay.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ops []replay.Operation
	st, err := replay.Run(context.Background(), src, replay.Config{}, func(o replay.Operation) { ops = append(ops, o) })
	if err != nil {
		t.Fatal(err)
	}
	return ops, st
}

// matches reports whether replay's operation is the labelled one: same
// parties, account, interface, operation, and where the label says so,
// target, command and content hash; times within a second.
func matches(o replay.Operation, l Operation) bool {
	return o.Src.String() == l.Src && o.Dst.String() == l.Dst && o.User == l.User && o.Domain == l.Domain && o.Workstation == l.Workstation &&
		o.Kind == l.Kind && o.Interface == l.Interface && o.Operation == l.Operation &&
		(l.Target == "" || o.Target == l.Target) && (l.Command == "" || o.Command == l.Command) &&
		(l.SHA256 == "" || o.SHA256 == l.SHA256) &&
		o.Time.Sub(l.Time).Abs() < time.Second
}

// checkReplay checks that replay finds exactly the labelled operations of
// the intrusion, that everything else it finds is plumbing, and that the
// operations with a purpose carry their ATT&CK technique and phase.
func checkReplay(t *testing.T, path string, l *Labels) {
	t.Helper()
	ops, st := replayOps(t, path)
	if st.Damaged() || st.DecodeErrors > 0 || st.CallsExpired > 0 {
		t.Errorf("replay stats %+v", st)
	}
	attacker := l.Operations[0].Src
	used := make([]bool, len(ops))
	for _, lo := range l.Operations {
		found := -1
		for i, o := range ops {
			if !used[i] && matches(o, lo) {
				found = i
				break
			}
		}
		if found < 0 {
			t.Errorf("labelled operation not found: %s %s -> %s %s %s %q %q", lo.Time.Format(time.RFC3339Nano), lo.Src, lo.Dst, lo.Interface, lo.Operation, lo.Target, lo.Command)
			continue
		}
		used[found] = true
		o := ops[found]
		if lo.Technique != "" && o.Technique != lo.Technique {
			t.Errorf("%s %s: technique %q, labelled %q", lo.Operation, lo.Target, o.Technique, lo.Technique)
		}
		if lo.Technique != "" && (o.Noise || o.Phase == "") {
			t.Errorf("%s %s: noise %v, phase %q", lo.Operation, lo.Target, o.Noise, o.Phase)
		}
		if o.Partial || o.Encrypted {
			t.Errorf("%s %s: partial %v encrypted %v", lo.Operation, lo.Target, o.Partial, o.Encrypted)
		}
		for _, f := range o.Fields {
			// rpcops reads the DRSGetNCChanges reply's pNC too early
			// (see TestEndpointMapperAndDRS); nothing else may fail.
			if f.Name == "decode error" && o.Operation != "DRSGetNCChanges" {
				t.Errorf("%s %s: %s", lo.Operation, lo.Target, f.Value)
			}
		}
	}
	for i, o := range ops {
		if used[i] {
			continue
		}
		// The patient zero's own group policy and drive mapping are
		// plumbing under other accounts. SMB session setups (logon) are
		// the authentication under the labelled operations, not steps.
		if o.Kind == "logon" && o.Noise {
			continue
		}
		if !o.Noise || o.Src.String() == attacker && o.User == l.Operations[0].User {
			t.Errorf("unlabelled operation: %s %s -> %s %s %s %s %q noise=%v", o.Time.Format(time.RFC3339Nano), o.Src, o.Dst, o.Account(), o.Interface, o.Operation, o.Target, o.Noise)
		}
	}
}

func TestReplayFindsTheIntrusion(t *testing.T) {
	path, l := defaultSample(t)
	checkReplay(t, path, l)
	steps := map[string]int{}
	for _, o := range l.Operations {
		steps[o.Step]++
	}
	for _, s := range []string{"recon", "psexec", "smbexec", "atexec", "dcsync"} {
		if steps[s] == 0 {
			t.Errorf("no %s operations labelled", s)
		}
	}
}

// Smaller and shifted samples keep their story: distinct roles with few
// workstations, the intrusion inside a one-hour sample.
func TestReplaySmallSamples(t *testing.T) {
	for _, cfg := range []Config{
		{Seed: 3, Duration: time.Hour, Workstations: 8},
		{Seed: 4, Duration: 90 * time.Minute, Workstations: 13, Start: time.Date(2026, 6, 30, 22, 30, 0, 0, time.UTC)},
	} {
		t.Run(fmt.Sprintf("%dws-%s", cfg.Workstations, cfg.Duration), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.pcap")
			l, err := generateFile(path, cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkSample(t, path, l)
			checkReplay(t, path, l)
			hosts := map[string]bool{}
			for _, p := range append(append(l.C2Pairs, l.HardNegative...), l.LateralPairs...) {
				hosts[p.Src] = true
			}
			if len(hosts) != 3 {
				t.Errorf("beacons, widget and lateral movement from %d hosts, want 3", len(hosts))
			}
		})
	}
}

// huntSample builds flows from a sample and scores them, as `nwhealth
// hunt --pcap` does.
func huntSample(t *testing.T, path string) hunt.Result {
	t.Helper()
	r, err := pcapio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := hunt.New(hunt.Config{})
	b := flow.NewBuilder(flow.Options{})
	var next time.Time
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Add(p.Timestamp, p.LinkType, p.Data, p.OrigLen)
		if p.Timestamp.After(next) {
			b.Expire(p.Timestamp, m.Add)
			next = p.Timestamp.Add(time.Second)
		}
	}
	b.Flush(m.Add)
	return m.Score()
}

func TestHuntRanksTheBeaconsFirst(t *testing.T) {
	path, l := defaultSample(t)
	res := huntSample(t, path)
	var channels, hosts []hunt.Finding
	for _, f := range res.Findings {
		switch f.Kind {
		case hunt.KindChannel:
			channels = append(channels, f)
		case hunt.KindHost:
			hosts = append(hosts, f)
		}
	}
	if len(channels) < 3 || len(hosts) < 3 {
		t.Fatalf("%d channel and %d host findings", len(channels), len(hosts))
	}
	rank := func(p Pair) int {
		for i, f := range channels {
			if f.Src.String() == p.Src && f.Dst.String() == p.Dst && int(f.DstPort) == p.Port {
				return i
			}
		}
		return len(channels)
	}
	for _, p := range l.C2Pairs {
		if r := rank(p); r >= len(l.C2Pairs) {
			t.Errorf("beacon %s -> %s (%s) ranks %d among channels", p.Src, p.Dst, p.Name, r+1)
		} else if f := channels[r]; f.Severity < hunt.High || f.DstName != p.Name || !f.Beacon {
			t.Errorf("beacon %s -> %s: %s, name %q, beacon %v", p.Src, p.Dst, f.Severity, f.DstName, f.Beacon)
		}
	}
	for _, p := range l.HardNegative {
		if r := rank(p); r < len(l.C2Pairs) || channels[min(r, len(channels)-1)].Severity >= hunt.High {
			t.Errorf("hard negative %s -> %s ranks %d", p.Src, p.Dst, r+1)
		}
	}
	for i, h := range hosts[:len(l.Compromised)] {
		if !slices.Contains(l.Compromised, h.Src.String()) {
			t.Errorf("host %d is %s (score %.2f), not a compromised one", i+1, h.Src, h.Score)
		}
	}
	// The patient zero's fan-out to admin ports is lateral evidence.
	for _, h := range hosts {
		if h.Src.String() == l.LateralPairs[0].Src && (!h.Lateral || h.AdminPeers < 5) {
			t.Errorf("patient zero: lateral %v, %d admin peers", h.Lateral, h.AdminPeers)
		}
	}
	var top []string
	for _, f := range channels[:4] {
		top = append(top, fmt.Sprintf("%s->%s %s %.2f", f.Src, f.Dst, f.DstName, f.Score))
	}
	t.Logf("top channels: %s", strings.Join(top, "; "))
}
