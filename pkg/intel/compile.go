package intel

import (
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"time"
)

// field is what part of a flow record a condition looks at.
type field uint8

const (
	fAddr     field = iota // ipv4-addr/ipv6-addr value: either end of the flow or a DNS answer in it
	fSrc                   // network-traffic:src_ref.value: the side that opened the flow
	fDst                   // network-traffic:dst_ref.value: the other side
	fAnswer                // domain-name:resolves_to_refs[*].value: a DNS answer
	fName                  // domain-name:value, or dst_ref.value naming a domain: the flow's name
	fURL                   // url:value
	fSrcPort               // network-traffic:src_port
	fDstPort               // network-traffic:dst_port
	fProto                 // network-traffic:protocols[*]
	fSrcType               // network-traffic:src_ref.type
	fDstType               // network-traffic:dst_ref.type
	fSrcBytes              // network-traffic:src_byte_count
	fDstBytes              // network-traffic:dst_byte_count
	fSrcPkts               // network-traffic:src_packets
	fDstPkts               // network-traffic:dst_packets
)

// cond is one comparison the matcher can evaluate on a flow record.
type cond struct {
	field    field
	addrs    []netip.Addr   // any of (unmapped)
	prefixes []netip.Prefix // any of
	names    []string       // any of: lower case, no trailing dot
	suffixes []string       // "*.example.com" as ".example.com" (plain lists)
	re       *regexp.Regexp // LIKE or MATCHES
	reInsts  int            // re's program size: its cost per byte matched
	op       string         // numbers: "=", "!=", "<", "<=", ">", ">=", "IN"
	nums     []int64
	protos   []string // protocol names, lower case
	types    []string // ipv4-addr, ipv6-addr, domain-name
}

// conj is conditions that must all hold on one flow record: one
// alternative of an observation's comparison expression.
type conj struct {
	ind         int32 // index of the indicator
	conds       []cond
	start, stop time.Time // START/STOP qualifier: the flow must begin in [start, stop)
}

// maxAlternatives bounds the disjunctive normal form of one pattern, so a
// pattern of many ORs inside ANDs cannot blow up.
const maxAlternatives = 1024

// Regular expressions (LIKE, MATCHES) run in time linear in the input
// (RE2) but also in their program's size: a 240 KB MATCHES of 60,000
// instructions took 170 ms a name, and every distinct name of the traffic
// is tried against every expression. One expression is held to
// maxRegexInsts instructions (real ones have tens to a few hundred), a
// set to maxSetRegexInsts in all; past them an indicator is not
// evaluable, and named.
const (
	maxRegexInsts    = 1000
	maxSetRegexInsts = 100000
)

// compileRegexp compiles a LIKE or MATCHES expression within
// maxRegexInsts.
func compileRegexp(expr string) (*regexp.Regexp, int, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, 0, err
	}
	sre, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, 0, err
	}
	prog, err := syntax.Compile(sre.Simplify())
	if err != nil {
		return nil, 0, err
	}
	if n := len(prog.Inst); n > maxRegexInsts {
		return nil, 0, fmt.Errorf("regular expression too costly: %d instructions, at most %d", n, maxRegexInsts)
	}
	return re, len(prog.Inst), nil
}

// regexInsts is the size of an alternative's regular expressions.
func (c *conj) regexInsts() int {
	n := 0
	for _, d := range c.conds {
		n += d.reInsts
	}
	return n
}

// observedTypes are the object types whose comparisons we can evaluate on
// flow records; the rest are named as not observed.
var observedTypes = map[string]bool{"ipv4-addr": true, "ipv6-addr": true, "domain-name": true, "url": true, "network-traffic": true}

