package hunt

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/periodicity"
)

// DNS as a channel (docs/hunt.md, DNS): an implant that talks through the
// inside resolver is one more client of a popular, infrastructure-discounted
// channel, so DNS is judged per (inside host, registered domain) on what the
// names say (many, long, random, never repeated), on how much a flow
// carries against the population's DNS flows (a tunnel's one socket carries
// hundreds of queries), on the schedule of the queries, and on how many
// inside hosts query the domain the same way (fleet software).

// KindDNS is a finding about an inside host's DNS traffic under one
// registered domain: Src is the host, Dst the server it asked, DstName the
// registered domain.
const KindDNS Kind = "dns"

// DNS bounds: distinct names kept per (host, domain), query times kept for
// the schedule, (host, domain) pairs kept in all.
const (
	maxDNSNames = 4096
	maxDNSTimes = 2048
	maxDNSPairs = 1 << 18
)

// DNS evidence shapes (docs/hunt.md explains each):
const (
	// Random labels: the subdomain part's mean length from dnsLenNone
	// (a hostname) to dnsLenFull, and the character entropy of all the
	// domain's subdomains together from dnsEntNone (words) to dnsEntFull
	// (hex and above: base32, base64 encodings).
	dnsLenNone = 10.0
	dnsLenFull = 30.0
	dnsEntNone = 3.0
	dnsEntFull = 4.0
	// Many names: distinct names from dnsNamesNone to dnsNamesNone·2^5.
	dnsNamesNone = 8.0
	// A lookup is a query or two: a flow's datagrams are measured against
	// the population's median DNS flow, itself held between these bounds
	// (a network of tunnels has no lookups to compare with).
	dnsBasePktsMax  = 4.0
	dnsBaseBytesMin = 64.0
	dnsBaseBytesMax = 256.0
	// Tunnel volume: client datagrams from dnsVolPkts/4 to dnsVolPkts
	// times the median flow's, and bytes from 10× to 1000× its bytes.
	dnsVolPkts = 25.0
	// dnsSingleCap: with no population to judge by (w < 1), DNS findings
	// stay medium at most unless the tunnel evidence is overwhelming.
	dnsSingleCap = 0.59
)

// dnsKey is an inside host and a registered domain.
type dnsKey struct {
	src    netip.Addr
	domain string
}

// dnsDomain is one inside host's DNS traffic under a registered domain.
type dnsDomain struct {
	key         dnsKey
	server      netip.Addr // the first server asked
	proto       uint8
	queries     int // questions: a flow's datagrams from the client (one per query)
	flows       int
	names       map[string]struct{}
	namesOver   bool    // more distinct names than kept
	subLen      int     // total length of the distinct names' subdomain parts
	chars       [38]int // character counts of those subdomain parts (charClass)
	times       []int64 // flow starts, the first maxDNSTimes
	first, last int64
	origData    uint64
	respData    uint64
	// The largest flow: its client datagrams, bytes both ways.
	bigPkts, bigOrig, bigResp uint64
	qtypes                    [qtOther + 1]int
	// answersInside counts flows whose answers gave an inside address:
	// a local zone of the network.
	answersInside, answered int
}

// Query type classes (Zeek dns.log qtype_name): tunnels prefer records
// that carry bytes (TXT, NULL, CNAME, MX, KEY), lookups ask for addresses.
const (
	qtAddr  = iota // A, AAAA, HTTPS, SVCB
	qtData         // TXT, NULL, CNAME, MX, KEY, PRIVATE
	qtPTR          // PTR, SRV, SOA, NS
	qtOther        // other, unknown
)

func qtypeClass(t string) int {
	switch strings.ToUpper(t) {
	case "A", "AAAA", "HTTPS", "SVCB", "1", "28", "65", "64":
		return qtAddr
	case "TXT", "NULL", "CNAME", "MX", "KEY", "PRIVATE", "16", "10", "5", "15", "25":
		return qtData
	case "PTR", "SRV", "SOA", "NS", "12", "33", "6", "2":
		return qtPTR
	}
	return qtOther
}

