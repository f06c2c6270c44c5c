package zeek

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

// Report says what Join could not use. Damage is input that was skipped
// or could not be joined (a command exits 3 for it); Unused names logs of
// kinds hunt does not read, which are no damage but are never ignored
// silently.
type Report struct {
	Damage  []Damage // the first maxPlaces places
	Damaged int      // all damaged rows and places, named or not
	Unused  []string // files whose log hunt does not read, with their kind
	// Forwarded counts connections attributed to the client their proxy
	// named (X-Forwarded-For in http.log's proxied), where the logs hold
	// no request of that client to the proxy.
	Forwarded int
}

// Damage is one damaged place: a file and line, or a group of rows.
type Damage struct {
	Place string // names the file, line and what was wrong
	Rows  int    // damaged rows (or places) it stands for; 0 for a detail of the one before
}

// maxPlaces bounds the damaged places kept by name; the rest are counted.
const maxPlaces = 100

func (rp *Report) damage(n int, format string, a ...any) {
	rp.Damaged += n
	if len(rp.Damage) < maxPlaces {
		rp.Damage = append(rp.Damage, Damage{fmt.Sprintf(format, a...), n})
	}
}

// maxTimes bounds the request times kept per connection; further ones
// are counted (a connection with more requests than that is rare, and its
// series is kept as its first and last bursts anyway).
const maxTimes = 1024

// extra is what http, ssl and dns rows say about one connection (uid).
type extra struct {
	name    string
	nameSrc flow.NameSource
	target  string
	proxy   string
	firstNS int64 // time of the request the target came from
	times   []int64
	more    uint32 // times beyond maxTimes
	answers []netip.Addr
	tls     flow.TLSCert // from the first ssl.log row
	client  netip.Addr   // the client a proxy named (http.log proxied, X-Forwarded-For)
	// The row's own endpoints, for a row whose connection is in no
	// conn.log given.
	ts, last           int64
	orig, resp         netip.Addr
	origPort, respPort uint16
	proto              uint8
	kinds              uint8 // bit per Kind seen
	used               bool
	where              string // file:line of the first row, for reports
}

// Join reads Zeek logs in any order and mix (conn, http, ssl and dns, TSV
// or JSON, gzipped or not) and hands sink one flow record per conn.log
// row, with what the other logs say about the same connection (joined by
// uid): the TLS server name or HTTP Host (else the DNS query) as its name,
// DNS answers, the first HTTP request's target, the destination asked of a
// proxy (CONNECT or an absolute URI), and the bursts of requests inside
// the connection (http.log requests, dns.log queries, ssl.log handshakes,
// grouped as the flow builder groups payload: docs/format/flows.md).
//
// A row of an http, ssl or dns log whose connection no conn.log row has
// still gives a record of what it says (its time and endpoints); when
// conn logs were given, such rows are reported as damage. Malformed rows,
// a header that lacks a needed field and a file cut short (a truncated
// gzip member) are reported as damage after every valid row was used.
// Records handed to sink are valid during the call.
func Join(paths []string, sink func(*flow.Record)) (Report, error) {
	return JoinDNS(paths, sink, nil)
}

// DNSQuestion is one dns.log row's question: who asked, the name and its
// type (qtype_name, else qtype's number; empty when the log has neither).
type DNSQuestion struct {
	Client      netip.Addr
	Name, QType string
}

