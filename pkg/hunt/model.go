// Package hunt ranks the channels and hosts of a network by how far they
// stand from the rest of its traffic: periodic check-ins to destinations
// that few other hosts use (outbound, through a proxy, or from outside to
// an inside host), and internal fan-out to administrative ports.
//
// The model takes flow records (from packets, a store or Zeek logs),
// keeps a compact event list per channel (connection starts and the
// bursts inside each connection) and relationship counts per destination,
// IP, name and network, and scores at the end (see docs/hunt.md for every
// feature and how a score is made).
package hunt

import (
	"cmp"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
	"strings"
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
	// ExternalDNS says DNS queries come through AddDNS (Zeek's dns.log,
	// the flow database), not from the names of the records Add takes.
	ExternalDNS bool
}

// DefaultInternal are the RFC 1918 and ULA ranges.
var DefaultInternal = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// Per-channel storage is bounded: the first maxRuns*runLen events are kept
// as they come; after that, each further run of runLen consecutive events
// replaces a stored run with the reservoir probability, so a channel holds
// a uniform sample of runs. Periodicity is measured on intervals inside
// runs, which stay true however long the channel (keeping every k-th event
// instead would turn a random series into a regular-looking one). Memory
// thus grows with channels, at most 32 KiB each, not with connections.
const (
	runLen  = 64
	maxRuns = 32
)

type chanKey struct {
	src, dst netip.Addr
	port     uint16
	proto    uint8
}

// proxyKey is a channel through a forward proxy: the client, and the host
// (a name or an address literal) and port it asked the proxy for.
type proxyKey struct {
	src  netip.Addr
	host string
	port uint16
}

// Direction says which side of a channel is inside.
type Direction uint8

// Directions: an inside host opening to an outside address, an outside
// address opening to an inside host, or inside to inside.
const (
	Outbound Direction = iota
	Inbound
	Internal
)

func (d Direction) String() string { return [...]string{"outbound", "inbound", "internal"}[d] }

// event is one check-in: a connection's start, or a burst of payload
// inside a connection after an idle gap (flow.Bursts). Bursts carry no
// sizes: unsized marks them in obytes' top bit.
type event struct {
	t            int64 // unix nanoseconds
	obytes, resp uint32
}

const unsized = 1 << 31

func (e event) sized() bool { return e.obytes&unsized == 0 }

// maxHoles bounds the holes kept per channel: stretches of a connection
// whose bursts were dropped from its record (only the first and last 32
// are kept), over which no interval may be measured.
const maxHoles = 16

type channel struct {
	key         chanKey
	dir         Direction
	events      []event // up to maxRuns*runLen; run i is events[i*runLen:(i+1)*runLen] once sampling
	cur         []event // the run being filled once events is full
	runsSeen    int     // complete runs offered to the reservoir (0 while every event is kept)
	conns       int
	bursts      int // check-ins inside connections (after their first exchange), all of them
	failed      int // connection attempts without an answer or refused
	first, last int64
	hours       uint32 // hour-of-day (UTC) bitmap of check-ins
	name        string
	nameSrc     flow.NameSource
	holes       [][2]int64
	// cert is the first certificate no public CA vouched for (self-signed,
	// or its issuer not sent) that the destination presented.
	cert flow.TLSCert
	// Proxied channels: the proxy, and the host asked for.
	via   netip.Addr
	phost string
	rnd   uint64 // reservoir sampling state, seeded from the channel (seed)
}

// sampled reports whether the channel holds a sample rather than every event.
func (c *channel) sampled() bool { return c.runsSeen > 0 }

type peer struct {
	first int64
	ports uint16 // admin-port bit set (adminPorts index)
	conns int
}