// compile turns a parsed pattern into alternatives the matcher evaluates.
// Alternatives it cannot evaluate are left out and described in skipped:
// an OR stays correct with fewer alternatives (it may miss, never
// invent); an AND with one unevaluable part is left out whole.
func compile(p *Pattern) (alts []conj, skipped []string) {
	var walk func(o *ObsExpr, start, stop time.Time)
	walk = func(o *ObsExpr, start, stop time.Time) {
		for _, q := range o.Qualifiers {
			switch q.Kind {
			case "START":
				start, stop = q.Start, q.Stop
			case "WITHIN":
				// One observation always lies within any window of itself;
				// for compound expressions the operator below is refused.
			case "REPEATS":
				skipped = addReason(skipped, fmt.Sprintf("REPEATS %d TIMES needs counting observations", q.Times))
				return
			}
		}
		switch o.Op {
		case "OR":
			walk(o.Left, start, stop)
			walk(o.Right, start, stop)
		case "()":
			walk(o.Left, start, stop)
		case "AND", "FOLLOWEDBY":
			skipped = addReason(skipped, "observation operator "+o.Op+" joins two observations; only one observation (or OR) is evaluated")
		default:
			dnf, err := toDNF(o.Cmp)
			if err != nil {
				skipped = addReason(skipped, err.Error())
				return
			}
		alt:
			for _, tests := range dnf {
				c := conj{start: start, stop: stop}
				for _, t := range tests {
					cd, err := compileTest(t)
					if err != nil {
						skipped = addReason(skipped, err.Error())
						continue alt
					}
					c.conds = append(c.conds, cd)
				}
				if !c.anchored() {
					skipped = addReason(skipped, "comparison names no address, network, domain, URL or port")
					continue
				}
				alts = append(alts, c)
			}
		}
	}
	walk(&p.Root, time.Time{}, time.Time{})
	return alts, skipped
}

func addReason(list []string, r string) []string {
	if slices.Contains(list, r) {
		return list
	}
	return append(list, r)
}

// toDNF expands a comparison expression into an OR of ANDs of tests.
func toDNF(c *CmpExpr) ([][]*PropTest, error) {
	switch c.Op {
	case "OR":
		l, err := toDNF(c.Left)
		if err != nil {
			return nil, err
		}
		r, err := toDNF(c.Right)
		if err != nil {
			return nil, err
		}
		if len(l)+len(r) > maxAlternatives {
			return nil, fmt.Errorf("more than %d alternatives", maxAlternatives)
		}
		return append(l, r...), nil
	case "AND":
		l, err := toDNF(c.Left)
		if err != nil {
			return nil, err
		}
		r, err := toDNF(c.Right)
		if err != nil {
			return nil, err
		}
		if len(l)*len(r) > maxAlternatives {
			return nil, fmt.Errorf("more than %d alternatives", maxAlternatives)
		}
		var out [][]*PropTest
		for _, a := range l {
			for _, b := range r {
				out = append(out, append(slices.Clone(a), b...))
			}
		}
		return out, nil
	}
	return [][]*PropTest{{c.Test}}, nil
}

// anchored says whether some condition can be looked up in an index
// (address, network, name, URL, port): the matcher never scans every
// alternative for every flow.
func (c *conj) anchored() bool {
	for i := range c.conds {
		if c.conds[i].anchor() {
			return true
		}
	}
	return false
}

func (c *cond) anchor() bool {
	switch c.field {
	case fAddr, fSrc, fDst, fAnswer:
		return len(c.addrs)+len(c.prefixes) > 0
	case fName, fURL:
		return len(c.names)+len(c.suffixes) > 0 || c.re != nil
	case fSrcPort, fDstPort:
		return c.op == "=" || c.op == "IN"
	}
	return false
}

