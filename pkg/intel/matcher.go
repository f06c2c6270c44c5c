package intel

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/hunt"
)

// Matcher finds the indicators a flow record matches. Every alternative
// of every indicator is filed under one anchor: its addresses in a hash
// set, its networks in a prefix trie, its names in a hash set (and name
// suffixes in another, looked up label by label), its ports in a map; only
// the few alternatives an anchor turns up are evaluated in full. Name
// patterns (LIKE, MATCHES) are tried once per distinct name and
// remembered.
type Matcher struct {
	inds  []*Indicator
	conjs []conj

	// The indexes hold references into post (offset<<32 | count), so
	// they hold no pointers and the garbage collector skips them; names
	// are keyed by their hash (a collision only adds a candidate, which
	// the full evaluation turns away).
	post     []int32
	addrs    map[[16]byte]uint64
	trie4    trie
	trie6    trie
	names    map[uint64]uint64
	suffixes map[uint64]uint64
	urls     map[string][]int32
	ports    map[uint16][]int32
	namePats []int32 // alternatives anchored on a name or URL pattern
	memo     map[string][]int32
	hasPorts bool
	// privateListed is set when some indicator names an address in
	// private, loopback or link-local space; when none does, those
	// addresses (the inside end of most flows) need no lookup.
	privateListed bool

	// While indexing: lists before they are flattened into post.
	tmpAddrs    map[[16]byte][]int32
	tmpNames    map[uint64][]int32
	tmpSuffixes map[uint64][]int32

	// Filters in front of the maps above.
	addrF, nameF, suffixF filter

	seen []uint32 // per alternative: the generation it was last a candidate in
	gen  uint32
	cand []int32
}

// maxMemo bounds the remembered pattern results; past it the memo starts
// over (a month of traffic can hold millions of distinct names).
const maxMemo = 1 << 20

// NewMatcher indexes the set's indicators.
func NewMatcher(s *Set) *Matcher {
	m := &Matcher{inds: s.Indicators, tmpAddrs: map[[16]byte][]int32{}, tmpNames: map[uint64][]int32{},
		tmpSuffixes: map[uint64][]int32{}, urls: map[string][]int32{}, ports: map[uint16][]int32{}, memo: map[string][]int32{}}
	for i, ind := range s.Indicators {
		for _, c := range ind.alts {
			c.ind = int32(i)
			m.file(int32(len(m.conjs)), &c)
			m.conjs = append(m.conjs, c)
		}
	}
	m.seen = make([]uint32, len(m.conjs))
	m.addrF, m.nameF, m.suffixF = newFilter(len(m.tmpAddrs)), newFilter(len(m.tmpNames)), newFilter(len(m.tmpSuffixes))
	m.addrs = make(map[[16]byte]uint64, len(m.tmpAddrs))
	for k, ids := range m.tmpAddrs {
		m.addrF.add(addrHash(&k))
		m.addrs[k] = m.flatten(ids)
	}
	m.names = make(map[uint64]uint64, len(m.tmpNames))
	for h, ids := range m.tmpNames {
		m.nameF.add(h)
		m.names[h] = m.flatten(ids)
	}
	m.suffixes = make(map[uint64]uint64, len(m.tmpSuffixes))
	for h, ids := range m.tmpSuffixes {
		m.suffixF.add(h)
		m.suffixes[h] = m.flatten(ids)
	}
	m.trie4.finish(m)
	m.trie6.finish(m)
	m.tmpAddrs, m.tmpNames, m.tmpSuffixes = nil, nil, nil
	return m
}

// flatten appends ids to post and returns their reference.
func (m *Matcher) flatten(ids []int32) uint64 {
	ref := uint64(len(m.post))<<32 | uint64(len(ids))
	m.post = append(m.post, ids...)
	return ref
}

// ids are the alternatives a reference names.
func (m *Matcher) ids(ref uint64) []int32 {
	off := ref >> 32
	return m.post[off : off+ref&0xffffffff]
}