// JoinDNS is Join that also hands dns every dns.log row's question, as
// it is read (before the records): what a flow record has no field for
// (the query type; the record keeps one name a connection).
func JoinDNS(paths []string, sink func(*flow.Record), dns func(DNSQuestion)) (Report, error) {
	var rp Report
	extras := map[string]*extra{}
	type file struct {
		path string
		kind Kind
	}
	var conns []file
	// First the logs that describe connections, then the conn logs, so
	// each conn row meets everything said about it.
	for _, path := range paths {
		if path == "-" {
			conns = append(conns, file{path, KindUnknown})
			continue
		}
		kind, err := readLog(path, &rp, func(row *Row) bool {
			if row.Kind == KindConn {
				return false
			}
			if dns != nil && row.Kind == KindDNS && len(row.Query) > 0 && row.Orig.IsValid() {
				dns(DNSQuestion{Client: row.Orig, Name: string(row.Query), QType: string(row.QType)})
			}
			addExtra(extras, row, path)
			return true
		})
		if err != nil {
			return rp, err
		}
		switch kind {
		case KindConn:
			conns = append(conns, file{path, kind})
		case KindOther:
			rp.Unused = append(rp.Unused, fmt.Sprintf("%s: not a conn, http, ssl or dns log: not used", path))
		}
	}
	haveConn := len(conns) > 0
	// Proxies whose clients' requests are in the logs: their own
	// connections are relayed, and hunt tells them apart. Where only a
	// proxy's side is logged (a sensor outside it), the client the proxy
	// named in X-Forwarded-For is the connection's originator.
	// (A client whose own requests to a proxy are logged is seen there:
	// attributing the proxy's connection to it too would count it twice.)
	proxies, clients := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for _, x := range extras {
		if x.proxy != "" {
			proxies[x.resp], clients[x.orig] = true, true
		}
	}
	attribute := func(x *extra, rec *flow.Record) {
		if x.client.IsValid() && x.client != rec.Orig.Unmap() && !proxies[rec.Orig.Unmap()] && !clients[x.client] {
			rec.Orig = x.client
			rp.Forwarded++
		}
	}
	var noUID []string
	for _, f := range conns {
		uids := false
		_, err := readLog(f.path, &rp, func(row *Row) bool {
			if row.Kind != KindConn {
				addExtra(extras, row, f.path) // a mixed stream: joins later rows only
				return true
			}
			rec := &row.Conn
			if len(row.UID) > 0 {
				uids = true
				if x := extras[string(row.UID)]; x != nil {
					x.used = true
					x.apply(rec)
					attribute(x, rec)
				}
			}
			sink(rec)
			return true
		})
		if err != nil {
			return rp, err
		}
		if !uids && len(extras) > 0 {
			noUID = append(noUID, f.path)
		}
	}
	for _, p := range noUID {
		rp.damage(1, "%s: conn rows have no uid: http, ssl and dns rows cannot be joined to them", p)
	}

	// Rows whose connection no conn.log row had: a record of their own.
	var orphans []*extra
	for _, x := range extras {
		if !x.used {
			orphans = append(orphans, x)
		}
	}
	slices.SortFunc(orphans, func(a, b *extra) int { return cmp.Or(cmp.Compare(a.ts, b.ts), strings.Compare(a.where, b.where)) })
	var lost int
	for _, x := range orphans {
		if !x.orig.IsValid() || !x.resp.IsValid() {
			lost++
			continue
		}
		var rec flow.Record
		rec.First, rec.Last = time.Unix(0, x.ts).UTC(), time.Unix(0, max(x.last, x.ts)).UTC()
		rec.Proto, rec.Orig, rec.Resp, rec.OrigPort, rec.RespPort = x.proto, x.orig, x.resp, x.origPort, x.respPort
		// An HTTP, TLS or DNS exchange took a packet each way at least.
		rec.OrigPkts, rec.RespPkts, rec.Partial = 1, 1, true
		if x.proto == 6 {
			rec.OrigFlags, rec.RespFlags = 0x18, 0x18
		}
		x.apply(&rec)
		attribute(x, &rec)
		sink(&rec)
	}
	if haveConn && len(orphans) > 0 {
		rp.damage(len(orphans), "%d connections named by http, ssl or dns rows are in no conn log given (open when the conn logs end, or logs that do not belong together): each used on its own", len(orphans))
		for _, x := range orphans[:min(len(orphans), 3)] {
			rp.damage(0, "%s: uid in no conn log", x.where)
		}
	}
	if lost > 0 {
		rp.damage(0, "%d of them had no readable endpoints and were dropped", lost)
	}
	return rp, nil
}

// readLog reads one log file, handing rows to use until it returns false.
// It returns the kind of the file's first row. Damage is reported, read
// errors after the first row end the file without failing the join.
func readLog(path string, rp *Report, use func(*Row) bool) (Kind, error) {
	r, err := OpenFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return KindUnknown, err
		}
		rp.damage(1, "%s: %v", path, err)
		return KindUnknown, nil
	}
	defer r.Close()
	var row Row
	first := KindUnknown
	// Identical reasons (a header without a needed field) are named once.
	type agg struct {
		first, last int64
		n           int
	}
	var reasons map[string]*agg
	var order []string
	defer func() {
		for _, reason := range order {
			a := reasons[reason]
			if a.n == 1 {
				rp.damage(1, "%s: line %d: %s", path, a.first, reason)
			} else {
				rp.damage(a.n, "%s: lines %d-%d (%d rows): %s", path, a.first, a.last, a.n, reason)
			}
		}
	}()
	for {
		err := r.NextRow(&row)
		if err == io.EOF {
			return first, nil
		}
		var re *RowError
		if errors.As(err, &re) {
			if reasons == nil {
				reasons = map[string]*agg{}
			}
			a := reasons[re.Reason]
			if a == nil {
				if len(order) >= maxPlaces {
					rp.damage(1, "%s: line %d: %s", path, re.Line, re.Reason)
					continue
				}
				a = &agg{first: re.Line}
				reasons[re.Reason] = a
				order = append(order, re.Reason)
			}
			a.last = re.Line
			a.n++
			continue
		}
		if err != nil {
			rp.damage(1, "%s: cut short after line %d (%v): the rows before it were used", path, r.line, unwrapAll(err))
			return first, nil
		}
		if first == KindUnknown {
			first = row.Kind
			if first == KindOther {
				return first, nil
			}
		}
		if !use(&row) {
			return first, nil
		}
	}
}

func unwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// addExtra records what an http, ssl or dns row says about its connection.
func addExtra(extras map[string]*extra, row *Row, path string) {
	switch row.Kind {
	case KindHTTP, KindSSL, KindDNS:
	default:
		return
	}
	uid := string(row.UID)
	x := extras[uid]
	ts := row.TS.UnixNano()
	if x == nil || uid == "" {
		x = &extra{ts: ts, last: ts, orig: row.Orig, resp: row.Resp, origPort: row.OrigPort, respPort: row.RespPort,
			proto: row.Proto, where: fmt.Sprintf("%s:%d", path, row.Line)}
		if uid != "" {
			extras[uid] = x
		} else {
			uid = x.where // a row without a uid stands alone
			extras[uid] = x
		}
	}
	x.kinds |= 1 << row.Kind
	x.ts, x.last = min(x.ts, ts), max(x.last, ts)
	if len(x.times) < maxTimes {
		x.times = append(x.times, ts)
	} else if x.more < 1<<32-1 {
		x.more++
	}
	switch row.Kind {
	case KindSSL:
		if n, ok := flow.CleanName(row.ServerName); ok {
			x.name, x.nameSrc = n, flow.NameSNI
		}
		if x.tls == (flow.TLSCert{}) { // the first row that says something
			x.tls = sslCert(row)
		}
	case KindHTTP:
		if row.Client.IsValid() {
			x.client = row.Client
		}
		if len(row.Method) == 0 || x.target != "" && ts >= x.firstNS {
			break
		}
		// The request line and Host header as the client sent them, read
		// by the flow builder's parser: one reading of targets and proxies.
		var req flow.HTTPRequest
		b := make([]byte, 0, len(row.Method)+len(row.URI)+len(row.Host)+32)
		b = append(append(append(b, row.Method...), ' '), row.URI...)
		b = append(b, " HTTP/1.1\r\n"...)
		if len(row.Host) > 0 {
			b = append(append(append(b, "Host: "...), row.Host...), "\r\n"...)
		}
		b = append(b, "\r\n"...)
		if flow.ParseHTTPRequest(b, &req); req.Host != "" {
			x.target, x.proxy, x.firstNS = req.Target, req.Proxy, ts
			if x.nameSrc < flow.NameHTTP {
				x.name, x.nameSrc = req.Host, flow.NameHTTP
			}
		}
	case KindDNS:
		if x.nameSrc == flow.NameNone {
			if n, ok := flow.CleanName(row.Query); ok {
				x.name, x.nameSrc = n, flow.NameDNS
			}
		}
		for _, a := range row.Answers {
			if len(x.answers) < flow.MaxAnswers && !slices.Contains(x.answers, a) {
				x.answers = append(x.answers, a)
			}
		}
	}
}

// apply adds what the rows said to a connection's record.
func (x *extra) apply(rec *flow.Record) {
	if x.name != "" && x.nameSrc >= rec.NameSource {
		rec.Name, rec.NameSource = x.name, x.nameSrc
	}
	if len(x.answers) > 0 {
		rec.Answers = append(rec.Answers[:0:0], x.answers...)
	}
	rec.HTTPTarget, rec.ProxyDest = x.target, x.proxy
	if x.kinds&(1<<KindSSL) != 0 {
		rec.TLS = x.tls
	}
	rec.Bursts = burstsOf(x.times, x.more, rec.First.UnixNano(), rec.Last.UnixNano())
}

