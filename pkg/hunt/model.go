// Package hunt ranks the channels and hosts of a network by how far they
// stand from the rest of its traffic: periodic check-ins to destinations
// that few other hosts use, and internal fan-out to administrative ports.
//
// The model takes flow records (from packets, a store or Zeek conn.log),
// keeps a compact event list per channel and relationship counts per
// destination, IP, name and network, and scores at the end (see
// docs/hunt.md for every feature and how a score is made).
package hunt

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

// Config says what is inside and what not to report.
type Config struct {
	// Internal names the inside networks (default: RFC 1918 and ULA).
	Internal []netip.Prefix
	// Allowed reports destinations (address or name) and hosts that are
	// known good: they still count in the population, but yield no finding.
	Allowed func(a netip.Addr, name string) bool
}

// DefaultInternal are the RFC 1918 and ULA ranges.
var DefaultInternal = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// maxEvents bounds the events kept per channel; beyond it every other
// event is dropped (and the stride doubles), which keeps the period.
const maxEvents = 1 << 16

type chanKey struct {
	src, dst netip.Addr
	port     uint16
	proto    uint8
}

type event struct {
	t            int64 // unix nanoseconds
	obytes, resp uint32
}

type channel struct {
	key          chanKey
	events       []event
	stride, skip int // decimation once maxEvents is reached
	conns        int
	failed       int // connection attempts without an answer or refused
	first, last  int64
	name         string
	nameSrc      flow.NameSource
}

type peer struct {
	first int64
	ports uint16 // admin-port bit set (adminPorts index)
	conns int
}

type host struct {
	addr        netip.Addr
	first, last int64
	conns       int
	dsts        map[netip.Addr]struct{}
	internal    map[netip.Addr]*peer
	failedDsts  map[uint32]int   // port -> distinct failed destinations (scan evidence)
	portDsts    map[uint32]int   // port -> distinct destinations
	seen        map[failKey]bool // (destination, port) -> failed at least once
}

type failKey struct {
	dst  netip.Addr
	port uint16
}

// adminPorts are remote-administration services used for lateral movement.
var adminPorts = [...]uint16{135, 139, 445, 3389, 5985, 5986, 22}

func adminIndex(p uint16) int {
	for i, a := range adminPorts {
		if a == p {
			return i
		}
	}
	return -1
}

// Model accumulates flow records. It is not safe for concurrent use.
type Model struct {
	cfg      Config
	channels map[chanKey]*channel
	hosts    map[netip.Addr]*host
	// dnsNames maps an address to the names DNS answers gave for it.
	dnsNames    map[netip.Addr]string
	first, last int64
	records     int
}

// New returns an empty model.
func New(cfg Config) *Model {
	if len(cfg.Internal) == 0 {
		cfg.Internal = DefaultInternal
	}
	return &Model{cfg: cfg, channels: map[chanKey]*channel{}, hosts: map[netip.Addr]*host{}, dnsNames: map[netip.Addr]string{}}
}