// compileTest turns one comparison into a condition, or says why not.
func compileTest(t *PropTest) (cond, error) {
	path := t.Path.String()
	if !observedTypes[t.Path.Type] {
		return cond{}, fmt.Errorf("object type %s is not observed in network flows", t.Path.Type)
	}
	if t.Not || t.Op == "!=" && !numericPath(t.Path) {
		return cond{}, fmt.Errorf("%s: a negated comparison would match nearly every flow", path)
	}
	if t.Op == "EXISTS" {
		return cond{}, fmt.Errorf("%s: EXISTS is not evaluated on flow records", path)
	}
	prop := t.Path.Property()
	switch t.Path.Type {
	case "ipv4-addr", "ipv6-addr":
		if prop != "value" {
			return cond{}, fmt.Errorf("%s: only the value of an address is observed", path)
		}
		return addrCond(fAddr, t)
	case "domain-name":
		switch prop {
		case "value":
			return nameCond(fName, t)
		case "resolves_to_refs[*].value":
			return addrCond(fAnswer, t)
		}
		return cond{}, fmt.Errorf("%s: only the name and resolves_to_refs[*].value of a domain are observed", path)
	case "url":
		if prop != "value" {
			return cond{}, fmt.Errorf("%s: only the value of a URL is observed", path)
		}
		return nameCond(fURL, t)
	}
	// network-traffic
	switch prop {
	case "dst_ref.value", "src_ref.value":
		f := fDst
		if prop == "src_ref.value" {
			f = fSrc
		}
		// The value is an address, a network or a domain name: the literal
		// says which (dst_ref.type, when given, is checked on its own).
		if t.Op == "ISSUBSET" || t.Op == "ISSUPERSET" || allAddrs(t.Values) {
			return addrCond(f, t)
		}
		if t.Op == "=" || t.Op == "IN" || t.Op == "LIKE" || t.Op == "MATCHES" {
			c, err := nameCond(fName, t)
			if f == fSrc && err == nil {
				return cond{}, fmt.Errorf("%s: the source of a flow has no name in flow records", path)
			}
			return c, err
		}
	case "dst_ref.type", "src_ref.type":
		f := fDstType
		if prop == "src_ref.type" {
			f = fSrcType
		}
		c := cond{field: f}
		if t.Op != "=" && t.Op != "IN" {
			break
		}
		for _, v := range t.Values {
			s := strings.ToLower(v.Str)
			if v.Kind != LitString || s != "ipv4-addr" && s != "ipv6-addr" && s != "domain-name" {
				return cond{}, fmt.Errorf("%s: flows hold ipv4-addr, ipv6-addr and domain-name ends, not %s", path, v)
			}
			c.types = append(c.types, s)
		}
		return c, nil
	case "dst_port", "src_port", "src_byte_count", "dst_byte_count", "src_packets", "dst_packets":
		f := map[string]field{"dst_port": fDstPort, "src_port": fSrcPort, "src_byte_count": fSrcBytes,
			"dst_byte_count": fDstBytes, "src_packets": fSrcPkts, "dst_packets": fDstPkts}[prop]
		c := cond{field: f, op: t.Op}
		switch t.Op {
		case "=", "!=", "<", "<=", ">", ">=", "IN":
		default:
			return cond{}, fmt.Errorf("%s: %s does not apply to a number", path, t.Op)
		}
		for _, v := range t.Values {
			if v.Kind != LitInt {
				return cond{}, fmt.Errorf("%s: compares with an integer, not %s", path, v)
			}
			c.nums = append(c.nums, v.Int)
		}
		return c, nil
	case "protocols[*]", "protocols[0]", "protocols[1]", "protocols[2]":
		c := cond{field: fProto}
		if t.Op != "=" && t.Op != "IN" {
			break
		}
		for _, v := range t.Values {
			if v.Kind != LitString {
				return cond{}, fmt.Errorf("%s: compares with a protocol name, not %s", path, v)
			}
			c.protos = append(c.protos, strings.ToLower(v.Str))
		}
		return c, nil
	}
	return cond{}, fmt.Errorf("%s %s is not evaluated on flow records", path, t.Op)
}

func numericPath(p ObjectPath) bool {
	switch p.Property() {
	case "dst_port", "src_port", "src_byte_count", "dst_byte_count", "src_packets", "dst_packets":
		return p.Type == "network-traffic"
	}
	return false
}

func allAddrs(vs []Literal) bool {
	for _, v := range vs {
		if _, ok := parseAddrOrPrefix(v.Str); v.Kind != LitString || !ok {
			return false
		}
	}
	return len(vs) > 0
}

