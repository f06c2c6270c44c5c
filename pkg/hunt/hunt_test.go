package hunt

import (
	"fmt"
	"math/rand"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// net builds a synthetic network of flow records.
type net struct {
	rng  *rand.Rand
	recs []*flow.Record
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func hostAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(1 + i%250)})
}

func (n *net) conn(ts time.Time, src, dst netip.Addr, port uint16, proto uint8, out, in uint64) *flow.Record {
	r := &flow.Record{First: ts, Last: ts.Add(200 * time.Millisecond), Proto: proto, Orig: src, Resp: dst,
		OrigPort: uint16(40000 + n.rng.Intn(20000)), RespPort: port, OrigPkts: 5, RespPkts: 4,
		OrigData: out, RespData: in, OrigBytes: out + 200, RespBytes: in + 160, OrigFlags: 0x1b, RespFlags: 0x1b}
	if proto == 17 {
		r.OrigFlags, r.RespFlags = 0, 0
	}
	n.recs = append(n.recs, r)
	return r
}

// periodic adds check-ins every period ±jitter (uniform) for the span.
func (n *net) periodic(src, dst netip.Addr, port uint16, period time.Duration, jitter float64, span time.Duration, size uint64) {
	for t := time.Duration(n.rng.Int63n(int64(period))); t < span; {
		n.conn(t0.Add(t), src, dst, port, 6, size+uint64(n.rng.Intn(20)), 2*size)
		t += time.Duration(float64(period) * (1 + jitter*(2*n.rng.Float64()-1)))
	}
}

// browse adds Poisson connections in office hours to random popular sites.
func (n *net) browse(src netip.Addr, perHour float64, span time.Duration) {
	for t := time.Duration(0); t < span; t += time.Duration(n.rng.ExpFloat64() * float64(time.Hour) / perHour) {
		if h := t0.Add(t).Hour(); h < 8 || h >= 18 {
			continue
		}
		site := netip.AddrFrom4([4]byte{198, 18, byte(n.rng.Intn(40)), byte(1 + n.rng.Intn(3))})
		n.conn(t0.Add(t), src, site, 443, 6, uint64(300+n.rng.Intn(900)), uint64(1000+n.rng.Intn(200000)))
	}
}

func (n *net) model(cfg Config) *Model {
	m := New(cfg)
	m.AddAll(func(yield func(*flow.Record) bool) {
		for _, r := range n.recs {
			if !yield(r) {
				return
			}
		}
	})
	return m
}

// find returns a finding and its rank among the findings of its kind.
func find(res Result, kind Kind, src, dst netip.Addr) (int, *Finding) {
	rank := 0
	for i := range res.Findings {
		f := &res.Findings[i]
		if f.Kind != kind {
			continue
		}
		rank++
		if f.Src == src && (kind == KindHost || f.Dst == dst) {
			return rank, f
		}
	}
	return 0, nil
}

// office builds 30 hosts with a fleet agent, a popular update service,
// browsing, one beacon, one single-host hard negative into the update
// provider's /24, and one host fanning out to admin ports.
func office(t *testing.T) (*net, map[string]netip.Addr) {
	n := &net{rng: rand.New(rand.NewSource(1))}
	day := 24 * time.Hour
	for i := range 30 {
		h := hostAddr(i)
		n.periodic(h, ip("10.9.0.10"), 8443, time.Minute, 0.02, day, 600)      // monitoring agent
		n.periodic(h, ip("198.51.100.20"), 443, 15*time.Minute, 0.1, day, 900) // vendor telemetry
		n.browse(h, 30, day)
	}
	n.periodic(hostAddr(7), ip("203.0.113.77"), 443, 5*time.Minute, 0.3, day, 400) // C2
	n.periodic(hostAddr(9), ip("198.51.100.61"), 443, 2*time.Minute, 0, day, 350)  // weather widget
	for i := range 8 {                                                             // lateral movement at 14:00
		n.conn(t0.Add(14*time.Hour+time.Duration(i)*time.Minute), hostAddr(12), hostAddr(20+i), 445, 6, 3000, 2000)
	}
	return n, map[string]netip.Addr{"beacon": hostAddr(7), "c2": ip("203.0.113.77"), "widget": hostAddr(9), "lateral": hostAddr(12)}
}

func TestOfficeRanking(t *testing.T) {
	n, a := office(t)
	res := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}).Score()
	if res.Hosts != 30 || res.PopulationWeight != 1 {
		t.Fatalf("population %d weight %.2f", res.Hosts, res.PopulationWeight)
	}
	// The beacon is the first channel (the lateral host's finding may come
	// first: an uncorroborated schedule is high at most).
	_, c2 := find(res, KindChannel, a["beacon"], a["c2"])
	if c2 == nil || c2.Severity < High {
		t.Fatalf("beacon channel: %+v", c2)
	}
	for _, f := range res.Findings {
		if f.Kind == KindChannel {
			if f.Src != a["beacon"] || f.Dst != a["c2"] {
				t.Fatalf("first channel %v -> %v (%.2f), not the beacon (%.2f)", f.Src, f.Dst, f.Score, c2.Score)
			}
			break
		}
	}
	if c2.PeriodSec < 270 || c2.PeriodSec > 330 || !slices.Contains(c2.Attack, "T1071.001") || !slices.Contains(c2.Attack, "T1573") {
		t.Errorf("beacon period %.0f attack %v", c2.PeriodSec, c2.Attack)
	}
	if !strings.Contains(strings.Join(c2.Reasons, ";"), "1 of 30 internal hosts") {
		t.Errorf("reasons lack popularity: %q", c2.Reasons)
	}
	_, widget := find(res, KindChannel, a["widget"], ip("198.51.100.61"))
	if widget == nil || widget.Score >= c2.Score-0.2 {
		t.Errorf("single-host channel into a popular provider range scores %.2f against the beacon's %.2f", widget.Score, c2.Score)
	}
	// The fleet's own periodic channels stay low.
	for _, f := range res.Findings {
		if f.Kind == KindChannel && (f.Dst == ip("198.51.100.20") || f.Dst == ip("10.9.0.10")) && f.Severity > Low {
			t.Errorf("fleet channel %v -> %v scored %.2f (%v)", f.Src, f.Dst, f.Score, f.Severity)
		}
	}
	// Lateral fan-out makes a host finding with the SMB technique.
	_, lat := find(res, KindHost, a["lateral"], netip.Addr{})
	if lat == nil || !lat.Lateral || lat.AdminPeers != 8 || lat.Severity < High || !slices.Contains(lat.Attack, "T1021.002") {
		t.Errorf("lateral host: %+v", lat)
	}
	// Hosts: the two compromised ones first.
	var hosts []netip.Addr
	for _, f := range res.Findings {
		if f.Kind == KindHost {
			hosts = append(hosts, f.Src)
		}
	}
	if len(hosts) < 2 || !slices.Contains(hosts[:2], a["beacon"]) || !slices.Contains(hosts[:2], a["lateral"]) {
		t.Errorf("host ranking starts %v", hosts[:min(4, len(hosts))])
	}
}