// Zeek's validation_status values (OpenSSL's verify messages) that say no
// public CA vouched for the server's leaf.
const (
	zeekSelfSigned        = "self signed certificate"
	zeekSelfSignedInChain = "self signed certificate in certificate chain"
	zeekNoLocalIssuer     = "unable to get local issuer certificate"
	zeekNoIssuer          = "unable to get issuer certificate"
)

// sslCert reads what an ssl.log row says of the handshake as flow format
// 3's facts: no server_name is no SNI; validation_status (else equal
// subject and issuer) says self-signed; a chain ending in an untrusted
// self-signed root or an issuer not found is a private CA, as when the
// packets show an issuer the server did not send.
func sslCert(row *Row) flow.TLSCert {
	var c flow.TLSCert
	if len(row.ServerName) == 0 {
		c.Flags |= flow.TLSNoSNI
	}
	status := string(row.Validation)
	if len(row.Subject) == 0 && len(row.Issuer) == 0 && status == "" {
		return c // no certificate seen (TLS 1.3, or neither script nor field)
	}
	c.Flags |= flow.TLSCertSeen
	c.SubjectCN, c.IssuerCN = dnCN(row.Subject), dnCN(row.Issuer)
	switch {
	case status == zeekSelfSigned:
		c.Flags |= flow.TLSSelfSigned
	case status == zeekSelfSignedInChain || status == zeekNoLocalIssuer || status == zeekNoIssuer:
		c.Flags |= flow.TLSIssuerAbsent
	case status == "" && len(row.Subject) > 0 && string(row.Subject) == string(row.Issuer):
		c.Flags |= flow.TLSSelfSigned
	}
	return c
}

// dnCN returns the first CN of a distinguished name as Zeek writes it
// (RFC 2253: "CN=x,OU=y,O=z", commas and other specials escaped with a
// backslash), cleaned as the flow builder cleans certificate names.
func dnCN(dn []byte) string {
	for i := 0; i < len(dn); {
		for i < len(dn) && dn[i] == ' ' { // "O=x, CN=y" as some exporters write it
			i++
		}
		// At the start of an attribute.
		if i+3 <= len(dn) && (dn[i] == 'C' || dn[i] == 'c') && (dn[i+1] == 'N' || dn[i+1] == 'n') && dn[i+2] == '=' {
			var v []byte
			for j := i + 3; j < len(dn) && len(v) < 4*flow.MaxCN; j++ {
				switch {
				case dn[j] == ',' || dn[j] == '+':
					return flow.CleanCN(v)
				case dn[j] != '\\' || j+1 == len(dn):
					v = append(v, dn[j])
				case j+3 < len(dn) && dn[j+1] == 'x' && isHex(dn[j+2]) && isHex(dn[j+3]):
					// Zeek's own escape of a byte it will not print.
					v = append(v, unhex(dn[j+2])<<4|unhex(dn[j+3]))
					j += 3
				case j+2 < len(dn) && isHex(dn[j+1]) && isHex(dn[j+2]):
					// RFC 2253's escape of a byte by its hex pair.
					v = append(v, unhex(dn[j+1])<<4|unhex(dn[j+2]))
					j += 2
				default:
					v = append(v, dn[j+1])
					j++
				}
			}
			return flow.CleanCN(v)
		}
		// Skip to the next unescaped comma or plus.
		for i < len(dn) && dn[i] != ',' && dn[i] != '+' {
			if dn[i] == '\\' {
				i++
			}
			i++
		}
		i++
	}
	return ""
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// burstsOf groups request times (ns) into bursts as the flow builder
// groups payload: a request after flow.BurstIdle without one starts a
// burst. Starts are ms after first, within [first, last].
func burstsOf(times []int64, more uint32, first, last int64) flow.Bursts {
	var bu flow.Bursts
	if len(times) == 0 {
		return bu
	}
	slices.Sort(times)
	var starts []uint32
	prev := int64(0)
	for i, t := range times {
		if i > 0 && t-prev < int64(flow.BurstIdle) {
			prev = t
			continue
		}
		prev = t
		off := min(max(t, first), max(last, first)) - first
		starts = append(starts, uint32(min(off/int64(time.Millisecond), 1<<32-1)))
	}
	bu.N = uint32(min(uint64(len(starts))+uint64(more), 1<<32-1))
	if len(starts) > flow.MaxBursts {
		half := flow.MaxBursts / 2
		starts = append(starts[:half:half], starts[len(starts)-half:]...)
		bu.Head = uint8(half)
	} else {
		bu.Head = uint8(len(starts))
	}
	bu.At = starts
	return bu
}
