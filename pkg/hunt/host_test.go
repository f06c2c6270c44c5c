package hunt

import (
	"fmt"
	"math"
	randv2 "math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

var inside10 = Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}

// hostRank is the rank of a's host finding among the host findings, and
// the finding.
func hostRank(res Result, a netip.Addr) (int, *Finding) {
	return find(res, KindHost, a, netip.Addr{})
}

// TestPopulationCountsEveryOriginator: an inside host that originates any
// traffic hunt models is one of the population, however little it sends:
// sixteen hosts that each keep one ping going (one ICMP flow each), or
// that each asked one name, are sixteen hosts, whether their records come
// through Add or apart (a flow database's DNS and ICMP).
func TestPopulationCountsEveryOriginator(t *testing.T) {
	const hosts = 16
	echo := func(i int) *flow.Record {
		return &flow.Record{First: t0, Last: t0.Add(10 * time.Minute), Proto: 1, Orig: hostAddr(i), Resp: ip("203.0.113.8"),
			OrigPort: 8, OrigPkts: 300, RespPkts: 300, OrigData: 300 * 64, RespData: 300 * 64}
	}
	query := func(i int) *flow.Record {
		return &flow.Record{First: t0.Add(time.Duration(i) * time.Second), Last: t0.Add(time.Duration(i)*time.Second + 20*time.Millisecond),
			Proto: 17, Orig: hostAddr(i), Resp: ip("10.9.0.53"), OrigPort: 40000, RespPort: 53, OrigPkts: 1, RespPkts: 1,
			OrigData: 35, RespData: 80, Name: "www.example.org", NameSource: flow.NameDNS}
	}
	for _, tc := range []struct {
		name string
		add  func(m *Model, i int)
	}{
		{"pings through Add", func(m *Model, i int) { m.Add(echo(i)) }},
		{"pings apart", func(m *Model, i int) { m.AddICMPRecord(echo(i)) }},
		{"lookups through Add", func(m *Model, i int) { m.Add(query(i)) }},
		{"lookups apart", func(m *Model, i int) { m.AddDNSRecord(query(i)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(inside10)
			if strings.HasSuffix(tc.name, "apart") {
				m.TakeDNSApart()
				m.TakeICMPApart()
			}
			for i := range hosts {
				tc.add(m, i)
			}
			// Records apart are not counted as records; one ordinary
			// record from outside gives the data a time span.
			m.Add(&flow.Record{First: t0, Last: t0.Add(time.Minute), Proto: 6, Orig: ip("198.51.100.1"), Resp: ip("203.0.113.2"), RespPort: 443})
			res := m.Score()
			if res.Hosts != hosts || res.PopulationWeight != 1 {
				t.Errorf("population %d weight %.2f, want %d and 1", res.Hosts, res.PopulationWeight, hosts)
			}
		})
	}
}

// TestHostCarriesCovertEvidence: a host whose only command and control is
// DNS or ICMP gets a host finding that carries it (score, techniques,
// reasons, the peer and its kind) and ranks first among the hosts; a host
// with evidence of two kinds scores above either (noisy-OR); evidence of
// another kind below low adds nothing.
func TestHostCarriesCovertEvidence(t *testing.T) {
	t.Run("icmp", func(t *testing.T) {
		res := icmpNet(true).model(inside10).Score()
		for _, tc := range []struct {
			src, dst netip.Addr
			attack   []string
		}{
			{hostAddr(9), ip("198.51.100.200"), []string{"T1095", "T1572"}},
			{hostAddr(7), ip("203.0.113.66"), []string{"T1095"}},
		} {
			_, c := find(res, KindICMP, tc.src, tc.dst)
			rank, h := hostRank(res, tc.src)
			if c == nil || h == nil {
				t.Fatalf("%s: ICMP finding %v, host finding %v", tc.src, c, h)
			}
			t.Logf("host rank %d %.2f %s %v %v", rank, h.Score, h.Severity, h.Attack, h.Reasons)
			if rank > 2 || h.Score < c.Score || h.Severity < Medium {
				t.Errorf("%s: host rank %d score %.2f, want among the first two at %.2f or more", tc.src, rank, h.Score, c.Score)
			}
			if !slices.Equal(h.Attack, tc.attack) || h.C2Kind != KindICMP || h.BeaconDst != tc.dst {
				t.Errorf("%s: attack %v kind %q peer %s, want %v icmp %s", tc.src, h.Attack, h.C2Kind, h.BeaconDst, tc.attack, tc.dst)
			}
			if len(h.Reasons) == 0 || !strings.HasPrefix(h.Reasons[0], "exchanges ICMP echo with "+tc.dst.String()) {
				t.Errorf("%s: reasons %q", tc.src, h.Reasons)
			}
		}
		// The pingers' hosts stay below medium.
		for _, a := range []netip.Addr{hostAddr(3), hostAddr(4), hostAddr(5)} {
			if _, h := hostRank(res, a); h != nil && h.Severity > Low {
				t.Errorf("pinging host %s: %s %.2f %v", a, h.Severity, h.Score, h.Reasons)
			}
		}
	})

	t.Run("dns tunnel", func(t *testing.T) {
		n := &dnsNet{rng: randv2.New(randv2.NewPCG(1, 2)), start: t0.Add(8 * time.Hour)}
		n.background(30, 4)
		n.query(dnsHost(5), 90*time.Minute, n.label(b32, 60)+".t.dnsq.org", 800, 120000, 600000)
		m := New(Config{})
		for _, r := range n.records {
			m.Add(r)
		}
		res := m.Score()
		rank, h := hostRank(res, dnsHost(5))
		_, d := find(res, KindDNS, dnsHost(5), dnsResolver)
		if h == nil || d == nil {
			t.Fatalf("host finding %v, DNS finding %v", h, d)
		}
		t.Logf("host rank %d %.2f %s %v %v", rank, h.Score, h.Severity, h.Attack, h.Reasons)
		if rank != 1 || h.Score < d.Score || h.Severity < High {
			t.Errorf("host rank %d score %.2f (%s), want first at %.2f or more", rank, h.Score, h.Severity, d.Score)
		}
		if !slices.Equal(h.Attack, []string{"T1071.004", "T1572"}) || h.C2Kind != KindDNS || h.BeaconDstName != "dnsq.org" || h.BeaconDst != dnsResolver {
			t.Errorf("attack %v kind %q peer %s %s", h.Attack, h.C2Kind, h.BeaconDstName, h.BeaconDst)
		}
		if len(h.Reasons) == 0 || !strings.HasPrefix(h.Reasons[0], "talks through DNS under dnsq.org") {
			t.Errorf("reasons %q", h.Reasons)
		}
		for _, f := range res.Findings {
			if f.Kind == KindHost && f.Src != dnsHost(5) && f.Severity > Low {
				t.Errorf("benign host %s: %s %.2f %v", f.Src, f.Severity, f.Score, f.Reasons)
			}
		}
	})

	t.Run("two kinds", func(t *testing.T) {
		// Host 7 beacons over HTTPS and tunnels over ICMP; host 8 beacons
		// alone, and pings the fleet's monitoring target (info) as every
		// host does.
		n := icmpNet(false)
		n.periodic(hostAddr(7), ip("203.0.113.77"), 443, 5*time.Minute, 0.3, 12*time.Hour, 400)
		n.echo(t0.Add(5*time.Hour), hostAddr(7), ip("198.51.100.200"), 8, 40, 80, 400, 400*1000)
		n.periodic(hostAddr(8), ip("203.0.113.78"), 443, 5*time.Minute, 0.3, 12*time.Hour, 400)
		slices.SortStableFunc(n.recs, func(a, b *flow.Record) int { return a.First.Compare(b.First) })
		res := n.model(inside10).Score()
		_, b7 := find(res, KindChannel, hostAddr(7), ip("203.0.113.77"))
		_, i7 := find(res, KindICMP, hostAddr(7), ip("198.51.100.200"))
		_, h7 := hostRank(res, hostAddr(7))
		_, b8 := find(res, KindChannel, hostAddr(8), ip("203.0.113.78"))
		_, i8 := find(res, KindICMP, hostAddr(8), ip("198.51.100.8"))
		rank8, h8 := hostRank(res, hostAddr(8))
		if b7 == nil || i7 == nil || h7 == nil || b8 == nil || i8 == nil || h8 == nil {
			t.Fatalf("findings missing: %v %v %v %v %v %v", b7, i7, h7, b8, i8, h8)
		}
		t.Logf("host 7 %.3f %v %v; host 8 %.3f (monitor %.3f) %v", h7.Score, h7.Attack, h7.Reasons, h8.Score, i8.Score, h8.Reasons)
		if want := 1 - (1-b7.Score)*(1-i7.Score); math.Abs(h7.Score-want) > 1e-9 || h7.Score <= max(b7.Score, i7.Score) {
			t.Errorf("host 7 score %.4f, want %.4f from %.4f and %.4f", h7.Score, want, b7.Score, i7.Score)
		}
		if !slices.Contains(h7.Attack, "T1095") || !slices.Contains(h7.Attack, "T1071.001") || len(h7.Reasons) < 3 ||
			!strings.HasPrefix(h7.Reasons[0], "exchanges ICMP echo") || !strings.HasPrefix(h7.Reasons[1], "beacons to 203.0.113.77:443") {
			t.Errorf("host 7 attack %v reasons %q", h7.Attack, h7.Reasons)
		}
		if i8.Score >= lowCut || h8.Score != b8.Score || h8.C2Kind != KindChannel || rank8 != 2 {
			t.Errorf("host 8 rank %d score %.4f, want second at its beacon's %.4f (the fleet's ping, %.4f, adds nothing)", rank8, h8.Score, b8.Score, i8.Score)
		}
	})
}

// TestCapTiesByEvidence: findings held at one cap are ordered by the
// evidence under it, not by address: two ICMP tunnels at high's ceiling
// (0.78) rank the bigger first, and so do their hosts, the same way on
// every run.
func TestCapTiesByEvidence(t *testing.T) {
	build := func() Result {
		n := icmpNet(false)
		// The smaller tunnel from the lower address: 40 KB no echo
		// explains against 400 KB.
		n.echo(t0.Add(5*time.Hour), hostAddr(2), ip("198.51.100.201"), 8, 40, 80, 40, 40*1000)
		n.echo(t0.Add(5*time.Hour), hostAddr(9), ip("198.51.100.200"), 8, 40, 80, 400, 400*1000)
		slices.SortStableFunc(n.recs, func(a, b *flow.Record) int { return a.First.Compare(b.First) })
		return n.model(inside10).Score()
	}
	res := build()
	rBig, big := find(res, KindICMP, hostAddr(9), ip("198.51.100.200"))
	rSmall, small := find(res, KindICMP, hostAddr(2), ip("198.51.100.201"))
	if big == nil || small == nil {
		t.Fatalf("tunnels %v %v", big, small)
	}
	if big.Score != uncorroborated || small.Score != uncorroborated {
		t.Fatalf("scores %.4f %.4f, want both held at %.2f", big.Score, small.Score, uncorroborated)
	}
	if rBig > rSmall {
		t.Errorf("the bigger tunnel ranks %d, the smaller %d", rBig, rSmall)
	}
	hBig, _ := hostRank(res, hostAddr(9))
	hSmall, _ := hostRank(res, hostAddr(2))
	if hBig == 0 || hBig > hSmall {
		t.Errorf("the bigger tunnel's host ranks %d, the smaller's %d", hBig, hSmall)
	}
	// A host before its own finding at the same score.
	for i, f := range res.Findings {
		if f.Kind == KindICMP && f.Src == hostAddr(9) {
			if i == 0 || res.Findings[i-1].Kind != KindHost || res.Findings[i-1].Src != hostAddr(9) {
				t.Errorf("finding before the tunnel: %+v", res.Findings[max(i-1, 0)])
			}
			break
		}
	}
	order := func(r Result) (s []string) {
		for _, f := range r.Findings {
			s = append(s, fmt.Sprintf("%s %s %s %d %.6f", f.Kind, f.Src, f.Dst, f.DstPort, f.Score))
		}
		return s
	}
	if !slices.Equal(order(build()), order(res)) {
		t.Error("ranking differs between runs")
	}
}