func TestSingleHostHeldAtMedium(t *testing.T) {
	// One internal host: popularity says nothing, so a perfect beacon with
	// nothing else is at most medium, and still ranked first.
	n := &net{rng: rand.New(rand.NewSource(2))}
	h := ip("147.32.80.37")
	n.periodic(h, ip("141.193.213.21"), 443, 2*time.Second, 0.03, 11*time.Minute, 300)
	n.browse(h, 40, 24*time.Hour)
	res := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("147.32.80.37/32")}}).Score()
	if res.PopulationWeight != 0 {
		t.Fatalf("weight %.2f", res.PopulationWeight)
	}
	rank, f := find(res, KindChannel, h, ip("141.193.213.21"))
	if rank != 1 || f.Severity > Medium {
		t.Fatalf("rank %d severity %v score %.2f", rank, f.Severity, f.Score)
	}
	if !strings.Contains(strings.Join(f.Reasons, ";"), "held at most medium") {
		t.Errorf("reasons %q", f.Reasons)
	}
	for _, f := range res.Findings {
		if f.Severity > Medium {
			t.Errorf("%v finding %v -> %v at %v", f.Kind, f.Src, f.Dst, f.Severity)
		}
	}
}

func TestNameChannelAcrossAddresses(t *testing.T) {
	// A beacon rotating over three addresses of one name: the name channel
	// is regular where each address channel is not.
	n := &net{rng: rand.New(rand.NewSource(3))}
	h := hostAddr(1)
	addrs := []netip.Addr{ip("203.0.113.5"), ip("198.18.77.9"), ip("192.0.2.40")}
	for i, t := 0, time.Duration(0); t < 12*time.Hour; i, t = i+1, t+time.Duration(float64(10*time.Minute)*(0.9+0.2*n.rng.Float64())) {
		r := n.conn(t0.Add(t), h, addrs[n.rng.Intn(3)], 443, 6, 500, 700)
		r.Name, r.NameSource = "rotating.example.net", flow.NameSNI
	}
	for i := range 10 {
		n.browse(hostAddr(10+i), 20, 12*time.Hour)
	}
	res := n.model(Config{}).Score()
	var byName *Finding
	for i := range res.Findings {
		f := &res.Findings[i]
		if f.Kind == KindChannel && f.Src == h && strings.Contains(strings.Join(f.Reasons, ";"), "channel by name rotating.example.net over 3 addresses") {
			byName = f
		}
	}
	if byName == nil {
		t.Fatal("no name channel")
	}
	if byName.PeriodSec < 540 || byName.PeriodSec > 660 || byName.DstName != "rotating.example.net" {
		t.Errorf("name channel period %.0f name %q", byName.PeriodSec, byName.DstName)
	}
	for i := range res.Findings {
		f := &res.Findings[i]
		if f.Kind == KindChannel && f.Src == h && f.Score > byName.Score {
			t.Errorf("address channel %v scores %.2f above the name channel's %.2f", f.Dst, f.Score, byName.Score)
		}
	}
}

func TestAllowListAndScan(t *testing.T) {
	n, a := office(t)
	// A host scanning telnet across the network.
	for i := range 60 {
		r := n.conn(t0.Add(3*time.Hour+time.Duration(i)*time.Second), hostAddr(3), netip.AddrFrom4([4]byte{10, 7, 0, byte(i + 1)}), 23, 6, 0, 0)
		r.RespPkts, r.RespFlags, r.OrigFlags = 0, 0, 0x02
	}
	allow := func(x netip.Addr, name string) bool { return x == a["c2"] }
	res := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Allowed: allow}).Score()
	if _, f := find(res, KindChannel, a["beacon"], a["c2"]); f != nil {
		t.Errorf("allowed destination still reported: %+v", f)
	}
	_, scan := find(res, KindHost, hostAddr(3), netip.Addr{})
	if scan == nil || !scan.Scan || !slices.Contains(scan.Attack, "T1046") || scan.Severity < Medium {
		t.Errorf("scanner: %+v", scan)
	}
}

func TestInboundAndMulticast(t *testing.T) {
	// Multicast and broadcast are no channels; an inbound schedule the
	// inside host answers is one (inbound), a scan it does not answer is
	// none.
	n := &net{rng: rand.New(rand.NewSource(4))}
	n.periodic(ip("45.140.140.75"), ip("10.1.0.1"), 3389, time.Minute, 0, time.Hour, 60)
	for i := range 60 {
		r := n.conn(t0.Add(time.Duration(i)*time.Minute), ip("45.140.140.78"), ip("10.1.0.1"), 23, 6, 0, 0)
		r.RespPkts, r.RespFlags = 0, 0
	}
	n.periodic(ip("10.1.0.2"), ip("224.0.0.251"), 5353, time.Minute, 0, time.Hour, 60)
	n.periodic(ip("10.1.0.2"), ip("10.1.0.255"), 137, time.Minute, 0, time.Hour, 60)
	n.periodic(ip("fe80::1"), ip("ff02::1:2"), 547, time.Minute, 0, time.Hour, 60)
	res := n.model(Config{}).Score()
	if res.Channels != 1 {
		t.Fatalf("%d channels measured: %+v", res.Channels, res.Findings)
	}
	_, f := find(res, KindChannel, ip("45.140.140.75"), ip("10.1.0.1"))
	if f == nil || f.Direction != Inbound || f.Severity > Medium || !slices.Contains(f.Attack, "T1133") {
		t.Errorf("inbound RDP schedule: %+v", f)
	}
	// The inside host it reaches has a host finding of its own.
	if _, h := find(res, KindHost, ip("10.1.0.1"), netip.Addr{}); h == nil || h.BeaconDst != ip("45.140.140.75") {
		t.Errorf("inside host: %+v", h)
	}
}

