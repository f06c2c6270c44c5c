package flow

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// addAhead adds frames in groups of n as the store writer's lookahead
// does: every frame of a group parsed and its key computed (Look), the
// group's slots read (Touch), then each packet added with its key
// (AddAheadNanos).
func addAhead(b *Builder, frames [][]byte, ts []time.Time, n int) []Handle {
	var hs []Handle
	ps := make([]pkthdr.Packet, n)
	as := make([]Ahead, n)
	for g := 0; g < len(frames); g += n {
		m := min(n, len(frames)-g)
		for j := range m {
			pkthdr.Parse(pkthdr.LinkEthernet, frames[g+j], &ps[j])
			if ps[j].IPVersion != 0 {
				as[j].Look(&ps[j], frames[g+j])
			}
		}
		b.Touch(as[:m])
		for j := range m {
			f := frames[g+j]
			hs = append(hs, b.AddAheadNanos(ts[g+j].UnixNano(), &ps[j], f, len(f), &as[j]))
		}
	}
	return hs
}

// TestLookAsAdd: a packet's key from Look, handed over with AddAheadNanos,
// is the one AddParsedNanos computes itself: the same handles, records
// and counts, for mixed traffic (DNS, TCP over IPv6 with a VLAN tag,
// IPv4-mapped IPv6, ICMP requests and replies, a flood of one-packet
// flows) through tables with room and tables full (held first packets),
// and with groups of 1, 3 and 16.
func TestLookAsAdd(t *testing.T) {
	frames, ts := mixedFrames(t)
	// ICMP errors, ICMPv6 and a frame without ports (a later fragment)
	// besides: keys whose ports are not the packet's.
	extra := []frameSpec{
		{src: addr("192.0.2.8"), dst: addr("10.0.0.1"), proto: 1, icmpType: 3},
		{src: addr("2001:db8::1"), dst: addr("2001:db8::2"), proto: 58, icmpType: 128},
		{src: addr("2001:db8::2"), dst: addr("2001:db8::1"), proto: 58, icmpType: 129},
		{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 47},
	}
	for i, s := range extra {
		frames = append(frames, frame(s))
		ts = append(ts, ts[len(ts)-1].Add(time.Duration(i+1)*time.Millisecond))
	}
	var p pkthdr.Packet
	for i, f := range frames {
		if !pkthdr.Parse(pkthdr.LinkEthernet, f, &p) {
			t.Fatalf("frame %d: no IP", i)
		}
	}
	for _, maxFlows := range []int{1 << 16, 64, 1} {
		for _, n := range []int{1, 3, 16} {
			want := NewBuilder(Options{MaxFlows: maxFlows, DropSingles: true, Encoded: true})
			var wantH []Handle
			for i, f := range frames {
				pkthdr.Parse(pkthdr.LinkEthernet, f, &p)
				wantH = append(wantH, want.AddParsedNanos(ts[i].UnixNano(), &p, f, len(f)))
			}
			got := NewBuilder(Options{MaxFlows: maxFlows, DropSingles: true, Encoded: true})
			gotH := addAhead(got, frames, ts, n)
			for i := range wantH {
				if gotH[i].ID != wantH[i].ID || (gotH[i].Mark == nil) != (wantH[i].Mark == nil) {
					t.Fatalf("table of %d, groups of %d: packet %d handle %d, want %d", maxFlows, n, i, gotH[i].ID, wantH[i].ID)
				}
			}
			var fw, gw FileWriter
			want.FlushInto(&fw)
			got.FlushInto(&gw)
			if ws, gs := want.Stats(), got.Stats(); gs != ws || ws.Flows == 0 {
				t.Errorf("table of %d, groups of %d: stats %+v, want %+v", maxFlows, n, gs, ws)
			}
			if !reflect.DeepEqual(gw.Records(), fw.Records()) || fw.Len() == 0 && maxFlows > 1 {
				t.Errorf("table of %d, groups of %d: %d records differ from %d", maxFlows, n, gw.Len(), fw.Len())
			}
		}
	}
}

// TestLookKeys: Look gives both directions of a flow one key and hash,
// and packets of different flows different keys, ICMP replies their
// requests' and errors their own.
func TestLookKeys(t *testing.T) {
	look := func(s frameSpec) Ahead {
		f := frame(s)
		var p pkthdr.Packet
		if !pkthdr.Parse(pkthdr.LinkEthernet, f, &p) {
			t.Fatalf("%+v: no IP", s)
		}
		var a Ahead
		a.Look(&p, f)
		return a
	}
	c, s := addr("10.0.0.1"), addr("192.0.2.1")
	for _, tc := range []struct {
		name string
		x, y frameSpec
		same bool
	}{
		{"TCP both ways", frameSpec{src: c, dst: s, sport: 40000, dport: 443, proto: 6}, frameSpec{src: s, dst: c, sport: 443, dport: 40000, proto: 6}, true},
		{"UDP other port", frameSpec{src: c, dst: s, sport: 40000, dport: 53, proto: 17}, frameSpec{src: c, dst: s, sport: 40001, dport: 53, proto: 17}, false},
		{"TCP and UDP", frameSpec{src: c, dst: s, sport: 40000, dport: 53, proto: 6}, frameSpec{src: c, dst: s, sport: 40000, dport: 53, proto: 17}, false},
		{"VLANs", frameSpec{src: c, dst: s, sport: 1, dport: 2, proto: 17, vlan: 10}, frameSpec{src: c, dst: s, sport: 1, dport: 2, proto: 17, vlan: 11}, false},
		{"echo and reply", frameSpec{src: c, dst: s, proto: 1, icmpType: 8}, frameSpec{src: s, dst: c, proto: 1, icmpType: 0}, true},
		{"echo and unreachable", frameSpec{src: c, dst: s, proto: 1, icmpType: 8}, frameSpec{src: s, dst: c, proto: 1, icmpType: 3}, false},
		{"IPv4 and mapped IPv6", frameSpec{src: c, dst: s, sport: 7, dport: 7, proto: 17}, frameSpec{src: netip.AddrFrom16(c.As16()), dst: netip.AddrFrom16(s.As16()), sport: 7, dport: 7, proto: 17}, false},
	} {
		a, b := look(tc.x), look(tc.y)
		if same := a.k == b.k && a.h == b.h; same != tc.same {
			t.Errorf("%s: same key %v, want %v", tc.name, same, tc.same)
		}
		if tc.same && a.fromA == b.fromA {
			t.Errorf("%s: both directions from the same side", tc.name)
		}
	}
}