// Indicators is how many indicators the matcher holds.
func (m *Matcher) Indicators() int { return len(m.inds) }

// file puts alternative id under its most selective anchor: an address or
// network, else a name, else a URL, else a port.
func (m *Matcher) file(id int32, c *conj) {
	best := -1
	rank := func(d *cond) int {
		switch {
		case !d.anchor():
			return 0
		case d.field == fAddr || d.field == fSrc || d.field == fDst || d.field == fAnswer:
			return 5
		case d.field == fName && d.re == nil:
			return 4
		case d.field == fURL && d.re == nil:
			return 3
		case d.field == fSrcPort || d.field == fDstPort:
			return 2
		}
		return 1 // a pattern
	}
	for i := range c.conds {
		if best < 0 || rank(&c.conds[i]) > rank(&c.conds[best]) {
			best = i
		}
	}
	d := &c.conds[best]
	switch rank(d) {
	case 5:
		for _, a := range d.addrs {
			m.tmpAddrs[a.As16()] = append(m.tmpAddrs[a.As16()], id)
			m.privateListed = m.privateListed || local(a)
		}
		for _, p := range d.prefixes {
			m.privateListed = m.privateListed || slices.ContainsFunc(localNets, p.Overlaps)
			if p.Addr().Is4() {
				m.trie4.insert(p.Addr().AsSlice(), p.Bits(), id)
			} else {
				m.trie6.insert(p.Addr().AsSlice(), p.Bits(), id)
			}
		}
	case 4:
		for _, n := range d.names {
			m.tmpNames[nameHash(n)] = append(m.tmpNames[nameHash(n)], id)
		}
		for _, s := range d.suffixes {
			m.tmpSuffixes[nameHash(s)] = append(m.tmpSuffixes[nameHash(s)], id)
		}
	case 3:
		for _, n := range d.names {
			m.urls[n] = append(m.urls[n], id)
		}
	case 2:
		m.hasPorts = true
		for _, n := range d.nums {
			if n >= 0 && n <= 65535 {
				m.ports[uint16(n)] = append(m.ports[uint16(n)], id)
			}
		}
	default:
		m.namePats = append(m.namePats, id)
	}
}

// Hit is one alternative of an indicator holding on a flow record.
type Hit struct {
	Ind    int32      // index of the indicator in the set
	Inside netip.Addr // our end: the side the indicator does not name
	Remote netip.Addr // the end it names (an answer for DNS answers); invalid when none
	Via    string     // what matched: "dst", "src", "dns-answer", "dns", "sni", "http", "name", "url", "port"
	Value  string     // the value that matched
}

func (m *Matcher) candidate(ids []int32) {
	for _, id := range ids {
		if m.seen[id] != m.gen {
			m.seen[id] = m.gen
			m.cand = append(m.cand, id)
		}
	}
}

func (m *Matcher) lookupAddr(a netip.Addr) {
	if !a.IsValid() {
		return
	}
	a = a.Unmap()
	if !m.privateListed && local(a) {
		return
	}
	k := a.As16()
	if m.addrF.has(addrHash(&k)) {
		if ref, ok := m.addrs[k]; ok {
			m.candidate(m.ids(ref))
		}
	}
	if a.Is4() {
		if m.trie4.n > 0 {
			b := a.As4()
			m.trie4.lookup(b[:], m)
		}
	} else if m.trie6.n > 0 {
		b := a.As16()
		m.trie6.lookup(b[:], m)
	}
}

// view is what a flow record shows the matcher: its ends, its names
// (the flow's name and, through a forward proxy, the host it was asked
// for), its URL and, through a proxy, the address asked for.
type view struct {
	r         *flow.Record
	name      string     // the flow's name, normalized
	proxyName string     // ProxyDest's host when it is a name, normalized
	proxyAddr netip.Addr // ProxyDest's host when it is an address
	url       string     // normalized
	proxied   bool       // Resp is a forward proxy
}