func TestSeverityNames(t *testing.T) {
	for _, tc := range []struct {
		score float64
		want  string
	}{{0.1, "info"}, {0.2, "low"}, {0.45, "medium"}, {0.6, "high"}, {0.95, "critical"}} {
		s := SeverityOf(tc.score)
		if s.String() != tc.want {
			t.Errorf("SeverityOf(%.2f) = %v", tc.score, s)
		}
		if p, err := ParseSeverity(strings.ToUpper(tc.want)); err != nil || p != s {
			t.Errorf("ParseSeverity(%q) = %v, %v", tc.want, p, err)
		}
	}
	if _, err := ParseSeverity("severe"); err == nil {
		t.Error("accepted an unknown severity")
	}
}

func BenchmarkScore(b *testing.B) {
	n := &net{rng: rand.New(rand.NewSource(5))}
	for i := range 100 {
		h := hostAddr(i)
		n.periodic(h, ip("10.9.0.10"), 8443, time.Minute, 0.02, 24*time.Hour, 600)
		n.browse(h, 40, 24*time.Hour)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		n.model(Config{}).Score()
	}
	b.ReportMetric(float64(len(n.recs)*b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(len(n.recs)), "records")
}

// TestSampledChannelBounded: a channel with more check-ins than the store
// keeps is measured on its sample: the period holds, its storage stays
// bounded, and a random high-rate channel does not turn regular.
func TestSampledChannelBounded(t *testing.T) {
	n := &net{rng: rand.New(rand.NewSource(6))}
	span := 72 * time.Hour
	for i := range 20 {
		n.browse(hostAddr(i), 20, span)
	}
	n.periodic(hostAddr(3), ip("203.0.113.30"), 443, 30*time.Second, 0.3, span, 300) // 8640 check-ins
	for x := time.Duration(0); x < span; x += time.Duration(n.rng.ExpFloat64() * float64(10*time.Second)) {
		n.conn(t0.Add(x), hostAddr(5), ip("192.0.2.50"), 443, 6, 500, 900) // ~26000 random connections
	}
	m := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, k := range []chanKey{{hostAddr(3), ip("203.0.113.30"), 443, 6}, {hostAddr(5), ip("192.0.2.50"), 443, 6}} {
		c := m.channels[k]
		if !c.sampled() || len(c.events) > maxRuns*runLen || cap(c.cur) > runLen {
			t.Fatalf("%v: sampled %v, %d events kept (cap %d)", k.dst, c.sampled(), len(c.events), maxRuns*runLen)
		}
	}
	res := m.Score()
	rank, b := find(res, KindChannel, hostAddr(3), ip("203.0.113.30"))
	if rank != 1 || b.PeriodSec < 27 || b.PeriodSec > 33 || b.Connections < 8000 {
		t.Fatalf("beacon rank %d: %+v", rank, b)
	}
	if !strings.Contains(strings.Join(b.Reasons, ";"), "measured on a sample of") {
		t.Errorf("reasons do not say the channel was sampled: %q", b.Reasons)
	}
	if _, r := find(res, KindChannel, hostAddr(5), ip("192.0.2.50")); r == nil || r.Score > 0.2 {
		t.Errorf("random high-rate channel: %+v", r)
	}
}

func TestTasking(t *testing.T) {
	steady := func(n int, big map[int]uint32) []event {
		es := make([]event, n)
		for i := range es {
			es[i] = event{t: int64(i), obytes: uint32(300 + i%7), resp: uint32(200 + i%11)}
			if b, ok := big[i]; ok {
				es[i].resp = b
			}
		}
		return es
	}
	tests := []struct {
		name     string
		es       []event
		min, max float64
	}{
		{"constant sizes", steady(100, nil), 0, 0},
		{"three taskings", steady(100, map[int]uint32{10: 40000, 50: 60000, 90: 35000}), 0.6, 1},
		{"one tasking", steady(100, map[int]uint32{10: 40000}), 0.3, 0.5},
		{"small bumps are not tasking", steady(100, map[int]uint32{10: 900, 50: 1000}), 0, 0},
		{"mostly large is not occasional", steady(8, map[int]uint32{1: 40000, 2: 40000, 3: 40000, 4: 40000}), 0, 0},
	}
	for _, tc := range tests {
		got := tasking(tc.es)
		if got.evidence < tc.min || got.evidence > tc.max {
			t.Errorf("%s: evidence %.2f, want %.2f..%.2f (%+v)", tc.name, got.evidence, tc.min, tc.max, got)
		}
	}
	// Browsing-like sizes spread over magnitudes: no steady base, no tasking.
	r := rand.New(rand.NewSource(1))
	var es []event
	for i := range 200 {
		es = append(es, event{t: int64(i), obytes: uint32(300 + r.Intn(900)), resp: uint32(1000 * r.ExpFloat64() * 30)})
	}
	if got := tasking(es); got.evidence != 0 {
		t.Errorf("varied sizes: evidence %.2f (%+v)", got.evidence, got)
	}
}

// TestCorroboration: among periodic single-host channels into the same
// popular provider range, the one whose source also tasks, started late and
// fans out ranks first, and a campaign on a few of many hosts stays rare.
func TestCorroboration(t *testing.T) {
	n := &net{rng: rand.New(rand.NewSource(7))}
	day := 24 * time.Hour
	for i := range 60 {
		h := hostAddr(i)
		n.periodic(h, ip("198.51.100.20"), 443, time.Hour, 0.05, day, 700) // fleet update check: makes the /24 popular
		n.browse(h, 20, day)
	}
	n.periodic(hostAddr(9), ip("198.51.100.61"), 443, 2*time.Minute, 0, day, 350) // clockwork widget
	// The compromised host: jittered, starts at 6 h, is tasked, moves laterally.
	for x := 6 * time.Hour; x < day; x += time.Duration(float64(10*time.Minute) * (0.5 + n.rng.Float64())) {
		in := uint64(250)
		if n.rng.Float64() < 0.05 {
			in = 40000
		}
		n.conn(t0.Add(x), hostAddr(20), ip("198.51.100.150"), 443, 6, 400, in)
	}
	for i := range 6 {
		n.conn(t0.Add(15*time.Hour+time.Duration(i)*time.Minute), hostAddr(20), hostAddr(40+i), 445, 6, 3000, 2000)
	}
	// A campaign: four hosts to one controller, compromised over the day.
	for j, h := range []int{30, 31, 32, 33} {
		for x := time.Duration(j+2) * time.Hour; x < day; x += time.Duration(float64(5*time.Minute) * (0.7 + 0.6*n.rng.Float64())) {
			n.conn(t0.Add(x), hostAddr(h), ip("203.0.113.66"), 443, 6, 400, 300)
		}
	}
	res := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}).Score()
	_, c2 := find(res, KindChannel, hostAddr(20), ip("198.51.100.150"))
	_, widget := find(res, KindChannel, hostAddr(9), ip("198.51.100.61"))
	if c2 == nil || widget == nil || c2.Score <= widget.Score+0.05 {
		t.Fatalf("corroborated beacon %+v\nwidget %+v", c2, widget)
	}
	why := strings.Join(c2.Reasons, ";")
	for _, want := range []string{"tasking", "new: began", "fans out to 6 internal peers"} {
		if !strings.Contains(why, want) {
			t.Errorf("beacon reasons lack %q: %s", want, why)
		}
	}
	for _, h := range []int{30, 31, 32, 33} {
		if _, f := find(res, KindChannel, hostAddr(h), ip("203.0.113.66")); f == nil || f.Score <= widget.Score {
			t.Errorf("campaign member %v scores below the widget: %+v", hostAddr(h), f)
		}
	}
}