// parseAddrOrPrefix reads an address or a CIDR; a full-length prefix is
// an address.
func parseAddrOrPrefix(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		a := p.Addr()
		if a.Is4In6() {
			return netip.PrefixFrom(a.Unmap(), max(0, p.Bits()-96)).Masked(), true
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), true
}

// addrCond: '=' and IN take addresses (a network given with '=' is taken
// as the network: feeds write '198.51.100.0/24' meaning every address in
// it); ISSUBSET takes a network; ISSUPERSET holds for a single address
// only when the literal is that address.
func addrCond(f field, t *PropTest) (cond, error) {
	path := t.Path.String()
	c := cond{field: f}
	switch t.Op {
	case "=", "IN", "ISSUBSET", "ISSUPERSET":
	default:
		return cond{}, fmt.Errorf("%s: %s is not evaluated on addresses", path, t.Op)
	}
	for _, v := range t.Values {
		p, ok := parseAddrOrPrefix(v.Str)
		if v.Kind != LitString || !ok {
			return cond{}, fmt.Errorf("%s: %s is not an address or network", path, v)
		}
		if t.Op == "ISSUPERSET" && !p.IsSingleIP() {
			return cond{}, fmt.Errorf("%s ISSUPERSET %s: one observed address is never a superset of a network", path, v)
		}
		if p.IsSingleIP() {
			c.addrs = append(c.addrs, p.Addr())
		} else {
			c.prefixes = append(c.prefixes, p)
		}
	}
	return c, nil
}

// nameCond: '=' and IN compare names case-insensitively (DNS names are);
// LIKE and MATCHES become regular expressions.
func nameCond(f field, t *PropTest) (cond, error) {
	path := t.Path.String()
	c := cond{field: f}
	switch t.Op {
	case "=", "IN":
		for _, v := range t.Values {
			if v.Kind != LitString {
				return cond{}, fmt.Errorf("%s: compares with a string, not %s", path, v)
			}
			if f == fURL {
				c.names = append(c.names, NormalizeURL(v.Str))
			} else {
				c.names = append(c.names, NormalizeName(v.Str))
			}
		}
	case "LIKE":
		// '%.example.com' is the common shape (a domain and every name
		// under it): a suffix the matcher looks up label by label.
		if rest, ok := strings.CutPrefix(t.Values[0].Str, "%."); ok && f == fName && !strings.ContainsAny(rest, "%_") && rest != "" {
			c.suffixes = append(c.suffixes, "."+NormalizeName(rest))
			return c, nil
		}
		re, n, err := compileRegexp("(?is)^" + likeToRegexp(t.Values[0].Str) + "$")
		if err != nil {
			return cond{}, fmt.Errorf("%s LIKE: %v", path, err)
		}
		c.re, c.reInsts = re, n
	case "MATCHES":
		// PCRE in the spec; Go's RE2 reads the common subset and refuses
		// the rest (back-references, look-around), which we then name.
		re, n, err := compileRegexp(t.Values[0].Str)
		if err != nil {
			return cond{}, fmt.Errorf("%s MATCHES: %v", path, err)
		}
		c.re, c.reInsts = re, n
	default:
		return cond{}, fmt.Errorf("%s: %s is not evaluated on names", path, t.Op)
	}
	return c, nil
}

// likeToRegexp turns SQL LIKE (% any run, _ one character) into a regular
// expression.
func likeToRegexp(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return b.String()
}

// NormalizeName lowers a domain name and drops its trailing dot.
func NormalizeName(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// NormalizeURL lowers a URL's scheme and host (not its path, which is
// case-sensitive), drops a default port and a fragment.
func NormalizeURL(s string) string {
	s = strings.TrimSpace(s)
	// A fragment never travels in a request.
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	host, path, _ := strings.Cut(rest, "/")
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	if scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	} else if scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	}
	return scheme + "://" + host + "/" + path
}

func (c *conj) needsURL() bool {
	return slices.ContainsFunc(c.conds, func(d cond) bool { return d.field == fURL })
}