// RegisteredDomain returns a name's registered domain (eTLD+1 by the
// public suffix list, ICANN section) and its subdomain part, or ok false
// for a name that is no DNS candidate: reverse zones, link-local names,
// single labels, and suffixes no ICANN registry runs (.corp, .lan,
// .internal: local zones).
func RegisteredDomain(name string) (domain, sub string, ok bool) {
	name = strings.TrimSuffix(lowerASCII(name), ".")
	if name == "" || len(name) > 253 || !strings.Contains(name, ".") || isAddr(name) {
		return "", "", false
	}
	for _, s := range [...]string{".arpa", ".local", ".localdomain", ".localhost", ".home", ".lan", ".internal", ".invalid", ".test", ".onion"} {
		if strings.HasSuffix(name, s) {
			return "", "", false
		}
	}
	suffix, icann := publicsuffix.PublicSuffix(name)
	if !icann || suffix == name {
		return "", "", false
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return "", "", false
	}
	return d, strings.TrimSuffix(strings.TrimSuffix(name, d), "."), true
}

// lowerASCII lowers the ASCII letters of a DNS name and keeps every other
// byte (DNS compares names case-insensitively in ASCII only, RFC 4343).
// strings.ToLower would turn each byte that is not UTF-8 (a label may
// hold any octet: a tunnel's binary data) into U+FFFD, three bytes the
// same for every such byte: lengths would triple and distinct names
// become one.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c >= 'A' && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// DNSQuery is one DNS flow (or one query of a log that lists them) as the
// DNS model needs it: for sources that hand names over apart from the
// flow records (Zeek's dns.log, the flow database).
type DNSQuery struct {
	Src, Server netip.Addr
	Proto       uint8
	Time, End   int64 // unix nanoseconds: the query (the flow's first and last packet)
	Name        string
	QType       string // empty when unknown
	// Queries is the client's datagrams (a stub's flow: 1); 0 counts as 1.
	Queries            uint64
	OrigData, RespData uint64
	AnswersInside      bool // an answer gave an inside address
	Answered           bool
}

// dnsQueryOf is a DNS flow record as a DNSQuery (ok false for any other).
func (m *Model) dnsQueryOf(r *flow.Record, src, dst netip.Addr, ts int64) (DNSQuery, bool) {
	if r.Name == "" || r.NameSource != flow.NameDNS || r.RespPort != 53 || (r.Proto != 17 && r.Proto != 6) {
		return DNSQuery{}, false
	}
	q := DNSQuery{Src: src, Server: dst, Proto: r.Proto, Time: ts, End: r.Last.UnixNano(), Name: r.Name, Queries: r.OrigPkts,
		OrigData: r.OrigData, RespData: r.RespData, Answered: len(r.Answers) > 0}
	if r.Proto == 6 {
		q.Queries = 1 // a TCP flow's packets are no queries; one or a few
	}
	for _, a := range r.Answers {
		if m.Internal(a) {
			q.AnswersInside = true
		}
	}
	return q, true
}

// TakeDNSApart says DNS flow records come through AddDNSRecord, apart
// from the records Add takes (Config.ExternalDNS): for a source that
// hands over records whose names were thinned to one a channel (the flow
// database). Call it before the first Add.
func (m *Model) TakeDNSApart() { m.cfg.ExternalDNS = true }

// AddDNSRecord accounts a DNS flow record as Add would when DNS is not
// taken apart (records of other protocols are ignored). Together with
// Add's channel accounting it fills the model as Add alone does, when
// the records come in the same order.
func (m *Model) AddDNSRecord(r *flow.Record) {
	if !r.Orig.IsValid() || !r.Resp.IsValid() {
		return
	}
	if q, ok := m.dnsQueryOf(r, r.Orig.Unmap(), r.Resp.Unmap(), r.First.UnixNano()); ok {
		m.AddDNS(q)
	}
}

// AddDNSQueryType counts the type of one question a host asked (Zeek's
// dns.log): the flow records of the same queries carry names but no
// types, so types are kept apart per (host, registered domain) and joined
// at scoring, whatever the order of the two. Empty and unset ("-") types
// are not counted.
func (m *Model) AddDNSQueryType(src netip.Addr, name, qtype string) {
	src = src.Unmap()
	if qtype == "" || qtype == "-" || !m.Internal(src) {
		return
	}
	domain, _, ok := RegisteredDomain(name)
	if !ok {
		return
	}
	if m.dnsQT == nil {
		m.dnsQT = map[dnsKey]*[qtOther + 1]int{}
	}
	k := dnsKey{src, domain}
	c := m.dnsQT[k]
	if c == nil {
		if len(m.dnsQT) >= maxDNSPairs {
			return
		}
		c = new([qtOther + 1]int)
		m.dnsQT[k] = c
	}
	c[qtypeClass(qtype)]++
}