// TestHumanHours: a periodic channel a person keeps open in office hours
// is discounted against the same schedule kept through the night.
func TestHumanHours(t *testing.T) {
	n := &net{rng: rand.New(rand.NewSource(8))}
	span := 48 * time.Hour
	for i := range 30 {
		n.browse(hostAddr(i), 40, span)
		n.periodic(hostAddr(i), ip("10.9.0.10"), 8443, 10*time.Minute, 0.02, span, 600)
	}
	for x := time.Duration(0); x < span; x += time.Duration(float64(5*time.Minute) * (0.9 + 0.2*n.rng.Float64())) {
		if h := t0.Add(x).Hour(); h >= 9 && h < 17 {
			n.conn(t0.Add(x), hostAddr(4), ip("192.0.2.44"), 443, 6, 500, 800) // a dashboard tab
		}
		n.conn(t0.Add(x), hostAddr(5), ip("192.0.2.55"), 443, 6, 500, 800) // the same schedule, day and night
	}
	res := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}).Score()
	_, tab := find(res, KindChannel, hostAddr(4), ip("192.0.2.44"))
	_, agent := find(res, KindChannel, hostAddr(5), ip("192.0.2.55"))
	if tab == nil || agent == nil || tab.Score >= agent.Score {
		t.Fatalf("office-hours channel %+v\nround-the-clock channel %+v", tab, agent)
	}
	if !strings.Contains(strings.Join(tab.Reasons, ";"), "likely a person's doing") {
		t.Errorf("office-hours reasons: %q", tab.Reasons)
	}
	if !strings.Contains(strings.Join(agent.Reasons, ";"), "while the source's user is away") {
		t.Errorf("round-the-clock reasons: %q", agent.Reasons)
	}
}

// TestOutsideDNS: periodic name service straight to an outside server,
// where the other hosts use the inside resolver, gets no infrastructure
// discount; NTP to an outside pool does.
func TestOutsideDNS(t *testing.T) {
	n := &net{rng: rand.New(rand.NewSource(9))}
	day := 24 * time.Hour
	for i := range 40 {
		n.browse(hostAddr(i), 20, day)
		n.periodic(hostAddr(i), ip("10.9.0.53"), 53, 7*time.Minute, 0.5, day, 40)
	}
	n.periodic(hostAddr(6), ip("185.100.87.14"), 53, 3*time.Minute, 0.3, day, 60)
	for x := time.Duration(0); x < day; x += 1024 * time.Second {
		n.conn(t0.Add(x), hostAddr(7), ip("162.159.200.1"), 123, 17, 48, 48)
	}
	res := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}).Score()
	_, dns := find(res, KindChannel, hostAddr(6), ip("185.100.87.14"))
	_, ntp := find(res, KindChannel, hostAddr(7), ip("162.159.200.1"))
	if dns == nil || ntp == nil || dns.Score <= ntp.Score {
		t.Fatalf("outside DNS %+v\noutside NTP %+v", dns, ntp)
	}
	if !strings.Contains(strings.Join(dns.Reasons, ";"), "name service straight to an outside server") || !slices.Contains(dns.Attack, "T1071.004") {
		t.Errorf("outside DNS: reasons %q attack %v", dns.Reasons, dns.Attack)
	}
}

