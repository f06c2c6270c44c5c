package hunt

import (
	"math"
	"math/rand"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

// echo adds one ICMP exchange of src with dst: reqs requests of reqSize
// payload bytes each and reps replies carrying repData bytes in all,
// opened by a packet of ICMP type typ (8: echo request).
func (n *net) echo(ts time.Time, src, dst netip.Addr, typ uint16, reqs, reqSize, reps, repData uint64) *flow.Record {
	r := &flow.Record{First: ts, Last: ts.Add(time.Duration(max(reqs, 1)) * 10 * time.Millisecond), Proto: 1, Orig: src, Resp: dst,
		OrigPort: typ, OrigPkts: reqs, RespPkts: reps, OrigData: reqs * reqSize, RespData: repData,
		OrigBytes: reqs * (reqSize + 20), RespBytes: repData + 20*reps}
	n.recs = append(n.recs, r)
	return r
}

// icmpNet is 30 office hosts that browse and ping a fleet monitoring
// target, with the ICMP an ordinary network sends and, when c2 is set,
// an icmpsh-style poller and a ptunnel-style tunnel.
func icmpNet(c2 bool) *net {
	n := &net{rng: rand.New(rand.NewSource(3))}
	day := 12 * time.Hour
	for i := range 30 {
		n.browse(hostAddr(i), 30, day)
		// The fleet's monitoring target, a ping a minute (one flow each).
		for t := time.Duration(n.rng.Int63n(int64(time.Minute))); t < day; t += time.Minute {
			n.echo(t0.Add(t), hostAddr(i), ip("198.51.100.8"), 8, 1, 64, 1, 64)
		}
	}
	// One host's monitor of an address nobody else pings, every 30 s,
	// 5% lost: a schedule, a rare address, replies that echo.
	for t := time.Duration(0); t < day; t += 30 * time.Second {
		reps := uint64(1)
		if n.rng.Float64() < 0.05 {
			reps = 0
		}
		n.echo(t0.Add(t), hostAddr(3), ip("203.0.113.9"), 8, 1, 64, reps, 64*reps)
	}
	// Path-MTU probes (1480 bytes) and a size sweep: large and varying,
	// always echoed.
	for i := range 200 {
		t := t0.Add(time.Duration(i) * 3 * time.Minute)
		n.echo(t, hostAddr(4), ip("203.0.113.11"), 8, 1, 1480, 1, 1480)
		size := uint64(64 + 7*i)
		n.echo(t.Add(time.Second), hostAddr(5), ip("203.0.113.12"), 8, 1, size, 1, size)
	}
	// Errors from an inside host (port unreachable to an outside
	// sender) and an outside host pinging inside with odd replies.
	for i := range 50 {
		t := t0.Add(time.Duration(i) * 7 * time.Minute)
		n.echo(t, hostAddr(10), ip("203.0.113.77"), 3, 1, 90, 0, 0)
		n.echo(t, ip("203.0.113.50"), hostAddr(11), 8, 3, 64, 3, 3000)
	}
	if c2 {
		// icmpsh-style: a poll every 5 s ±25% (8-byte requests, empty
		// replies), on 1 in 60 a command (40 bytes) whose output comes
		// back in two 512-byte requests. Each poll is its own burst in
		// 10-minute flows.
		for start := time.Hour; start < 3*time.Hour; start += 10 * time.Minute {
			r := &flow.Record{First: t0.Add(start), Proto: 1, Orig: hostAddr(7), Resp: ip("203.0.113.66"), OrigPort: 8}
			for t := time.Duration(0); t < 10*time.Minute; t += time.Duration(float64(5*time.Second) * (1 + 0.25*(2*n.rng.Float64()-1))) {
				r.OrigPkts++
				r.RespPkts++
				r.OrigData += 8
				r.RespData += 8
				if n.rng.Intn(60) == 0 {
					r.RespData += 40
					r.OrigPkts += 2
					r.RespPkts += 2
					r.OrigData += 2 * (8 + 512)
					r.RespData += 2 * 8
				}
				r.Bursts.At = append(r.Bursts.At, uint32(t/time.Millisecond))
				r.Last = t0.Add(start + t)
			}
			r.Bursts.N = uint32(len(r.Bursts.At))
			if len(r.Bursts.At) > flow.MaxBursts {
				r.Bursts.At = append(r.Bursts.At[:flow.MaxBursts/2], r.Bursts.At[len(r.Bursts.At)-flow.MaxBursts/2:]...)
				r.Bursts.Head = flow.MaxBursts / 2
			} else {
				r.Bursts.Head = uint8(len(r.Bursts.At))
			}
			r.OrigBytes, r.RespBytes = r.OrigData+20*r.OrigPkts, r.RespData+20*r.RespPkts
			n.recs = append(n.recs, r)
		}
		// A ptunnel-style tunnel: one flow, few requests, the proxy's
		// replies carrying a download.
		n.echo(t0.Add(5*time.Hour), hostAddr(9), ip("198.51.100.200"), 8, 40, 80, 400, 400*1000)
	}
	slices.SortStableFunc(n.recs, func(a, b *flow.Record) int { return a.First.Compare(b.First) })
	return n
}

func TestICMPFindings(t *testing.T) {
	inside := Config{Internal: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	res := icmpNet(true).model(inside).Score()
	for _, f := range res.Findings {
		if f.Proto == 1 && f.Kind == KindChannel {
			t.Errorf("an ICMP beacon channel: %+v", f)
		}
	}
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
		min, max Severity
		rankMax  int // among ICMP findings; 0: any
		attack   []string
	}{
		{"tunnel", hostAddr(9), ip("198.51.100.200"), High, High, 2, []string{"T1095", "T1572"}},
		{"icmpsh-like poller", hostAddr(7), ip("203.0.113.66"), Medium, High, 2, []string{"T1095"}},
		{"fleet monitoring target", hostAddr(0), ip("198.51.100.8"), Info, Low, 0, nil},
		{"one host's monitor", hostAddr(3), ip("203.0.113.9"), Info, Low, 0, nil},
		{"path-MTU probes", hostAddr(4), ip("203.0.113.11"), Info, Low, 0, nil},
		{"size sweep", hostAddr(5), ip("203.0.113.12"), Info, Low, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rank, f := find(res, KindICMP, tc.src, tc.dst)
			if f == nil {
				if tc.min > Info {
					t.Fatalf("no finding")
				}
				return
			}
			t.Logf("rank %d %.2f %s %v %v", rank, f.Score, f.Severity, f.Attack, f.Reasons)
			if f.Severity < tc.min || f.Severity > tc.max {
				t.Errorf("severity %s, want %s to %s", f.Severity, tc.min, tc.max)
			}
			if tc.rankMax > 0 && rank > tc.rankMax {
				t.Errorf("rank %d, want at most %d", rank, tc.rankMax)
			}
			if tc.attack != nil && !slices.Equal(f.Attack, tc.attack) {
				t.Errorf("attack %v, want %v", f.Attack, tc.attack)
			}
			if f.ICMP == nil || f.Direction != Outbound || f.Popularity < 1 || f.Hosts != res.Hosts {
				t.Errorf("finding %+v", f)
			}
		})
	}
	for _, f := range res.Findings {
		if f.Kind == KindICMP && (f.Dst == ip("203.0.113.77") || f.Src == ip("203.0.113.50") || f.Dst == hostAddr(11)) {
			t.Errorf("an ICMP error or an inbound ping made a finding: %+v", f)
		}
	}
	if _, f := find(res, KindICMP, hostAddr(7), ip("203.0.113.66")); f != nil && (!f.Beacon || f.PeriodSec < 4 || f.PeriodSec > 6) {
		t.Errorf("poller: beacon %v period %.1f s, want a beacon every ~5 s", f.Beacon, f.PeriodSec)
	}

	// Without the implants nothing ICMP goes above low.
	for _, f := range icmpNet(false).model(inside).Score().Findings {
		if f.Kind == KindICMP && f.Severity > Low {
			t.Errorf("benign ICMP finding %s: %+v", f.Severity, f)
		}
	}
}