type host struct {
	addr        netip.Addr
	first, last int64
	conns       int
	dsts        map[netip.Addr]int32 // destination -> last hour (unix hours) it was reached
	// hourDsts counts, per hour of day (UTC), the destinations reached in
	// each clock hour: a person's day shows as many destinations by day and
	// few at night, a server's as a flat profile.
	hourDsts   [24]uint32
	internal   map[netip.Addr]*peer
	proxied    map[string]int32 // destination asked of a proxy -> last hour (unix hours) it was
	failedDsts map[uint32]int   // port -> distinct failed destinations (scan evidence)
	portDsts   map[uint32]int   // port -> distinct destinations
	seen       map[failKey]bool // (destination, port) -> failed at least once
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
	proxied  map[proxyKey]*channel
	hosts    map[netip.Addr]*host
	// dnsNames maps an address to the names DNS answers gave for it, and
	// nameAddrs a name to an address (a proxied channel's destination).
	dnsNames  map[netip.Addr]string
	nameAddrs map[string]netip.Addr
	// Forward proxies seen: the ports they were asked on, and the hosts
	// asked of each (their own connections to those are relayed).
	proxies map[netip.Addr]*proxyInfo
	// Inbound relationships: distinct inside hosts each outside address
	// (and its /24 or /48) opened connections to.
	inPairs      map[[2]netip.Addr]struct{}
	inTargets    map[netip.Addr]int
	inNetPairs   map[netPair]struct{}
	inNetTargets map[netip.Prefix]int
	first, last  int64
	records      int
	// DNS per (inside host, registered domain), and the population's DNS
	// flows (log2 histograms of client datagrams and bytes).
	dns          map[dnsKey]*dnsDomain
	dnsQT        map[dnsKey]*[qtOther + 1]int // query types from logs (AddDNSQueryType)
	dnsFlowPkts  [65]int
	dnsFlowBytes [65]int
	// ICMP echo per (inside host, outside address); icmpApart when the
	// records come through AddICMPRecord (TakeICMPApart).
	icmp      map[icmpKey]*icmpPair
	icmpApart bool
}

type netPair struct {
	net netip.Prefix
	dst netip.Addr
}

type proxyInfo struct {
	ports   map[uint16]bool
	hosts   map[string]bool // bounded by maxProxyHosts
	clients map[netip.Addr]bool
}

// Bounds of the relationship maps: past them new entries are not kept
// (counts stay what they were), so memory does not follow a scan.
const (
	maxPairs      = 1 << 20
	maxProxyHosts = 1 << 16
	maxNames      = 1 << 20
)

// New returns an empty model.
func New(cfg Config) *Model {
	if len(cfg.Internal) == 0 {
		cfg.Internal = DefaultInternal
	}
	return &Model{cfg: cfg, channels: map[chanKey]*channel{}, proxied: map[proxyKey]*channel{}, hosts: map[netip.Addr]*host{},
		dnsNames: map[netip.Addr]string{}, nameAddrs: map[string]netip.Addr{}, proxies: map[netip.Addr]*proxyInfo{},
		inPairs: map[[2]netip.Addr]struct{}{}, inTargets: map[netip.Addr]int{},
		inNetPairs: map[netPair]struct{}{}, inNetTargets: map[netip.Prefix]int{}}
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

// AddAnswer says that DNS answered a for name, and AddNameAddr that a
// was the first answer for name, as the latest record with those answers
// would: for a source that hands records over grouped by address pair
// rather than in time order (the flow database), so the last answer wins
// as it does record by record.
func (m *Model) AddAnswer(a netip.Addr, name string) {
	if len(m.dnsNames) < maxNames {
		m.dnsNames[a.Unmap()] = name
	}
}

// AddNameAddr: see AddAnswer.
func (m *Model) AddNameAddr(name string, a netip.Addr) {
	if len(m.nameAddrs) < maxNames {
		m.nameAddrs[name] = a.Unmap()
	}
}

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
			if len(m.dnsNames) < maxNames {
				m.dnsNames[a.Unmap()] = r.Name
			}
		}
		if len(m.nameAddrs) < maxNames {
			m.nameAddrs[r.Name] = r.Answers[0].Unmap()
		}
	}
	if !m.cfg.ExternalDNS {
		if q, ok := m.dnsQueryOf(r, src, dst, ts); ok {
			m.AddDNS(q)
		}
	}
	if !m.icmpApart && (r.Proto == 1 || r.Proto == 58) {
		m.addICMP(r, src, dst)
	}
	if !dst.IsGlobalUnicast() && !dst.IsPrivate() && !dst.IsLinkLocalUnicast() {
		return // multicast/broadcast: no channel
	}
	if dst.Is4() && dst.As4()[3] == 255 {
		return // most likely a subnet broadcast
	}
	switch {
	case m.Internal(src):
		m.addOutbound(r, src, dst, ts)
	case m.Internal(dst) && src.IsGlobalUnicast() && !src.IsLinkLocalUnicast():
		// From outside (a link-local source is on the link, not outside).
		m.addInbound(r, src, dst, ts)
	}
}

// failedConn: an attempt without an answer, or refused.
func failedConn(r *flow.Record) bool {
	return r.Proto == 6 && (r.RespPkts == 0 || r.State() == "REJ" || r.State() == "S0") ||
		r.Proto == 17 && r.RespPkts == 0 && r.OrigPkts > 0
}