// TestMemoryFollowsChannels: three times the connections over the same
// channels leave the model's heap about as large.
func TestMemoryFollowsChannels(t *testing.T) {
	heap := func(perChannel int) uint64 {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		m := New(Config{})
		var r flow.Record
		for i := range perChannel {
			for c := range 200 {
				ts := t0.Add(time.Duration(i)*time.Minute + time.Duration(c)*time.Second)
				r = flow.Record{First: ts, Last: ts, Proto: 6, Orig: hostAddr(c % 20), Resp: netip.AddrFrom4([4]byte{203, 0, 113, byte(c)}),
					OrigPort: 40000, RespPort: 443, OrigPkts: 3, RespPkts: 3, OrigData: 300, RespData: 200}
				m.Add(&r)
			}
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(m)
		return after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	}
	one, three := heap(5000), heap(15000)
	t.Logf("200 channels: %d KB with 5000 connections each, %d KB with 15000", one>>10, three>>10)
	if float64(three) > 1.2*float64(one) || one > 200*(maxRuns*runLen*24+4096) {
		t.Errorf("heap %d bytes for 1x, %d for 3x the connections", one, three)
	}
}

// TestMemoryFollowsChannelsWithBursts: connections that carry burst
// series (kept-alive check-ins) still leave the heap bounded by channels.
func TestMemoryFollowsChannelsWithBursts(t *testing.T) {
	at := make([]uint32, flow.MaxBursts)
	for i := range at {
		at[i] = uint32(i) * 30000
	}
	heap := func(perChannel int) uint64 {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		m := New(Config{})
		var r flow.Record
		for i := range perChannel {
			for c := range 200 {
				ts := t0.Add(time.Duration(i)*time.Hour + time.Duration(c)*time.Second)
				r = flow.Record{First: ts, Last: ts.Add(40 * time.Minute), Proto: 6, Orig: hostAddr(c % 20), Resp: netip.AddrFrom4([4]byte{203, 0, 113, byte(c)}),
					OrigPort: 40000, RespPort: 443, OrigPkts: 300, RespPkts: 300, OrigData: 30000, RespData: 20000,
					Bursts: flow.Bursts{N: 200, At: at, Head: flow.MaxBursts / 2}}
				m.Add(&r)
			}
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(m)
		return after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	}
	one, three := heap(100), heap(300)
	t.Logf("200 channels: %d KB with 100 kept-alive connections each (6,400 check-ins), %d KB with 300", one>>10, three>>10)
	if float64(three) > 1.2*float64(one) || one > 200*(maxRuns*runLen*24+4096) {
		t.Errorf("heap %d bytes for 1x, %d for 3x the connections", one, three)
	}
}

func TestContacts(t *testing.T) {
	n := &net{rng: rand.New(rand.NewSource(3))}
	c2 := ip("203.0.113.77")
	n.periodic(hostAddr(1), c2, 443, time.Minute, 0.1, time.Hour, 300)
	once := n.conn(t0.Add(30*time.Minute), hostAddr(2), c2, 8080, 6, 100, 100) // one check-in: never scored
	n.conn(t0.Add(31*time.Minute), hostAddr(2), ip("203.0.113.78"), 443, 6, 100, 100)
	n.conn(t0.Add(32*time.Minute), c2, hostAddr(3), 22, 6, 100, 100) // inbound: not a contact
	m := n.model(Config{})
	got := m.Contacts(c2)
	if len(got) != 2 {
		t.Fatalf("contacts %+v", got)
	}
	if got[0].Src != hostAddr(1) || got[0].Port != 443 || got[0].Proto != 6 || got[0].Connections < 50 || !got[0].First.Before(got[0].Last) {
		t.Errorf("beacon contact %+v", got[0])
	}
	if got[1].Src != hostAddr(2) || got[1].Port != 8080 || got[1].Connections != 1 || !got[1].First.Equal(once.First) || !got[1].Last.Equal(once.First) {
		t.Errorf("single contact %+v", got[1])
	}
	if c := m.Contacts(ip("198.51.100.1")); len(c) != 0 {
		t.Errorf("unknown destination has contacts %+v", c)
	}
}

// keptAlive adds one connection from src to dst that stays open for span
// and carries a check-in every period (±jitter): one record with a burst
// series, as the flow builder makes it.
func (n *net) keptAlive(src, dst netip.Addr, port uint16, start time.Time, period time.Duration, jitter float64, span time.Duration) *flow.Record {
	r := n.conn(start, src, dst, port, 6, 500, 900)
	r.Last = start.Add(span)
	var at []uint32
	for t := time.Duration(0); t < span; t += time.Duration(float64(period) * (1 + jitter*(2*n.rng.Float64()-1))) {
		at = append(at, uint32(t/time.Millisecond))
	}
	r.Bursts = flow.Bursts{N: uint32(len(at)), At: at, Head: uint8(min(len(at), flow.MaxBursts))}
	if len(at) > flow.MaxBursts {
		r.Bursts.At = append(at[:flow.MaxBursts/2:flow.MaxBursts/2], at[len(at)-flow.MaxBursts/2:]...)
		r.Bursts.Head = flow.MaxBursts / 2
	}
	return r
}

func TestCheckInsInsideConnections(t *testing.T) {
	// Caldera sandcat's shape in an office: two kept-alive connections
	// carry a check-in every 50 s ±20%; a connection-level view sees two
	// events.
	n, _ := office(t)
	c2 := ip("203.0.113.88")
	n.keptAlive(hostAddr(4), c2, 8888, t0.Add(9*time.Hour), 50*time.Second, 0.2, 20*time.Second)
	n.keptAlive(hostAddr(4), c2, 8888, t0.Add(9*time.Hour+30*time.Second), 50*time.Second, 0.2, 3*time.Hour)
	// A long-lived connection with a heartbeat every 30 s on every host:
	// fleet software, not a beacon.
	for i := range 30 {
		n.keptAlive(hostAddr(i), ip("198.51.100.90"), 443, t0.Add(time.Duration(i)*time.Minute), 30*time.Second, 0.05, 20*time.Hour)
	}
	res := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}).Score()
	rank, f := find(res, KindChannel, hostAddr(4), c2)
	if f == nil || f.Severity < High || f.PeriodSec < 40 || f.PeriodSec > 60 || f.Connections != 2 {
		t.Fatalf("kept-alive beacon rank %d: %+v", rank, f)
	}
	if !strings.Contains(strings.Join(f.Reasons, ";"), "inside kept-open connections (2 connections)") {
		t.Errorf("reasons %q", f.Reasons)
	}
	for _, f := range res.Findings {
		if f.Kind == KindChannel && f.Dst == ip("198.51.100.90") && f.Severity > Low {
			t.Errorf("fleet heartbeat %v scored %.2f", f.Src, f.Score)
		}
	}
}

func TestHoleInBurstSeries(t *testing.T) {
	// A day-long connection keeps its first and last 32 check-ins: the
	// hole between them is no 23-hour interval, and the channel stays
	// clockwork.
	n := &net{rng: rand.New(rand.NewSource(9))}
	r := n.keptAlive(hostAddr(1), ip("203.0.113.5"), 4444, t0, time.Minute, 0, 24*time.Hour)
	if r.Bursts.Head != flow.MaxBursts/2 {
		t.Fatalf("head %d", r.Bursts.Head)
	}
	m := n.model(Config{})
	c := m.channels[chanKey{hostAddr(1), ip("203.0.113.5"), 4444, 6}]
	runs := c.runs(m.first)
	if len(runs) != 2 || len(c.holes) != 1 {
		t.Fatalf("%d runs, %d holes", len(runs), len(c.holes))
	}
	res := m.Score()
	_, f := find(res, KindChannel, hostAddr(1), ip("203.0.113.5"))
	if f == nil || f.Regularity < 0.9 || f.PeriodSec < 59 || f.PeriodSec > 61 || !strings.Contains(f.Reasons[0], "1440 check-ins") {
		t.Errorf("%+v", f)
	}
}