// TestICMPHeaderCountCancels: a source that counts the 8-byte ICMP header
// in the payload (the flow files) and one that does not measure the same
// unechoed bytes: the features hold from Zeek's conn.log as from packets.
func TestICMPHeaderCountCancels(t *testing.T) {
	recs := []*flow.Record{
		{Proto: 1, OrigPort: 8, OrigPkts: 10, RespPkts: 93, OrigData: 10 * 80, RespData: 77000},
		{Proto: 1, OrigPort: 8, OrigPkts: 45, RespPkts: 43, OrigData: 45 * 64, RespData: 43 * 64},
		{Proto: 58, OrigPort: 128, OrigPkts: 120, RespPkts: 120, OrigData: 6000, RespData: 90000},
	}
	for i, r := range recs {
		var got [2]ICMPEvidence
		for j, hdr := range []uint64{0, 8} {
			m := New(Config{})
			c := *r
			c.Orig, c.Resp = ip("10.0.0.5"), ip("203.0.113.66")
			if c.Proto == 58 {
				c.Orig, c.Resp = ip("fd00::5"), ip("2001:db8::66")
			}
			c.First, c.Last = t0, t0.Add(time.Minute)
			c.OrigData -= hdr * c.OrigPkts
			c.RespData -= hdr * c.RespPkts
			m.Add(&c)
			p := m.icmp[icmpKey{c.Orig, c.Resp}]
			if p == nil {
				t.Fatalf("record %d: not an ICMP candidate", i)
			}
			got[j] = m.icmpEvidence(p)
		}
		if got[0].Unechoed != got[1].Unechoed || got[0].Extra != got[1].Extra {
			t.Errorf("record %d: unechoed %d / %d, extra %d / %d", i, got[0].Unechoed, got[1].Unechoed, got[0].Extra, got[1].Extra)
		}
	}
}

// FuzzICMPEvidence: any counters a record or a conn.log row may claim
// give evidence between 0 and 1 and no panic.
func FuzzICMPEvidence(f *testing.F) {
	f.Add(uint64(10), uint64(93), uint64(800), uint64(77000), uint8(1), uint16(8))
	f.Add(uint64(0), uint64(5), uint64(0), uint64(500), uint8(58), uint16(128))
	f.Add(uint64(1<<63), uint64(1), uint64(1<<63), uint64(0), uint8(1), uint16(8))
	f.Fuzz(func(t *testing.T, op, rp, od, rd uint64, proto uint8, typ uint16) {
		m := New(Config{})
		for i := range 6 {
			r := &flow.Record{First: t0.Add(time.Duration(i) * time.Minute), Last: t0.Add(time.Duration(i)*time.Minute + time.Second),
				Proto: proto, Orig: ip("10.0.0.5"), Resp: ip("203.0.113.66"), OrigPort: typ,
				OrigPkts: op, RespPkts: rp, OrigData: od, RespData: rd}
			m.Add(r)
		}
		for _, f := range m.Score().Findings {
			e := f.ICMP
			if f.Kind != KindICMP {
				continue
			}
			for _, v := range []float64{e.Share, e.Payload, e.Tunnel, e.Schedule, f.Score} {
				if math.IsNaN(v) || v < 0 || v > 1 {
					t.Fatalf("evidence out of range: %+v score %v", e, f.Score)
				}
			}
		}
	})
}
