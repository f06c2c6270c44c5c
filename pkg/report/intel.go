package report

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/internal/texttable"
	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/intel"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
)

// maxQueryHosts bounds the --host selectors of a match's query.
const maxQueryHosts = 8

// NewIndicatorMatchRecord makes m's record (type indicator-match of
// pkg/jsonl, the same in hunt's and report's output); id is its id there.
func NewIndicatorMatchRecord(id string, m *intel.Match) jsonl.IndicatorMatch {
	ind := m.Indicator
	j := jsonl.IndicatorMatch{Type: jsonl.TypeIndicatorMatch, ID: id, IndicatorID: ind.ID, IndicatorRef: ind.Ref(), Name: ind.Label(),
		Pattern: ind.Pattern, Source: ind.Source, Severity: m.Severity.String(), IndicatorTypes: jsonl.Strings(ind.Types),
		Values: jsonl.Strings(m.Values), Via: jsonl.Strings(m.Via), FirstSeen: jsonl.Time(m.First), LastSeen: jsonl.Time(m.Last),
		Connections: m.Connections, Bytes: m.Bytes, Hosts: []jsonl.IndicatorHost{}, Query: MatchQuery(m)}
	if ind.Confidence >= 0 {
		c := ind.Confidence
		j.Confidence = &c
	}
	for i := range m.Hosts {
		h := &m.Hosts[i]
		hj := jsonl.IndicatorHost{Host: h.Host.String(), FirstSeen: jsonl.Time(h.First), LastSeen: jsonl.Time(h.Last), Connections: h.Connections,
			Bytes: h.Bytes, Values: jsonl.Strings(h.Values), Via: jsonl.Strings(h.Via), Peers: []jsonl.IndicatorPeer{}, Query: HostMatchQuery(h)}
		for _, p := range h.Peers {
			pj := jsonl.IndicatorPeer{Addr: p.Addr.String(), Port: p.Port, Connections: p.Connections, Named: p.Named}
			if p.Proto != 0 {
				pj.Proto = hunt.ProtoName(p.Proto)
			}
			hj.Peers = append(hj.Peers, pj)
		}
		j.Hosts = append(j.Hosts, hj)
	}
	return j
}

func queryRange(first, last time.Time) string {
	return fmt.Sprintf("nwhealth query --store STORE --from %s --to %s", first.Add(-time.Second).UTC().Truncate(time.Second).Format(time.RFC3339),
		last.Add(2*time.Second).UTC().Truncate(time.Second).Format(time.RFC3339))
}

// MatchQuery pulls the packets of a match: the addresses the indicator
// names (or, when it named none, as for a domain only ever resolved, the
// inside hosts) over the time it fired.
func MatchQuery(m *intel.Match) string {
	var named, hosts []netip.Addr
	for _, h := range m.Hosts {
		hosts = append(hosts, h.Host)
		for _, p := range h.Peers {
			if p.Named && !slices.Contains(named, p.Addr) {
				named = append(named, p.Addr)
			}
		}
	}
	sel := named
	if len(sel) == 0 {
		sel = hosts
	}
	slices.SortFunc(sel, netip.Addr.Compare)
	q := queryRange(m.First, m.Last)
	for i, a := range sel {
		if i == maxQueryHosts {
			break
		}
		q += " --host " + a.String()
	}
	return q + " -w evidence.pcap"
}

// HostMatchQuery pulls one host's matching packets: with its busiest
// named peer (else its busiest peer), as an evidence window.
func HostMatchQuery(h *intel.HostMatch) string {
	var peer *intel.Peer
	for i := range h.Peers {
		if h.Peers[i].Named {
			peer = &h.Peers[i]
			break
		}
	}
	if peer == nil && len(h.Peers) > 0 {
		peer = &h.Peers[0]
	}
	if peer == nil {
		return queryRange(h.First, h.Last) + " --host " + h.Host.String() + " -w evidence.pcap"
	}
	w := Window{From: h.First.Add(-time.Second).Truncate(time.Second), To: h.Last.Add(2 * time.Second).Truncate(time.Second),
		Hosts: []netip.Addr{h.Host, peer.Addr}, Port: peer.Port, Proto: peer.Proto}
	return w.Query()
}

// WriteIntelTable writes the matched indicators for a terminal.
func WriteIntelTable(w io.Writer, ids []string, ms []intel.Match) {
	t := texttable.New(w, false, "#", "severity", "indicator", "matched", "via", "inside hosts", "conns", "bytes", "first", "last")
	for i := range ms {
		m := &ms[i]
		var hosts []string
		for _, h := range m.Hosts {
			hosts = append(hosts, h.Host.String())
		}
		t.Append(ids[i], m.Severity.String(), clip(m.Indicator.Label(), 48)+" ["+clip(m.Indicator.Ref(), 48)+"]",
			strings.Join(clipList(m.Values, 3), ", "), strings.Join(m.Via, ","), strings.Join(clipList(hosts, 4), ", "),
			fmt.Sprint(m.Connections), fmt.Sprint(m.Bytes), m.First.UTC().Format(time.RFC3339), m.Last.UTC().Format(time.RFC3339))
	}
	t.Render()
	for i := range ms {
		fmt.Fprintf(w, "  %s: %s\n", ids[i], MatchQuery(&ms[i]))
	}
}

// IntelSubjects are the matches as Recommend's subjects: one per inside
// host, its destination the busiest outside address the indicator names,
// so a match at high asks to block it as a beacon does.
func IntelSubjects(ms []intel.Match, ids []string, inv *assets.Inventory, internal []netip.Prefix) []Subject {
	if len(internal) == 0 {
		internal = hunt.DefaultInternal
	}
	isInternal := func(a netip.Addr) bool {
		return slices.ContainsFunc(internal, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) })
	}
	var out []Subject
	for i := range ms {
		m := &ms[i]
		for _, h := range m.Hosts {
			a, _ := inv.Lookup(h.Host)
			s := Subject{Host: h.Host, Asset: a, Severity: int(m.Severity), Score: severityScore(m.Severity),
				Indicator: m.Indicator.Label(), Evidence: []string{ids[i]}}
			for _, p := range h.Peers {
				if p.Named && !isInternal(p.Addr) && !s.Dest.IsValid() {
					s.Dest, s.DestPort = p.Addr, p.Port
				}
				s.Windows = append(s.Windows, Window{From: p.First.Add(-time.Second).Truncate(time.Second), To: p.Last.Add(2 * time.Second).Truncate(time.Second),
					Hosts: []netip.Addr{h.Host, p.Addr}, Port: p.Port, Proto: p.Proto, Evidence: []string{ids[i]}})
			}
			for _, v := range m.Values {
				if _, err := netip.ParseAddr(v); err != nil && !strings.Contains(v, "/") && !strings.Contains(v, "://") {
					s.DestName = v
					break
				}
			}
			out = append(out, s)
		}
	}
	return out
}

// severityScore stands for an indicator match in orderings by score: the
// middle of its severity's band.
func severityScore(s hunt.Severity) float64 { return 0.1 + 0.2*float64(s) }