func TestProxiedChannels(t *testing.T) {
	// Every host browses and updates through a forward proxy; one polls a
	// controller through it. The controller is judged on its name, the
	// proxy is no rare destination, and what the proxy fetches on its
	// clients' behalf is theirs.
	n := &net{rng: rand.New(rand.NewSource(11))}
	proxy := ip("10.9.0.8")
	via := func(ts time.Time, src netip.Addr, dest string) {
		r := n.conn(ts, src, proxy, 3128, 6, 600, 4000)
		r.ProxyDest, r.Name, r.NameSource = dest, dest[:strings.LastIndexByte(dest, ':')], flow.NameHTTP
		// The proxy's own connection for it.
		host := dest[:strings.LastIndexByte(dest, ':')]
		u := n.conn(ts.Add(5*time.Millisecond), proxy, ip("198.51.100.77"), 443, 6, 600, 4000)
		if host == "c2.example.org" {
			u.Resp = ip("203.0.113.66")
		}
		u.Name, u.NameSource = host, flow.NameSNI
	}
	day := 12 * time.Hour
	for i := range 30 {
		h := hostAddr(i)
		for t := time.Duration(n.rng.Int63n(int64(10 * time.Minute))); t < day; t += 10*time.Minute + time.Duration(n.rng.Intn(20))*time.Second {
			via(t0.Add(t), h, "safebrowsing.googleapis.com:443")
		}
		for t := time.Duration(0); t < day; t += time.Duration(n.rng.ExpFloat64() * float64(4*time.Minute)) {
			via(t0.Add(t), h, fmt.Sprintf("site%d.example.com:443", n.rng.Intn(60)))
		}
	}
	for t := time.Duration(0); t < day; t += time.Duration(float64(5*time.Minute) * (0.8 + 0.4*n.rng.Float64())) {
		via(t0.Add(t), hostAddr(5), "c2.example.org:443")
	}
	// The proxy resolves the controller's name.
	d := n.conn(t0, proxy, ip("10.9.0.53"), 53, 17, 40, 80)
	d.Name, d.NameSource, d.Answers = "c2.example.org", flow.NameDNS, []netip.Addr{ip("203.0.113.66")}

	m := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	res := m.Score()
	// The controller's contacts are the client, not the proxy that
	// fetched for it.
	if cs := m.Contacts(ip("203.0.113.66")); len(cs) != 1 || cs[0].Src != hostAddr(5) {
		t.Errorf("contacts %+v", cs)
	}
	var first *Finding
	for i := range res.Findings {
		if f := &res.Findings[i]; f.Kind == KindChannel {
			first = f
			break
		}
	}
	if first == nil || first.Src != hostAddr(5) || first.DstName != "c2.example.org" || first.Dst != ip("203.0.113.66") ||
		first.Via != proxy || first.Severity < High || !slices.Contains(first.Attack, "T1090") {
		t.Fatalf("first channel %+v", first)
	}
	for _, f := range res.Findings {
		switch {
		case f.Kind != KindChannel:
		case f.Src == proxy:
			t.Errorf("the proxy's relayed connection scored: %+v", f)
		case f.Dst == proxy:
			t.Errorf("the proxy scored as a destination: %+v", f)
		case f.DstName == "safebrowsing.googleapis.com" && f.Severity > Low:
			t.Errorf("fleet update check through the proxy at %v", f.Severity)
		}
	}
	// Popularity is counted on the destination asked for.
	if first.Popularity != 1 {
		t.Errorf("popularity %d", first.Popularity)
	}
}

func TestInboundPolling(t *testing.T) {
	// RITA's missing_host: an outside address polls an inside web server
	// every 200-350 s for three days. A monitoring service polls ten inside
	// servers from addresses of one network, and a scanner sweeps them.
	n := &net{rng: rand.New(rand.NewSource(12))}
	span := 72 * time.Hour
	for i := range 30 {
		n.browse(hostAddr(i), 20, span)
	}
	web := hostAddr(200)
	for t := time.Duration(0); t < span; t += time.Duration(200+n.rng.Intn(150)) * time.Second {
		n.conn(t0.Add(t), ip("198.51.100.23"), web, 80, 6, 400, 1800)
	}
	for s := range 5 {
		mon := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + s)})
		for i := range 10 {
			n.periodic(mon, hostAddr(210+i), 443, 5*time.Minute, 0.01, span, 300)
		}
	}
	for i := range 40 {
		r := n.conn(t0.Add(time.Duration(i)*time.Second), ip("45.140.140.75"), hostAddr(i), 22, 6, 0, 0)
		r.RespPkts, r.RespFlags = 1, 0x14 // refused
	}
	res := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}).Score()
	rank, f := find(res, KindChannel, ip("198.51.100.23"), web)
	if f == nil || f.Direction != Inbound || f.Severity < High {
		t.Fatalf("inbound poll rank %d: %+v", rank, f)
	}
	hr, h := find(res, KindHost, web, netip.Addr{})
	if h == nil || h.Severity < High || h.BeaconDst != ip("198.51.100.23") {
		t.Errorf("web server host finding rank %d: %+v", hr, h)
	}
	for _, f := range res.Findings {
		if f.Kind == KindChannel && f.Direction == Inbound && f.Src != ip("198.51.100.23") && f.Severity > Low {
			t.Errorf("monitoring %v -> %v at %v (%.2f): %q", f.Src, f.Dst, f.Severity, f.Score, f.Reasons)
		}
		if f.Src == ip("45.140.140.75") {
			t.Errorf("unanswered scan measured: %+v", f)
		}
	}
}

func TestOwnEvidenceInSmallCaptures(t *testing.T) {
	// One inside host and minutes of data: the population says nothing.
	// Dozens of regular check-ins, or a loop of refused attempts, to one
	// outside destination on an odd port is high; the same on a standard
	// port stays medium, and so does a loop on one.
	inside := []netip.Prefix{netip.MustParsePrefix("192.168.100.0/24")}
	h := ip("192.168.100.7")
	tests := []struct {
		name    string
		port    uint16
		refused bool
		period  time.Duration
		want    Severity
		reason  string
	}{
		{"quasar on 1337", 1337, false, 3500 * time.Millisecond, High, "own evidence (a schedule to an odd port)"},
		{"retry loop on 1177", 1177, true, 12 * time.Second, High, "reconnect loop: "},
		{"schedule on 443", 443, false, 3 * time.Second, Medium, "held at most medium"},
		{"retry loop on 80", 80, true, 7 * time.Second, Medium, "held at most medium"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &net{rng: rand.New(rand.NewSource(13))}
			dst := ip("86.136.67.231")
			for i := range 77 {
				r := n.conn(t0.Add(time.Duration(i)*tc.period+time.Duration(n.rng.Intn(200))*time.Millisecond), h, dst, tc.port, 6, 300, 500)
				if tc.refused {
					r.RespData, r.OrigData, r.RespFlags, r.OrigFlags = 0, 0, 0x14, 0x02
				}
			}
			for i := range 40 { // the rest of the host's traffic
				n.conn(t0.Add(time.Duration(i)*7*time.Second), h, netip.AddrFrom4([4]byte{20, 0, 0, byte(i)}), 443, 6, 800, 9000)
			}
			res := n.model(Config{Internal: inside}).Score()
			rank, f := find(res, KindChannel, h, dst)
			if rank > 2 || f.Severity != tc.want || !f.Own {
				t.Fatalf("rank %d severity %v (%.2f), own %v: %q", rank, f.Severity, f.Score, f.Own, f.Reasons)
			}
			if !strings.Contains(strings.Join(f.Reasons, ";"), tc.reason) {
				t.Errorf("reasons %q lack %q", f.Reasons, tc.reason)
			}
		})
	}
	// A container lab: controller and agent in one private range. The
	// controller, reached by no other inside host on a port with no
	// inside service, is judged as an outside destination.
	n := &net{rng: rand.New(rand.NewSource(14))}
	n.keptAlive(ip("172.18.0.3"), ip("172.18.0.2"), 8888, t0, 50*time.Second, 0.2, 28*time.Minute)
	res := n.model(Config{}).Score()
	_, f := find(res, KindChannel, ip("172.18.0.3"), ip("172.18.0.2"))
	if f == nil || f.Severity != High || f.Direction != Internal || !strings.Contains(strings.Join(f.Reasons, ";"), "judged as outside") {
		t.Errorf("lab controller: %+v", f)
	}
}