// Internal reports whether a is inside.
func (m *Model) Internal(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range m.cfg.Internal {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Records returns how many records were added.
func (m *Model) Records() int { return m.records }

// AddAll adds every record a sequence yields: the seam for any source of
// flow records (a store query, a file of records).
func (m *Model) AddAll(seq func(yield func(*flow.Record) bool)) {
	seq(func(r *flow.Record) bool {
		m.Add(r)
		return true
	})
}

// Add accounts one flow record. The model keeps nothing that points into r.
func (m *Model) Add(r *flow.Record) {
	if !r.Orig.IsValid() || !r.Resp.IsValid() {
		return
	}
	m.records++
	ts := r.First.UnixNano()
	if m.first == 0 || ts < m.first {
		m.first = ts
	}
	if end := r.Last.UnixNano(); end > m.last {
		m.last = end
	}
	src, dst := r.Orig.Unmap(), r.Resp.Unmap()
	if len(r.Answers) > 0 && r.Name != "" {
		for _, a := range r.Answers {
			if len(m.dnsNames) < 1<<20 {
				m.dnsNames[a.Unmap()] = r.Name
			}
		}
	}
	if !m.Internal(src) || !dst.IsGlobalUnicast() && !dst.IsPrivate() && !dst.IsLinkLocalUnicast() {
		return // inbound traffic, or multicast/broadcast: no channel of an inside host
	}
	if dst.Is4() && dst.As4()[3] == 255 {
		return // most likely a subnet broadcast
	}
	h := m.hosts[src]
	if h == nil {
		h = &host{addr: src, first: ts, dsts: map[netip.Addr]struct{}{}, internal: map[netip.Addr]*peer{},
			failedDsts: map[uint32]int{}, portDsts: map[uint32]int{}, seen: map[failKey]bool{}}
		m.hosts[src] = h
	}
	h.conns++
	h.first = min(h.first, ts)
	h.last = max(h.last, ts)
	h.dsts[dst] = struct{}{}
	failed := r.Proto == 6 && (r.RespPkts == 0 || r.State() == "REJ" || r.State() == "S0") ||
		r.Proto == 17 && r.RespPkts == 0 && r.OrigPkts > 0
	if m.Internal(dst) {
		p := h.internal[dst]
		if p == nil {
			p = &peer{first: ts}
			h.internal[dst] = p
		}
		p.first = min(p.first, ts)
		p.conns++
		if i := adminIndex(r.RespPort); i >= 0 && r.Proto == 6 {
			p.ports |= 1 << i
		}
	}
	if fk := (failKey{dst, r.RespPort}); len(h.seen) < 1<<18 {
		wasFailed, ok := h.seen[fk]
		if !ok {
			h.portDsts[uint32(r.RespPort)]++
		}
		if failed && !wasFailed {
			h.seen[fk] = true
			h.failedDsts[uint32(r.RespPort)]++
		} else if !ok {
			h.seen[fk] = false
		}
	}

	k := chanKey{src, dst, r.RespPort, r.Proto}
	if r.Proto == 1 || r.Proto == 58 {
		k.port = 0
	}
	c := m.channels[k]
	if c == nil {
		c = &channel{key: k, first: ts, stride: 1}
		m.channels[k] = c
	}
	c.conns++
	if failed {
		c.failed++
	}
	c.first = min(c.first, ts)
	c.last = max(c.last, ts)
	if r.Name != "" && r.NameSource >= c.nameSrc && r.Resp == dst {
		c.name, c.nameSrc = r.Name, r.NameSource
	}
	if c.skip > 0 {
		c.skip--
		return
	}
	c.events = append(c.events, event{t: ts, obytes: clamp32(r.OrigData), resp: clamp32(r.RespData)})
	c.skip = c.stride - 1
	if len(c.events) >= maxEvents {
		// Keep every other event: the period doubles in the samples, but
		// the analysis reads the times, which stay true.
		j := 0
		for i := 0; i < len(c.events); i += 2 {
			c.events[j] = c.events[i]
			j++
		}
		c.events = c.events[:j]
		c.stride *= 2
	}
}

func clamp32(v uint64) uint32 {
	if v > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(v)
}

// span returns the data's time span.
func (m *Model) span() time.Duration { return time.Duration(m.last - m.first) }

// Contact is one internal host's traffic to a destination.
type Contact struct {
	Src         netip.Addr
	Port        uint16
	Proto       uint8
	Connections int
	First, Last time.Time
}

// Contacts lists the inside hosts that reached dst, on every port, whether
// or not their channel scored: the report names every host talking to a
// controller, also one that checked in only once. Ordered by source, port.
func (m *Model) Contacts(dst netip.Addr) []Contact {
	dst = dst.Unmap()
	var out []Contact
	for k, c := range m.channels {
		if k.dst != dst {
			continue
		}
		out = append(out, Contact{Src: k.src, Port: k.port, Proto: k.proto, Connections: c.conns,
			First: time.Unix(0, c.first).UTC(), Last: time.Unix(0, c.last).UTC()})
	}
	slices.SortFunc(out, func(a, b Contact) int {
		return cmp.Or(a.Src.Compare(b.Src), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
	return out
}
