// Package blocklist turns what an incident asks to block (the "block
// destination" actions and the matched shared indicators) into lists that
// proxies and firewalls load: an nftables table with IPv4 and IPv6 sets, a
// Squid ACL, a plain list. Every element carries the evidence behind it.
// Nothing is applied unless the caller asks (Apply).
package blocklist

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/intel"
	"github.com/nwhealth/nwhealth/pkg/report"
)

// Entry is one thing to block: an address or network, or a domain name
// ("*.example.com" for the domain and every name under it).
type Entry struct {
	Prefix   netip.Prefix // valid for an address or network
	Name     string       // for a domain
	Evidence []string     // why: finding and indicator ids with a few words
}

// Value is the entry as written in a plain list.
func (e *Entry) Value() string {
	if e.Name != "" {
		return e.Name
	}
	if e.Prefix.IsSingleIP() {
		return e.Prefix.Addr().String()
	}
	return e.Prefix.String()
}

// List gathers entries, each once, never one inside the networks we
// protect (blocking our own hosts is not what an indicator asks).
type List struct {
	internal []netip.Prefix
	entries  map[string]*Entry
	// Refused names what was not listed because it lies inside our
	// networks.
	Refused []string
}

// New starts a list; internal names the inside networks (default
// hunt.DefaultInternal).
func New(internal []netip.Prefix) *List {
	if len(internal) == 0 {
		internal = hunt.DefaultInternal
	}
	return &List{internal: internal, entries: map[string]*Entry{}}
}

func (l *List) overlapsInside(p netip.Prefix) bool {
	return slices.ContainsFunc(l.internal, func(in netip.Prefix) bool { return in.Overlaps(p) })
}

// AddPrefix lists an address or network.
func (l *List) AddPrefix(p netip.Prefix, evidence string) {
	if !p.IsValid() {
		return
	}
	p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-max(0, p.Addr().BitLen()-p.Addr().Unmap().BitLen())).Masked()
	if l.overlapsInside(p) {
		l.Refused = append(l.Refused, fmt.Sprintf("%s (%s): inside our networks", p, evidence))
		return
	}
	l.add(p.String(), Entry{Prefix: p}, evidence)
}

// AddName lists a domain ("*.domain" for it and its subdomains). Names
// come from packets (DNS, SNI, Host) and from feeds, and go into
// firewall and proxy configuration as they are: anything but a host name
// (a newline would start a line of nft or squid configuration of the
// name's choosing) is refused and named.
func (l *List) AddName(n, evidence string) {
	n = intel.NormalizeName(n)
	if !HostName(strings.TrimPrefix(n, "*.")) {
		if n != "" {
			l.Refused = append(l.Refused, fmt.Sprintf("%q (%s): not a host name", clipName(n), evidence))
		}
		return
	}
	l.add(n, Entry{Name: n}, evidence)
}

// HostName reports whether s is a lower-case host name a list may carry
// (intel.HostName: the same rule as the names read from feeds).
func HostName(s string) bool { return intel.HostName(s) }