// TestSampleOwnChannel: a long channel keeps the same sample whatever
// other channels' records come between its own (the flow database hands
// records over pair by pair, a store in time order).
func TestSampleOwnChannel(t *testing.T) {
	n := &net{rng: rand.New(rand.NewSource(4))}
	n.periodic(hostAddr(1), ip("203.0.113.9"), 443, 10*time.Second, 0.3, 24*time.Hour, 300)
	alone := n.model(Config{})
	for i := range 5 {
		n.browse(hostAddr(2+i), 200, 24*time.Hour)
	}
	slices.SortStableFunc(n.recs, func(a, b *flow.Record) int { return a.First.Compare(b.First) })
	mixed := n.model(Config{})
	k := chanKey{hostAddr(1), ip("203.0.113.9"), 443, 6}
	if ca, cb := alone.channels[k], mixed.channels[k]; !ca.sampled() || !slices.Equal(ca.sample(), cb.sample()) {
		t.Fatal("the sample depends on other channels")
	}
}

// TestCertificateChannels: a destination few inside hosts reach that
// presents a certificate no public CA vouched for is a finding without
// any schedule (medium on an odd port, low on a standard one); the same
// from a public CA, to a popular destination or inbound, is none; with a
// schedule on a standard port it lifts the channel as an odd port does.
func TestCertificateChannels(t *testing.T) {
	selfSigned := flow.TLSCert{Flags: flow.TLSCertSeen | flow.TLSSelfSigned | flow.TLSNoSNI, SubjectCN: "Test Server", IssuerCN: "Test Server"}
	private := flow.TLSCert{Flags: flow.TLSCertSeen | flow.TLSIssuerAbsent, SubjectCN: "agent", IssuerCN: "Lab CA"}
	public := flow.TLSCert{Flags: flow.TLSCertSeen, SubjectCN: "www.example.com", IssuerCN: "Example CA 1"}
	h := ip("10.1.0.1")
	dst := ip("203.0.113.9")
	tests := []struct {
		name   string
		cert   flow.TLSCert
		port   uint16
		users  int  // inside hosts that reach dst (h is one)
		in     bool // dst opens the connection to h
		want   Severity
		reason string
	}{
		{"self-signed, odd port", selfSigned, 4782, 1, false, Medium, "TLS with a self-signed certificate CN=Test Server issued by CN=Test Server"},
		{"private CA, odd port", private, 7084, 1, false, Medium, "TLS with a certificate CN=agent issued by CN=Lab CA, a CA that no chain to a public root"},
		{"self-signed, 443", selfSigned, 443, 1, false, Low, "TLS with a self-signed certificate"},
		{"public CA", public, 4782, 1, false, Info, ""},
		{"popular destination", selfSigned, 4782, 20, false, Info, ""},
		{"inbound", selfSigned, 4782, 1, true, Info, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &net{rng: rand.New(rand.NewSource(21))}
			for i := range 30 { // a population that can judge popularity
				n.browse(hostAddr(i), 20, 24*time.Hour)
			}
			for i := range tc.users {
				src := hostAddr(i)
				if i == 0 {
					src = h
				}
				r := n.conn(t0.Add(10*time.Hour+time.Duration(i)*time.Minute), src, dst, tc.port, 6, 400, 1500)
				if tc.in {
					r.Orig, r.Resp, r.RespPort, r.OrigPort = dst, src, r.OrigPort, tc.port
				}
				r.TLS = tc.cert
			}
			res := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}).Score()
			src, d := h, dst
			if tc.in {
				src, d = dst, h
			}
			_, f := find(res, KindChannel, src, d)
			if tc.want == Info {
				if f != nil {
					t.Fatalf("finding %v %.2f: %q", f.Severity, f.Score, f.Reasons)
				}
				return
			}
			if f == nil {
				t.Fatal("no finding")
			}
			if f.Severity != tc.want || !strings.HasPrefix(f.Reasons[0], tc.reason) || !slices.Contains(f.Attack, "T1573.002") || f.Beacon {
				t.Errorf("%v %.2f %q %v", f.Severity, f.Score, f.Reasons, f.Attack)
			}
		})
	}
	// A schedule on a standard port in a small capture: held at medium
	// without a certificate, lifted as an odd port is with one.
	score := func(cert flow.TLSCert) *Finding {
		n := &net{rng: rand.New(rand.NewSource(22))}
		for i := range 60 {
			r := n.conn(t0.Add(time.Duration(i)*5*time.Second+time.Duration(n.rng.Intn(100))*time.Millisecond), h, dst, 443, 6, 300, 500)
			r.TLS = cert
		}
		for i := range 30 {
			n.conn(t0.Add(time.Duration(i)*9*time.Second), h, netip.AddrFrom4([4]byte{20, 0, 0, byte(i)}), 443, 6, 800, 9000)
		}
		_, f := find(n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}).Score(), KindChannel, h, dst)
		if f == nil {
			t.Fatal("no finding for the schedule")
		}
		return f
	}
	plain, withCert, withPublic := score(flow.TLSCert{}), score(selfSigned), score(public)
	if plain.Severity != Medium || withCert.Severity != High || withPublic.Score != plain.Score {
		t.Errorf("schedule on 443: %.2f plain, %.2f self-signed, %.2f public CA", plain.Score, withCert.Score, withPublic.Score)
	}
	if !strings.Contains(strings.Join(withCert.Reasons, ";"), "self-signed certificate") {
		t.Errorf("reasons %q", withCert.Reasons)
	}
}