// AddDNS accounts one DNS query or flow. Records added with Add account
// their own DNS unless Config.ExternalDNS says the caller hands DNS over
// apart from the records.
func (m *Model) AddDNS(q DNSQuery) {
	src := q.Src.Unmap()
	if !m.Internal(src) || q.Name == "" {
		return
	}
	domain, sub, ok := RegisteredDomain(q.Name)
	if !ok {
		return
	}
	if m.dns == nil {
		m.dns = map[dnsKey]*dnsDomain{}
	}
	k := dnsKey{src, domain}
	d := m.dns[k]
	if d == nil {
		if len(m.dns) >= maxDNSPairs {
			return
		}
		d = &dnsDomain{key: k, server: q.Server.Unmap(), proto: q.Proto, first: q.Time, names: map[string]struct{}{}}
		m.dns[k] = d
	}
	n := max(q.Queries, 1)
	d.queries += int(min(n, 1<<20))
	d.flows++
	d.first, d.last = min(d.first, q.Time), max(d.last, q.Time, q.End)
	d.origData += q.OrigData
	d.respData += q.RespData
	if n > d.bigPkts || n == d.bigPkts && q.OrigData+q.RespData > d.bigOrig+d.bigResp {
		d.bigPkts, d.bigOrig, d.bigResp = n, q.OrigData, q.RespData
	}
	if len(d.times) < maxDNSTimes {
		d.times = append(d.times, q.Time)
	}
	if q.QType != "" && q.QType != "-" {
		d.qtypes[qtypeClass(q.QType)]++
	}
	if q.Answered {
		d.answered++
	}
	if q.AnswersInside {
		d.answersInside++
	}
	name := strings.TrimSuffix(lowerASCII(q.Name), ".")
	if _, ok := d.names[name]; !ok && sub != "" {
		if len(d.names) >= maxDNSNames {
			d.namesOver = true
		} else {
			d.names[name] = struct{}{}
			d.subLen += len(sub)
			for i := 0; i < len(sub); i++ {
				if c := sub[i]; c != '.' {
					d.chars[charClass(c)]++
				}
			}
		}
	}
	// The population's DNS flows: packets and bytes, on a log2 scale.
	m.dnsFlowPkts[bits.Len64(n)]++
	m.dnsFlowBytes[bits.Len64(q.OrigData+q.RespData)]++
}

// charClass folds a byte of a lower-cased name into 38 classes: letters,
// digits, '-', and the rest together (labels are mostly LDH). Case is
// not a class: names are lowered before they get here, since DNS ignores
// case and resolvers randomise it (0x20 encoding), which would raise a
// benign name's entropy; a base64 tunnel's case is lost with it, and its
// length and the other letters still show it.
func charClass(c byte) int {
	switch {
	case c >= 'a' && c <= 'z':
		return int(c - 'a')
	case c >= '0' && c <= '9':
		return 26 + int(c-'0')
	case c == '-':
		return 36
	}
	return 37
}

// entropy is the Shannon entropy of counts, in bits a character.
func entropy(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / float64(total)
			h -= p * math.Log2(p)
		}
	}
	return h
}

// histMedian is the median of a log2 histogram (bucket i holds values of
// bit length i), as the bucket's lower bound.
func histMedian(h *[65]int) float64 {
	total := 0
	for _, c := range h {
		total += c
	}
	if total == 0 {
		return 0
	}
	acc := 0
	for i, c := range h {
		acc += c
		if 2*acc >= total {
			if i == 0 {
				return 0
			}
			return math.Ldexp(1, i-1)
		}
	}
	return 0
}