// addOutbound accounts a record opened by an inside host.
func (m *Model) addOutbound(r *flow.Record, src, dst netip.Addr, ts int64) {
	h := m.hosts[src]
	if h == nil {
		h = &host{addr: src, first: ts, dsts: map[netip.Addr]int32{}, internal: map[netip.Addr]*peer{},
			failedDsts: map[uint32]int{}, portDsts: map[uint32]int{}, seen: map[failKey]bool{}}
		m.hosts[src] = h
	}
	h.conns++
	h.first = min(h.first, ts)
	h.last = max(h.last, ts)
	hr := int32(ts / int64(time.Hour))
	failed := failedConn(r)

	if r.ProxyDest != "" {
		m.addProxied(r, h, src, dst, ts, hr, failed)
		return
	}
	if last, ok := h.dsts[dst]; !ok || last != hr {
		h.hourDsts[hourOfDay(ts)]++
		h.dsts[dst] = hr
	}
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
	if r.Proto == 1 || r.Proto == 58 {
		// ICMP is no beacon channel: an echo's schedule is a monitor's as
		// often as an implant's, and what tells them apart (replies that
		// are no echo) is the ICMP model's (scoreICMP).
		return
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
	c := m.channels[k]
	if c == nil {
		c = &channel{key: k, first: ts, rnd: seed(k, "")}
		if m.Internal(dst) {
			c.dir = Internal
		}
		m.channels[k] = c
	}
	if r.Name != "" && r.NameSource >= c.nameSrc && r.Resp == dst && !isAddr(r.Name) {
		c.name, c.nameSrc = r.Name, r.NameSource
	}
	m.addConn(c, r, ts, failed)
}

// addProxied accounts a request to a forward proxy as a channel to the
// destination asked for: popularity is judged on it, not on the proxy.
func (m *Model) addProxied(r *flow.Record, h *host, src, proxy netip.Addr, ts int64, hr int32, failed bool) {
	host, port, ok := splitHostPort(r.ProxyDest)
	if !ok {
		return
	}
	pi := m.proxies[proxy]
	if pi == nil {
		pi = &proxyInfo{ports: map[uint16]bool{}, hosts: map[string]bool{}, clients: map[netip.Addr]bool{}}
		m.proxies[proxy] = pi
	}
	pi.ports[r.RespPort] = true
	if len(pi.hosts) < maxProxyHosts {
		pi.hosts[host] = true
	}
	if len(pi.clients) < maxProxyHosts {
		pi.clients[src] = true
	}
	// The host's daily profile counts the destination asked for.
	if h.proxied == nil {
		h.proxied = map[string]int32{}
	}
	if last, ok := h.proxied[host]; !ok || last != hr {
		h.hourDsts[hourOfDay(ts)]++
		if len(h.proxied) < 1<<16 {
			h.proxied[host] = hr
		}
	}
	k := proxyKey{src, host, port}
	c := m.proxied[k]
	if c == nil {
		c = &channel{first: ts, phost: host, via: proxy, rnd: seed(chanKey{src: src, port: port}, host)}
		c.key = chanKey{src: src, port: port, proto: r.Proto}
		if a, err := netip.ParseAddr(host); err == nil {
			c.key.dst = a.Unmap()
		} else {
			c.name, c.nameSrc = host, flow.NameHTTP
		}
		m.proxied[k] = c
	}
	m.addConn(c, r, ts, failed)
}

// isAddr reports whether a name is an address literal (a Host header
// naming the address): no name at all.
func isAddr(name string) bool {
	_, err := netip.ParseAddr(name)
	return err == nil
}

// splitHostPort reads flow.Record.ProxyDest: host:port, [v6]:port.
func splitHostPort(s string) (string, uint16, bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, false
	}
	p, err := strconv.ParseUint(s[i+1:], 10, 16)
	if err != nil || p == 0 {
		return "", 0, false
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s[:i], "["), "]")
	return host, uint16(p), host != ""
}

// addInbound accounts a record an outside address opened to an inside
// host. Only connections the inside host answered with payload are
// check-ins: a scan or a refused attempt reaches nothing.
func (m *Model) addInbound(r *flow.Record, src, dst netip.Addr, ts int64) {
	if len(m.inPairs) < maxPairs {
		if _, ok := m.inPairs[[2]netip.Addr{src, dst}]; !ok {
			m.inPairs[[2]netip.Addr{src, dst}] = struct{}{}
			m.inTargets[src]++
		}
		np := netPair{netOf(src), dst}
		if _, ok := m.inNetPairs[np]; !ok {
			m.inNetPairs[np] = struct{}{}
			m.inNetTargets[np.net]++
		}
	}
	// Inbound pings are scans or monitoring, no channel of this kind.
	if r.RespData == 0 || r.Proto == 1 || r.Proto == 58 {
		return
	}
	k := chanKey{src, dst, r.RespPort, r.Proto}
	c := m.channels[k]
	if c == nil {
		c = &channel{key: k, first: ts, dir: Inbound, rnd: seed(k, "")}
		m.channels[k] = c
	}
	m.addConn(c, r, ts, false)
}