// jittered adds check-ins whose sleep is uniform over delay ±fraction
// (±100%: anywhere from 0 to twice the delay), request sizes ±sizeVar.
func (n *net) jittered(src, dst netip.Addr, port uint16, delay time.Duration, frac float64, from, to time.Duration, size uint64, sizeVar float64) {
	for t := from; t < to; {
		v := 1 + sizeVar*(2*n.rng.Float64()-1)
		n.conn(t0.Add(t), src, dst, port, 6, uint64(float64(size)*v), uint64(float64(2*size)*v))
		t += max(time.Duration(float64(delay)*(1+frac*(2*n.rng.Float64()-1))), 50*time.Millisecond)
	}
}

// events adds a Poisson series (mean gap) with steady sizes; sessions
// keeps it to the given [from, to) windows: a person's bursts.
func (n *net) events(src, dst netip.Addr, port uint16, mean time.Duration, sessions [][2]time.Duration, size uint64) {
	for _, s := range sessions {
		for t := s[0]; t < s[1]; t += time.Duration(n.rng.ExpFloat64() * float64(mean)) {
			n.conn(t0.Add(t), src, dst, port, 6, size+uint64(n.rng.Intn(10)), 2*size)
		}
	}
}

// TestJitteredSchedule: a channel whose jitter hides the beat (±100%) but
// whose intervals are bounded, whose every window is active and whose
// sizes are steady is a beacon, scored through rarity like any other;
// Poisson event traffic and a person's bursts with the same steady sizes
// are not, nor is a jittered channel whose sizes vary.
func TestJitteredSchedule(t *testing.T) {
	day := 24 * time.Hour
	n := &net{rng: rand.New(rand.NewSource(11))}
	for i := range 30 {
		h := hostAddr(i)
		n.periodic(h, ip("10.9.0.10"), 8443, time.Minute, 0.02, day, 600)
		n.browse(h, 30, day)
	}
	beacon, poisson, bursts, varied := ip("203.0.113.90"), ip("198.51.100.91"), ip("192.0.2.92"), ip("192.0.2.93")
	n.jittered(hostAddr(4), beacon, 443, 2*time.Minute, 1, 0, day, 400, 0.03)
	n.events(hostAddr(5), poisson, 443, 2*time.Minute, [][2]time.Duration{{0, day}}, 500)
	n.events(hostAddr(6), bursts, 443, 15*time.Second, [][2]time.Duration{{9 * time.Hour, 9*time.Hour + 20*time.Minute},
		{13 * time.Hour, 13*time.Hour + 30*time.Minute}, {16 * time.Hour, 16*time.Hour + 10*time.Minute}}, 500)
	n.jittered(hostAddr(8), varied, 443, 2*time.Minute, 1, 0, day, 400, 0.9)
	res := n.model(Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}).Score()

	rank, b := find(res, KindChannel, hostAddr(4), beacon)
	if rank != 1 || b.Severity < High || b.Regularity >= 0.25 {
		t.Fatalf("jittered beacon rank %d: %+v", rank, b)
	}
	if r := b.Reasons[0]; !strings.HasPrefix(r, "jittered schedule: intervals ") || !strings.Contains(r, "active in ") {
		t.Errorf("first reason %q", r)
	}
	for _, tc := range []struct {
		name string
		src  netip.Addr
		dst  netip.Addr
	}{{"poisson events", hostAddr(5), poisson}, {"bursts", hostAddr(6), bursts}, {"varied sizes", hostAddr(8), varied}} {
		_, f := find(res, KindChannel, tc.src, tc.dst)
		if f == nil {
			t.Fatalf("%s: no finding", tc.name)
		}
		if f.Score >= 0.2 || strings.Contains(strings.Join(f.Reasons, ";"), "jittered schedule") {
			t.Errorf("%s: %.2f %v", tc.name, f.Score, f.Reasons)
		}
	}
}

// TestInsideWebServer: in a capture of a few hosts, a jittered poller of
// an inside web server that no other inside host reaches, through the
// whole capture, is judged on its own evidence (at most medium); not when
// another inside host reaches the server, not on an admin port, not for
// a fraction of the capture.
func TestInsideWebServer(t *testing.T) {
	span := 20 * time.Minute
	server := ip("192.168.7.161")
	cases := []struct {
		name     string
		port     uint16
		from     time.Duration
		other    bool // a second inside host also reaches the server
		min, max Severity
	}{
		{"polled on 80 throughout", 80, 0, false, Medium, Medium},
		{"polled on 8443 throughout", 8443, 0, false, Medium, Medium},
		{"a second host reaches it", 80, 0, true, Info, Low},
		{"admin port 445", 445, 0, false, Info, Low},
		{"only the last quarter", 80, 15 * time.Minute, false, Info, Low},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := &net{rng: rand.New(rand.NewSource(12))}
			agent, other := ip("192.168.7.46"), ip("192.168.7.50")
			for i := range 40 { // the agent's and the other host's own traffic, over the capture
				at := time.Duration(i) * span / 40
				n.conn(t0.Add(at), agent, netip.AddrFrom4([4]byte{198, 18, 3, byte(1 + i)}), 443, 6, 600, 9000)
				n.conn(t0.Add(at), other, netip.AddrFrom4([4]byte{198, 18, 4, byte(1 + i)}), 443, 6, 600, 9000)
			}
			n.jittered(agent, server, tc.port, 5*time.Second, 1, tc.from, span, 250, 0.02)
			if tc.other {
				n.conn(t0.Add(time.Minute), other, server, tc.port, 6, 300, 900)
			}
			res := n.model(Config{}).Score()
			if res.PopulationWeight != 0 {
				t.Fatalf("population weight %.2f", res.PopulationWeight)
			}
			_, f := find(res, KindChannel, agent, server)
			if f == nil {
				t.Fatal("no finding")
			}
			if f.Severity < tc.min || f.Severity > tc.max {
				t.Errorf("%.2f %v, want %v-%v: %v", f.Score, f.Severity, tc.min, tc.max, f.Reasons)
			}
		})
	}
}