// DNSEvidence is what one inside host's DNS under one domain showed.
type DNSEvidence struct {
	Queries     int
	Names       int     // distinct names (at least, when more than kept)
	SubLen      float64 // mean length of the subdomain part of the distinct names
	Entropy     float64 // bits a character over all the subdomain parts
	Unique      float64 // distinct names per query
	BigQueries  uint64  // the largest flow's client datagrams
	BigBytes    uint64  // the largest flow's bytes, both ways
	OrigData    uint64
	RespData    uint64
	DataQTypes  float64 // share of queries for TXT, NULL, CNAME, MX, KEY (-1 unknown)
	Hosts       int     // inside hosts that query the domain
	Labels      float64 // evidence of encoded labels 0-1
	Volume      float64 // evidence of tunnel volume 0-1
	Schedule    float64 // beacon evidence of the queries 0-1
	PeriodSec   float64
	BaseBytes   float64 // the population's median DNS flow
	LocalDomain bool
}

// scoreDNS scores every (host, registered domain).
func (m *Model) scoreDNS(w float64, H int, allowed func(netip.Addr, string) bool) []scored {
	if len(m.dns) == 0 {
		return nil
	}
	// Group behaviour: inside hosts per domain.
	popDom := map[string]int{}
	local := map[string]bool{}
	insideAns := map[string][2]int{}
	for k, d := range m.dns {
		popDom[k.domain]++
		x := insideAns[k.domain]
		x[0] += d.answersInside
		x[1] += d.answered
		insideAns[k.domain] = x
	}
	// A local zone: most of its answers are inside addresses.
	for dom, x := range insideAns {
		local[dom] = x[1] > 0 && 2*x[0] >= x[1]
	}
	basePkts := min(max(histMedian(&m.dnsFlowPkts), 1), dnsBasePktsMax)
	baseBytes := min(max(histMedian(&m.dnsFlowBytes), dnsBaseBytesMin), dnsBaseBytesMax)
	scaleN := math.Max(2, popScale*float64(H))

	keys := make([]dnsKey, 0, len(m.dns))
	for k := range m.dns {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b dnsKey) int { return cmp.Or(a.src.Compare(b.src), strings.Compare(a.domain, b.domain)) })
	var out []scored
	for _, k := range keys {
		d := m.dns[k]
		if local[k.domain] || allowed(k.src, "") || allowed(netip.Addr{}, k.domain) {
			continue
		}
		ev := m.dnsEvidence(d, basePkts, baseBytes)
		ev.Hosts = popDom[k.domain]
		// Encoded labels count when they are many; their schedule when
		// the labels are encoded (a fixed name polled on a timer is an
		// update check).
		e := 1 - (1-0.7*ev.Labels*(0.6+0.4*ev.Schedule))*(1-0.9*ev.Volume)
		if ev.DataQTypes > 0 {
			q := clamp01((ev.DataQTypes - 0.3) / 0.4)
			e = 1 - (1-e)*(1-0.3*q*math.Max(ev.Labels, ev.Volume))
		}
		if e < 0.05 {
			continue
		}
		// A random-labelled tunnel's volume is its own evidence, as an odd
		// port is a channel's.
		own := 0.0
		if ev.Volume >= 0.5 && ev.Labels >= 0.3 {
			own = ev.Volume
		}
		score, strength := covertScore(e, ev.Hosts, scaleN, w, own, dnsSingleCap)
		f := Finding{Kind: KindDNS, Src: k.src, Dst: d.server, DstName: k.domain, DstPort: 53, Proto: d.proto,
			Score: score, Severity: SeverityOf(score), PeriodSec: ev.PeriodSec, Connections: d.flows,
			FirstSeen: unixUTC(d.first), LastSeen: unixUTC(d.last), Popularity: ev.Hosts, Hosts: H,
			Own: w < 1, DNS: &ev, Beacon: ev.Schedule >= 0.5 && ev.Labels >= 0.3}
		var whys []why
		if ev.Volume > 0 && ev.BigQueries < dnsVolPkts {
			whys = append(whys, why{ev.Volume, fmt.Sprintf("tunnel volume: %d queries carried %s out and %s in under %s (a DNS flow's median: %s)",
				ev.Queries, fmtBytes(float64(ev.OrigData)), fmtBytes(float64(ev.RespData)), k.domain, fmtBytes(ev.BaseBytes))})
		} else if ev.Volume > 0 {
			whys = append(whys, why{ev.Volume, fmt.Sprintf("tunnel volume: one flow carried %d queries and %s (a DNS flow's median: %s), %s out and %s in under %s",
				ev.BigQueries, fmtBytes(float64(ev.BigBytes)), fmtBytes(ev.BaseBytes), fmtBytes(float64(ev.OrigData)), fmtBytes(float64(ev.RespData)), k.domain)})
		}
		if ev.Labels > 0 {
			whys = append(whys, why{ev.Labels, fmt.Sprintf("encoded subdomains: %d distinct names under %s in %d queries, subdomain %.0f characters on average, entropy %.2f bits a character",
				ev.Names, k.domain, ev.Queries, ev.SubLen, ev.Entropy)})
		}
		if ev.Schedule > 0 && ev.Labels > 0 {
			whys = append(whys, why{0.5 * ev.Schedule, fmt.Sprintf("queries on a schedule: every %s", FormatPeriod(ev.PeriodSec))})
		}
		if ev.DataQTypes >= 0.3 {
			whys = append(whys, why{0.4, fmt.Sprintf("%.0f%% of the queries ask for TXT, NULL, CNAME, MX or KEY records", 100*ev.DataQTypes)})
		}
		closeCovert(&f, whys, fmt.Sprintf("%d of %d inside hosts query %s", ev.Hosts, H, k.domain), "fleet software", w, "T1071.004", ev.Volume >= 0.5)
		out = append(out, scored{f: f, strength: strength})
	}
	return out
}