// addConn adds a connection's start and the bursts inside it to c.
func (m *Model) addConn(c *channel, r *flow.Record, ts int64, failed bool) {
	c.conns++
	if r.TLS.PrivateIssuer() && !c.cert.Seen() {
		c.cert = r.TLS
	}
	if failed {
		c.failed++
	}
	c.first = min(c.first, ts)
	c.last = max(c.last, ts)
	c.hours |= 1 << hourOfDay(ts)
	m.addEvent(c, event{t: ts, obytes: clamp31(r.OrigData), resp: clamp31(r.RespData)})
	bu := &r.Bursts
	if bu.N < 2 {
		return
	}
	// Bursts after the opening exchange are check-ins inside the
	// connection; where the record dropped some, a hole.
	idle := uint32(flow.BurstIdle / time.Millisecond)
	for i, ms := range bu.At {
		if ms < idle {
			continue
		}
		t := ts + int64(ms)*int64(time.Millisecond)
		if i == int(bu.Head) && i > 0 && len(c.holes) < maxHoles {
			c.holes = append(c.holes, [2]int64{ts + int64(bu.At[i-1])*int64(time.Millisecond), t})
		}
		c.last = max(c.last, t)
		c.hours |= 1 << hourOfDay(t)
		m.addEvent(c, event{t: t, obytes: unsized})
	}
	// All the bursts after the first count, kept or dropped.
	c.bursts += int(bu.N) - 1
}

// addEvent keeps an event: every one up to maxRuns*runLen, then a
// reservoir sample of runs.
func (m *Model) addEvent(c *channel, e event) {
	if len(c.events) < maxRuns*runLen {
		c.events = append(c.events, e)
		return
	}
	if c.cur == nil {
		c.cur = make([]event, 0, runLen)
		c.runsSeen = maxRuns
	}
	c.cur = append(c.cur, e)
	if len(c.cur) == runLen {
		c.runsSeen++
		if j := c.rand(c.runsSeen); j < maxRuns {
			copy(c.events[j*runLen:], c.cur)
		}
		c.cur = c.cur[:0]
	}
}

// seed starts a channel's sampling state from its identity (key, and
// the host asked of a proxy), so the runs a long channel keeps depend on
// its own check-ins only, not on how other channels' records interleave
// with them: a store, a capture, Zeek logs and the flow database (which
// hands records over pair by pair) keep the same.
func seed(k chanKey, phost string) uint64 {
	h := fnv.New64a()
	a, b := k.src.As16(), k.dst.As16()
	h.Write(a[:])
	h.Write(b[:])
	h.Write([]byte{byte(k.port >> 8), byte(k.port), k.proto})
	h.Write([]byte(phost))
	return h.Sum64()
}

// rand returns a pseudo-random integer in [0, n) (splitmix64).
func (c *channel) rand(n int) int {
	c.rnd += 0x9e3779b97f4a7c15
	z := c.rnd
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return int(z % uint64(n))
}

// hourOfDay is the UTC hour of a unix-nanosecond time.
func hourOfDay(ts int64) int {
	h := (ts / int64(time.Hour)) % 24
	if h < 0 {
		h += 24
	}
	return int(h)
}

// clamp31 bounds a size to 31 bits (the top bit marks unsized events).
func clamp31(v uint64) uint32 {
	if v > unsized-1 {
		return unsized - 1
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

// Contacts lists the inside hosts that reached dst (directly or through a
// proxy), on every port, whether or not their channel scored: the report names every host talking to a
// controller, also one that checked in only once. Ordered by source, port.
func (m *Model) Contacts(dst netip.Addr) []Contact {
	dst = dst.Unmap()
	var out []Contact
	add := func(c *channel) {
		k := c.key
		if k.dst != dst || c.dir == Inbound || m.relayed(c) {
			return
		}
		out = append(out, Contact{Src: k.src, Port: k.port, Proto: k.proto, Connections: c.conns,
			First: time.Unix(0, c.first).UTC(), Last: time.Unix(0, c.last).UTC()})
	}
	for _, c := range m.channels {
		add(c)
	}
	for _, c := range m.proxied { // resolved by Score, when DNS named the address
		add(c)
	}
	slices.SortFunc(out, func(a, b Contact) int {
		return cmp.Or(a.Src.Compare(b.Src), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
	return out
}