// proxyHost splits a ProxyDest "host:port" ("[v6]:port" for IPv6).
func proxyHost(d string) (string, netip.Addr) {
	if d == "" {
		return "", netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(d); err == nil {
		return "", ap.Addr().Unmap()
	}
	host := d
	if i := strings.LastIndexByte(d, ':'); i >= 0 && !strings.Contains(d[:i], ":") {
		host = d[:i]
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return "", a.Unmap()
	}
	return NormalizeName(host), netip.Addr{}
}

// lookupName makes the alternatives filed under name, or under a label
// suffix of it, candidates, and returns the name normalized. One pass
// from the end hashes every suffix (".b.c", ".c") and, at the start, the
// whole name; a name that is not already normal (upper case, a trailing
// dot, space) is normalized first.
func (m *Matcher) lookupName(name string) string {
	if name == "" {
		return name
	}
	if c := name[len(name)-1]; c == '.' || c == ' ' || name[0] == ' ' {
		name = NormalizeName(name)
	}
	h := uint64(fnvOffset)
	for i := len(name) - 1; i >= 0; i-- {
		c := name[i]
		if c >= 'A' && c <= 'Z' {
			// NormalizeName leaves no ASCII upper case: this recurses once.
			return m.lookupName(NormalizeName(name))
		}
		h = (h ^ uint64(c)) * fnvPrime
		if c == '.' && m.suffixF.has(h) {
			if ref, ok := m.suffixes[h]; ok {
				m.candidate(m.ids(ref))
			}
		}
	}
	if m.nameF.has(h) {
		if ref, ok := m.names[h]; ok {
			m.candidate(m.ids(ref))
		}
	}
	return name
}

// Match calls hit for every alternative that holds on r and whose
// indicator is valid at r's time. The URL is r's first HTTP request
// target (an absolute URI), or url when the caller has one from another
// source. An indicator whose alternative holds outside its validity is
// reported through invalid (may be nil).
func (m *Matcher) Match(r *flow.Record, url string, hit func(Hit), invalid func(ind int32)) {
	m.gen++
	if m.gen == 0 { // wrapped: start the generations over
		clear(m.seen)
		m.gen = 1
	}
	m.cand = m.cand[:0]
	v := view{r: r, proxied: r.ProxyDest != ""}
	if v.proxied {
		v.proxyName, v.proxyAddr = proxyHost(r.ProxyDest)
	}
	if len(m.addrs) > 0 || m.trie4.n+m.trie6.n > 0 {
		m.lookupAddr(r.Orig)
		m.lookupAddr(r.Resp)
		for _, a := range r.Answers {
			m.lookupAddr(a)
		}
		m.lookupAddr(v.proxyAddr)
	}
	if r.Name != "" {
		v.name = m.lookupName(r.Name)
	}
	if v.proxyName != "" && v.proxyName != v.name {
		m.lookupName(v.proxyName)
	}
	if len(m.urls)+len(m.namePats) > 0 {
		if url == "" && strings.Contains(r.HTTPTarget, "://") {
			url = r.HTTPTarget
		}
	} else {
		url = ""
	}
	if url != "" {
		v.url = NormalizeURL(url)
		if ids, ok := m.urls[v.url]; ok {
			m.candidate(ids)
		}
	}
	if m.hasPorts {
		if ids, ok := m.ports[r.RespPort]; ok {
			m.candidate(ids)
		}
		if ids, ok := m.ports[r.OrigPort]; ok {
			m.candidate(ids)
		}
	}
	if len(m.namePats) > 0 {
		m.patterns(v.name, v.url)
		if v.proxyName != "" {
			m.patterns(v.proxyName, "")
		}
	}
	for _, id := range m.cand {
		c := &m.conjs[id]
		h, ok := c.eval(&v)
		if !ok {
			continue
		}
		if !m.inds[c.ind].ValidAt(r.First, r.Last) {
			if invalid != nil {
				invalid(c.ind)
			}
			continue
		}
		h.Ind = c.ind
		hit(h)
	}
}

// patterns adds the alternatives whose name or URL pattern holds.
func (m *Matcher) patterns(name, url string) {
	for _, s := range [2]string{name, "\x00" + url} {
		if s == "" || s == "\x00" {
			continue
		}
		ids, ok := m.memo[s]
		if !ok {
			ids = []int32{}
			for _, id := range m.namePats {
				for i := range m.conjs[id].conds {
					d := &m.conjs[id].conds[i]
					if d.re != nil && (d.field == fName && s[0] != 0 || d.field == fURL && s[0] == 0) && d.re.MatchString(strings.TrimPrefix(s, "\x00")) {
						ids = append(ids, id)
						break
					}
				}
			}
			if len(m.memo) >= maxMemo {
				clear(m.memo)
			}
			m.memo[s] = ids
		}
		m.candidate(ids)
	}
}

// localNets are the ranges local reports on: an indicator's network
// overlapping one of them turns the shortcut off.
var localNets = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10")}

// local reports whether a is private, loopback or link-local.
func local(a netip.Addr) bool { return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() }

// dnsFlow reports whether r is a DNS exchange, whose name is the question
// and whose responder is a resolver.
func dnsFlow(r *flow.Record) bool {
	return r.NameSource == flow.NameDNS && (r.RespPort == 53 || r.RespPort == 5353 || r.RespPort == 5355)
}

// eval checks every condition on the view; the hit names the sides from
// the first condition that names an address, else from a name.
func (c *conj) eval(v *view) (Hit, bool) {
	r := v.r
	if !c.start.IsZero() && (r.First.Before(c.start) || !r.First.Before(c.stop)) {
		return Hit{}, false
	}
	// The end a name or URL points at: not a forward proxy, nor the
	// resolver of a DNS question.
	named := r.Resp.Unmap()
	if v.proxied {
		named = v.proxyAddr
	} else if dnsFlow(r) {
		named = netip.Addr{}
	}
	var h Hit
	// An address names the sides better than a name: a name condition
	// sets them only when no address condition will.
	addrSided := false
	for i := range c.conds {
		switch c.conds[i].field {
		case fAddr, fSrc, fDst, fAnswer:
			addrSided = true
		}
	}
	sided := false
	side := func(x Hit) {
		if !sided {
			h, sided = x, true
		}
	}
	for i := range c.conds {
		d := &c.conds[i]
		switch d.field {
		case fAddr, fSrc, fDst, fAnswer:
			if (d.field == fAddr || d.field == fDst) && d.holdsAddr(r.Resp) {
				side(Hit{Inside: r.Orig.Unmap(), Remote: r.Resp.Unmap(), Via: "dst", Value: d.value(r.Resp)})
				continue
			}
			if (d.field == fAddr || d.field == fDst) && v.proxyAddr.IsValid() && d.holdsAddr(v.proxyAddr) {
				side(Hit{Inside: r.Orig.Unmap(), Remote: v.proxyAddr, Via: "proxy", Value: d.value(v.proxyAddr)})
				continue
			}
			if (d.field == fAddr || d.field == fSrc) && d.holdsAddr(r.Orig) {
				side(Hit{Inside: r.Resp.Unmap(), Remote: r.Orig.Unmap(), Via: "src", Value: d.value(r.Orig)})
				continue
			}
			found := false
			if d.field == fAddr || d.field == fAnswer {
				for _, a := range r.Answers {
					if d.holdsAddr(a) {
						side(Hit{Inside: r.Orig.Unmap(), Remote: a.Unmap(), Via: "dns-answer", Value: d.value(a)})
						found = true
						break
					}
				}
			}
			if !found {
				return Hit{}, false
			}
		case fName:
			var matched, via string
			switch {
			case v.name != "" && d.holdsName(v.name):
				matched, via = v.name, r.NameSource.String()
				if via == "" {
					via = "name"
				}
			case v.proxyName != "" && d.holdsName(v.proxyName):
				matched, via = v.proxyName, "proxy"
			default:
				return Hit{}, false
			}
			if !addrSided {
				side(Hit{Inside: r.Orig.Unmap(), Remote: named, Via: via, Value: matched})
			}
		case fURL:
			if v.url == "" || !d.holdsName(v.url) {
				return Hit{}, false
			}
			if !addrSided {
				side(Hit{Inside: r.Orig.Unmap(), Remote: named, Via: "url", Value: v.url})
			}
		case fSrcPort:
			if !d.holdsNum(int64(r.OrigPort)) {
				return Hit{}, false
			}
		case fDstPort:
			if !d.holdsNum(int64(r.RespPort)) {
				return Hit{}, false
			}
		case fSrcBytes:
			if !d.holdsNum(int64(min(r.OrigBytes, 1<<62))) {
				return Hit{}, false
			}
		case fDstBytes:
			if !d.holdsNum(int64(min(r.RespBytes, 1<<62))) {
				return Hit{}, false
			}
		case fSrcPkts:
			if !d.holdsNum(int64(min(r.OrigPkts, 1<<62))) {
				return Hit{}, false
			}
		case fDstPkts:
			if !d.holdsNum(int64(min(r.RespPkts, 1<<62))) {
				return Hit{}, false
			}
		case fProto:
			if !d.holdsProto(r) {
				return Hit{}, false
			}
		case fSrcType, fDstType:
			a := r.Resp
			if d.field == fSrcType {
				a = r.Orig
			}
			if !d.holdsType(a.Unmap(), d.field == fDstType && (v.name != "" || v.proxyName != "")) {
				return Hit{}, false
			}
		}
	}
	if !sided {
		h = Hit{Inside: r.Orig.Unmap(), Remote: r.Resp.Unmap(), Via: "port", Value: hunt.ProtoName(r.Proto)}
		if p := r.RespPort; p != 0 {
			h.Value += "/" + itoa(int(p))
		}
	}
	return h, true
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [8]byte
	i := len(b)
	for n > 0 && i > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

func (d *cond) holdsAddr(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, x := range d.addrs {
		if x == a {
			return true
		}
	}
	for _, p := range d.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// value is what an address condition matched: the address, or the
// network holding it.
func (d *cond) value(a netip.Addr) string {
	a = a.Unmap()
	for _, p := range d.prefixes {
		if p.Contains(a) {
			return p.String()
		}
	}
	return a.String()
}

func (d *cond) holdsName(n string) bool {
	for _, x := range d.names {
		if x == n {
			return true
		}
	}
	for _, s := range d.suffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return d.re != nil && d.re.MatchString(n)
}

func (d *cond) holdsNum(v int64) bool {
	for _, n := range d.nums {
		var ok bool
		switch d.op {
		case "=", "IN":
			ok = v == n
		case "!=":
			ok = v != n
		case "<":
			ok = v < n
		case "<=":
			ok = v <= n
		case ">":
			ok = v > n
		case ">=":
			ok = v >= n
		}
		if ok {
			return true
		}
	}
	return false
}

func (d *cond) holdsProto(r *flow.Record) bool {
	name := hunt.ProtoName(r.Proto)
	for _, p := range d.protos {
		switch {
		case p == name, p == "ipv4" && r.Orig.Unmap().Is4(), p == "ipv6" && !r.Orig.Unmap().Is4():
			return true
		case p == "icmp" && name == "icmp6", p == "ipv6-icmp" && name == "icmp6":
			return true
		}
	}
	return false
}

func (d *cond) holdsType(a netip.Addr, named bool) bool {
	for _, t := range d.types {
		switch {
		case t == "ipv4-addr" && a.Is4(), t == "ipv6-addr" && a.Is6(), t == "domain-name" && named:
			return true
		}
	}
	return false
}

// trie is a binary prefix trie over address bits; each node holds the
// alternatives filed under the prefix ending there. Its first 16 bits are
// one array (a prefix shorter than 16 bits fills the slots it covers), so
// an address under no listed network costs one array read: most
// addresses, since most of the address space is in no feed.
type trie struct {
	used  []uint64 // 1<<16 bits: the root slots in use (8 KiB, so the common miss stays in L1)
	root  []int32  // 1<<16 slots: node index, 0 for none
	nodes []trieNode
	n     int               // prefixes held
	tmp   map[int32][]int32 // while indexing: node -> alternatives
}

type trieNode struct {
	child [2]int32 // 0: none
	ref   uint64   // into Matcher.post, after finish
}

const rootBits = 16

func (t *trie) newNode() int32 {
	t.nodes = append(t.nodes, trieNode{})
	return int32(len(t.nodes) - 1)
}

func (t *trie) insert(addr []byte, bits int, id int32) {
	if t.root == nil {
		t.root = make([]int32, 1<<rootBits)
		t.used = make([]uint64, 1<<rootBits/64)
		t.nodes = append(t.nodes, trieNode{}) // index 0 stands for none
		t.tmp = map[int32][]int32{}
	}
	top := int(addr[0])<<8 | int(addr[1])
	if bits <= rootBits {
		span := 1 << (rootBits - bits)
		first := top &^ (span - 1)
		for slot := first; slot < first+span; slot++ {
			if t.root[slot] == 0 {
				t.root[slot] = t.newNode()
				t.used[slot/64] |= 1 << (slot % 64)
			}
			n := t.root[slot]
			t.tmp[n] = append(t.tmp[n], id)
		}
		t.n++
		return
	}
	if t.root[top] == 0 {
		t.root[top] = t.newNode()
		t.used[top/64] |= 1 << (top % 64)
	}
	n := t.root[top]
	for i := rootBits; i < bits; i++ {
		b := addr[i/8] >> (7 - i%8) & 1
		if t.nodes[n].child[b] == 0 {
			c := t.newNode()
			t.nodes[n].child[b] = c
		}
		n = t.nodes[n].child[b]
	}
	t.tmp[n] = append(t.tmp[n], id)
	t.n++
}

// finish moves the nodes' alternatives into the matcher's postings.
func (t *trie) finish(m *Matcher) {
	for n, ids := range t.tmp {
		t.nodes[n].ref = m.flatten(ids)
	}
	t.tmp = nil
}

// lookup makes the alternatives of every prefix holding addr candidates.
func (t *trie) lookup(addr []byte, m *Matcher) {
	top := int(addr[0])<<8 | int(addr[1])
	if t.used[top/64]&(1<<(top%64)) == 0 {
		return
	}
	n := t.root[top]
	for i := rootBits; n != 0; i++ {
		if ref := t.nodes[n].ref; ref != 0 {
			m.candidate(m.ids(ref))
		}
		if i == len(addr)*8 {
			return
		}
		n = t.nodes[n].child[addr[i/8]>>(7-i%8)&1]
	}
}

// filter is a one-hash Bloom filter in front of a hash map: most lookups
// are of keys not in the map, and the filter (a few hundred kilobytes at
// most, so it stays in cache) answers those without touching the map.
type filter struct {
	bits []uint64
	mask uint64
}

func newFilter(n int) filter {
	size := uint64(1 << 16)
	for size < uint64(n)*16 && size < 1<<26 {
		size <<= 1
	}
	return filter{bits: make([]uint64, size/64), mask: size - 1}
}

func (f *filter) add(h uint64) {
	h &= f.mask
	f.bits[h>>6] |= 1 << (h & 63)
}

func (f *filter) has(h uint64) bool {
	if f.bits == nil {
		return false
	}
	h &= f.mask
	return f.bits[h>>6]&(1<<(h&63)) != 0
}

// mix is a 64-bit finaliser (splitmix64).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func addrHash(k *[16]byte) uint64 {
	return mix(binary.LittleEndian.Uint64(k[:8]) ^ mix(binary.LittleEndian.Uint64(k[8:])))
}

// Name hashes run from the end of the name to its start (FNV-1a), so one
// pass over a name gives the hash of every suffix: the label suffixes
// "*.domain" entries are filed under.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func nameHash(s string) uint64 {
	h := uint64(fnvOffset)
	for i := len(s) - 1; i >= 0; i-- {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}