// dnsEvidence measures one (host, domain).
func (m *Model) dnsEvidence(d *dnsDomain, basePkts, baseBytes float64) DNSEvidence {
	ev := DNSEvidence{Queries: d.queries, Names: len(d.names), BigQueries: d.bigPkts, BigBytes: d.bigOrig + d.bigResp,
		OrigData: d.origData, RespData: d.respData, DataQTypes: -1, BaseBytes: baseBytes}
	if len(d.names) > 0 {
		ev.SubLen = float64(d.subLen) / float64(len(d.names))
		ev.Entropy = entropy(d.chars[:])
	}
	ev.Unique = math.Min(1, float64(ev.Names)/float64(max(d.queries, 1)))
	if d.namesOver {
		ev.Unique = 1
	}
	random := clamp01((ev.SubLen-dnsLenNone)/(dnsLenFull-dnsLenNone)) * clamp01((ev.Entropy-dnsEntNone)/(dnsEntFull-dnsEntNone))
	many := clamp01(math.Log2(float64(ev.Names)/dnsNamesNone) / 5)
	// Lookups repeat (caches expire, the same names come back); an
	// encoder never repeats a name. A one-socket tunnel's record names
	// only its first query: its datagrams speak for it (Volume).
	fresh := clamp01((ev.Unique - 0.3) / 0.5)
	ev.Labels = random * many * fresh

	// Volume of the largest flow against a lookup's.
	pk := float64(d.bigPkts)
	ratio := float64(ev.BigBytes) / baseBytes
	vFlow := clamp01((math.Log10(math.Max(ratio, 1))-1)/2) * clamp01((pk/basePkts-dnsVolPkts/4)/(0.75*dnsVolPkts))
	// Or many single-query flows that together carry a tunnel's bytes:
	// only with encoded labels (a busy CDN domain adds up too).
	total := float64(d.origData + d.respData)
	vMany := clamp01((math.Log10(math.Max(total/baseBytes, 1))-2)/2) * ev.Labels
	ev.Volume = math.Max(vFlow, vMany)
	// A one-socket tunnel is judged on its flow, also where its record
	// kept one name: its label is still the encoder's.
	if vFlow > 0 && ev.Names > 0 {
		ev.Labels = math.Max(ev.Labels, random*vFlow)
	}

	qt := d.qtypes
	if c := m.dnsQT[d.key]; c != nil {
		for i := range qt {
			qt[i] += c[i]
		}
	}
	if n := qt[qtAddr] + qt[qtData] + qt[qtPTR] + qt[qtOther]; n >= periodicity.MinEvents {
		ev.DataQTypes = float64(qt[qtData]) / float64(n)
	}

	ev.Schedule, ev.PeriodSec = m.covertSchedule(d.times)
	return ev
}

func unixUTC(ns int64) time.Time { return time.Unix(0, ns).UTC() }