// clipName keeps a refused name's message short.
func clipName(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func (l *List) add(key string, e Entry, evidence string) {
	old := l.entries[key]
	if old == nil {
		old = &e
		l.entries[key] = old
	}
	if evidence != "" && !slices.Contains(old.Evidence, evidence) {
		old.Evidence = append(old.Evidence, evidence)
	}
}

// AddIncident lists the destinations of the incident's block actions
// (each controller's address and names) and its matched indicators.
func (l *List) AddIncident(inc *report.Incident) {
	for _, a := range inc.Actions {
		if a.Kind != report.Block {
			continue
		}
		for _, c := range inc.Controllers {
			if c.Label() != a.Target {
				continue
			}
			ev := fmt.Sprintf("%s: block for %s", strings.Join(clip(c.Findings, 4), " "), a.Host)
			l.AddPrefix(netip.PrefixFrom(c.Addr, c.Addr.BitLen()), ev)
			for _, n := range c.Names {
				l.AddName(n, ev)
			}
		}
	}
	for i := range inc.Intel {
		l.AddMatch(inc.Intel[i].ID, &inc.Intel[i].Match)
	}
}

// AddSubjects lists the destinations hunt's subjects ask to block (a high
// beacon or indicator match).
func (l *List) AddSubjects(subjects []report.Subject) {
	for _, s := range subjects {
		for _, a := range report.Recommend([]report.Subject{s}) {
			if a.Kind != report.Block || !s.Dest.IsValid() {
				continue
			}
			ev := fmt.Sprintf("block for %s (%s)", s.Host, a.Escalation)
			l.AddPrefix(netip.PrefixFrom(s.Dest, s.Dest.BitLen()), ev)
			if s.DestName != "" {
				l.AddName(s.DestName, ev)
			}
		}
	}
}

// AddMatch lists the values a matched indicator named (addresses,
// networks, domains; URLs are for a proxy's URL filter, not these lists).
func (l *List) AddMatch(id string, m *intel.Match) {
	ev := fmt.Sprintf("%s indicator %s", id, m.Indicator.Ref())
	for _, v := range m.Values {
		switch {
		case strings.Contains(v, "://"):
		case strings.Contains(v, "/"):
			if p, err := netip.ParsePrefix(v); err == nil {
				l.AddPrefix(p, ev)
			}
		default:
			if a, err := netip.ParseAddr(v); err == nil {
				l.AddPrefix(netip.PrefixFrom(a, a.BitLen()), ev)
			} else {
				l.AddName(v, ev)
			}
		}
	}
	// A plain list's *.domain entry matched a name under it: block the
	// whole domain, as the entry says.
	if ind := m.Indicator; !ind.STIX() && strings.HasPrefix(ind.Name, "*.") {
		l.AddName(ind.Name, ev)
	}
}

// Entries returns the entries: IPv4, then IPv6, then names, each sorted.
// An address or network inside a listed network is folded into it (its
// evidence kept), and so is a name under a listed *.domain: nftables
// refuses overlapping intervals and Squid warns about them.
func (l *List) Entries() []Entry {
	var nets, names []*Entry
	for _, e := range l.entries {
		if e.Name != "" {
			names = append(names, e)
		} else {
			nets = append(nets, e)
		}
	}
	// Widest first, so a network absorbs what lies inside it.
	slices.SortFunc(nets, func(a, b *Entry) int {
		return cmp.Or(cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()), a.Prefix.Addr().Compare(b.Prefix.Addr()))
	})
	var keptNets []*Entry
	for _, e := range nets {
		if i := slices.IndexFunc(keptNets, func(k *Entry) bool { return k.Prefix.Overlaps(e.Prefix) }); i >= 0 {
			keptNets[i].Evidence = union(keptNets[i].Evidence, e.Evidence)
			continue
		}
		keptNets = append(keptNets, e)
	}
	// Wildcards first, so each absorbs the names under it.
	wild := func(e *Entry) int {
		if strings.HasPrefix(e.Name, "*.") {
			return 0
		}
		return 1
	}
	slices.SortFunc(names, func(a, b *Entry) int {
		return cmp.Or(cmp.Compare(wild(a), wild(b)), cmp.Compare(len(a.Name), len(b.Name)), cmp.Compare(a.Name, b.Name))
	})
	var keptNames []*Entry
	for _, e := range names {
		bare := strings.TrimPrefix(e.Name, "*.")
		if i := slices.IndexFunc(keptNames, func(k *Entry) bool {
			return k != e && strings.HasPrefix(k.Name, "*.") && (bare == k.Name[2:] || strings.HasSuffix(bare, k.Name[1:]))
		}); i >= 0 {
			keptNames[i].Evidence = union(keptNames[i].Evidence, e.Evidence)
			continue
		}
		keptNames = append(keptNames, e)
	}
	out := make([]Entry, 0, len(keptNets)+len(keptNames))
	for _, e := range keptNets {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(cmp.Compare(a.Prefix.Addr().BitLen(), b.Prefix.Addr().BitLen()), a.Prefix.Addr().Compare(b.Prefix.Addr()))
	})
	slices.SortFunc(keptNames, func(a, b *Entry) int { return cmp.Compare(a.Name, b.Name) })
	for _, e := range keptNames {
		out = append(out, *e)
	}
	return out
}

func union(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	return a
}

func clip(list []string, n int) []string {
	if len(list) <= n {
		return list
	}
	return list[:n]
}
