// Package zeek reads Zeek logs into flow records: conn.log rows become
// records, and http.log, ssl.log and dns.log rows, joined to them by uid,
// add names, HTTP targets, proxied destinations and the request series
// inside each connection (join.go). Logs are TSV with #fields headers
// (several header blocks per file are fine) or JSON lines with either
// `id.orig_h` or `id_orig_h` keys, gzip-compressed or not.
//
// A malformed row is reported as a *RowError and skipped; the next call to
// Next goes on with the following row, so one bad line never ends a hunt.
package zeek

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

// maxLine bounds one log line; longer lines are skipped as malformed.
const maxLine = 1 << 20

// RowError reports a row that was skipped.
type RowError struct {
	Line   int64 // 1-based line number in the (decompressed) input
	Reason string
}

func (e *RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// column indexes a log field we read.
type column int

const (
	colTS column = iota
	colOrigH
	colOrigP
	colRespH
	colRespP
	colProto
	colDuration
	colOrigBytes
	colRespBytes
	colState
	colHistory
	colOrigPkts
	colOrigIPBytes
	colRespPkts
	colRespIPBytes
	colUID
	colPath // JSON "_path", as some exporters write
	colMethod
	colHost
	colURI
	colServerName
	colCipher
	colQuery
	colQType
	colAnswers
	colProxied
	colValidation
	colSubject
	colIssuer
	nCols
)

// fieldCol maps a field name (both key styles) to its column.
var fieldCol = map[string]column{
	"ts": colTS, "id.orig_h": colOrigH, "id.orig_p": colOrigP, "id.resp_h": colRespH, "id.resp_p": colRespP,
	"id_orig_h": colOrigH, "id_orig_p": colOrigP, "id_resp_h": colRespH, "id_resp_p": colRespP,
	"proto": colProto, "duration": colDuration, "orig_bytes": colOrigBytes, "resp_bytes": colRespBytes,
	"conn_state": colState, "history": colHistory, "orig_pkts": colOrigPkts, "orig_ip_bytes": colOrigIPBytes,
	"resp_pkts": colRespPkts, "resp_ip_bytes": colRespIPBytes,
	"uid": colUID, "_path": colPath, "method": colMethod, "host": colHost, "uri": colURI,
	"server_name": colServerName, "cipher": colCipher, "query": colQuery, "qtype": colQType, "qtype_name": colQType,
	"answers": colAnswers, "proxied": colProxied,
	"validation_status": colValidation, "subject": colSubject, "issuer": colIssuer,
}

// Kind is the log a row belongs to.
type Kind uint8

// Log kinds: what the #path header or the JSON _path says, else what the
// row's fields show.
const (
	KindUnknown Kind = iota
	KindConn
	KindHTTP
	KindSSL
	KindDNS
	KindOther // a log hunt has no use for (x509, files, stats...)
)

func (k Kind) String() string {
	return [...]string{"unknown", "conn", "http", "ssl", "dns", "other"}[k]
}

func kindOfPath(p []byte) Kind {
	switch string(p) {
	case "conn":
		return KindConn
	case "http":
		return KindHTTP
	case "ssl":
		return KindSSL
	case "dns":
		return KindDNS
	case "":
		return KindUnknown
	}
	return KindOther
}

// kindOfFields guesses a row's log from the fields it has (a bitmap of
// columns present).
func kindOfFields(has uint64) Kind {
	in := func(c column) bool { return has&(1<<c) != 0 }
	switch {
	case in(colMethod) || in(colURI):
		return KindHTTP
	case in(colServerName) || in(colCipher):
		return KindSSL
	case in(colQuery) || in(colQType):
		return KindDNS // before conn: dns.log has a proto field too
	case in(colState) || in(colHistory) || in(colOrigIPBytes) || in(colProto):
		return KindConn
	case in(colTS):
		return KindOther
	}
	return KindUnknown
}

// Reader reads log rows.
type Reader struct {
	br     *bufio.Reader
	closer io.Closer
	line   int64
	// TSV layout from the last #fields header: which column each field
	// position feeds (nCols = unused), and the columns present.
	tsvCols []column
	tsvHas  uint64
	tsvKind Kind // from #path, else from the fields
	sep     byte
	setSep  byte
	unset   []byte
	empty   []byte
	vals    [nCols][]byte
	has     uint64 // columns present in the current row
	isJSON  bool   // the current row is a JSON object
	long    []byte
}

// NewReader reads conn.log rows from r, decompressing gzip transparently.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	zr := &Reader{sep: '\t', setSep: ',', unset: []byte("-"), empty: []byte("(empty)")}
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		zr.closer = gz
		br = bufio.NewReaderSize(gz, 256<<10)
	}
	zr.br = br
	return zr, nil
}

// OpenFile opens a conn.log file ("-" is standard input).
func OpenFile(path string) (*Reader, error) {
	if path == "-" {
		return NewReader(os.Stdin)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.closer != nil {
		r.closer = multiCloser{r.closer, f}
	} else {
		r.closer = f
	}
	return r, nil
}

type multiCloser []io.Closer

func (m multiCloser) Close() error {
	var errs []error
	for _, c := range m {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Close releases the input.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// readLine returns the next line without its newline; the slice is valid
// until the next call.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// A long line: collect it, bounded.
		r.long = append(r.long[:0], line...)
		for err == bufio.ErrBufferFull {
			line, err = r.br.ReadSlice('\n')
			if len(r.long) < maxLine {
				r.long = append(r.long, line...)
			}
		}
		line = r.long
	}
	if len(line) == 0 && err != nil {
		return nil, err
	}
	r.line++
	line = bytes.TrimRight(line, "\r\n")
	if err == io.EOF {
		err = nil
	}
	return line, err
}

// Next reads the next row into rec as a conn.log row. It returns io.EOF
// at the end, and a *RowError for a row it skipped (call Next again to go
// on).
func (r *Reader) Next(rec *flow.Record) error {
	if err := r.nextFields(); err != nil {
		return err
	}
	return r.fill(rec)
}

// Row is one log row. Fields that are byte slices are valid until the
// next call to NextRow.
type Row struct {
	Kind Kind
	Line int64
	// Conn is a conn.log row as a flow record.
	Conn flow.Record
	// UID names the connection (every kind).
	UID []byte
	// The time and endpoints of an http, ssl or dns row (the zero Addr
	// when absent or unreadable).
	TS                 time.Time
	Orig, Resp         netip.Addr
	OrigPort, RespPort uint16
	Proto              uint8
	// http.log, and the client a proxy named in a forwarding header
	// (the last address of X-Forwarded-For, X-Real-IP or Client-IP in the
	// `proxied` field: what the proxy itself added)
	Method, Host, URI []byte
	Client            netip.Addr
	// ssl.log: the SNI, and what Zeek said of the server's certificate
	// (validation_status with the validate-certs policy; subject and
	// issuer, the leaf's distinguished names, before Zeek 4).
	ServerName                  []byte
	Validation, Subject, Issuer []byte
	// dns.log: the query, its type (qtype_name, else the number) and the
	// addresses its answers gave.
	Query, QType []byte
	Answers      []netip.Addr
}

// NextRow reads the next row of any log. It returns io.EOF at the end, and
// a *RowError for a row it skipped (call NextRow again to go on). Rows of
// logs hunt does not read come back as KindOther, unread.
func (r *Reader) NextRow(row *Row) error {
	if err := r.nextFields(); err != nil {
		return err
	}
	row.Line = r.line
	row.Kind = r.tsvKind
	if r.isJSON {
		if row.Kind = kindOfPath(r.vals[colPath]); row.Kind == KindUnknown {
			row.Kind = kindOfFields(r.has)
		}
	}
	row.UID = r.vals[colUID]
	switch row.Kind {
	case KindConn:
		return r.fill(&row.Conn)
	case KindHTTP, KindSSL, KindDNS:
		return r.fillOther(row)
	case KindUnknown:
		return &RowError{r.line, "no field says which log the row belongs to"}
	}
	return nil
}

// nextFields reads lines up to the next row and splits it into r.vals.
func (r *Reader) nextFields() error {
	for {
		line, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			return fmt.Errorf("line %d: %w", r.line+1, err)
		}
		if len(line) == 0 {
			continue
		}
		if len(line) >= maxLine {
			return &RowError{r.line, "line too long"}
		}
		switch line[0] {
		case '#':
			r.header(line)
			continue
		case '{':
			r.isJSON = true
			return r.jsonRow(line)
		}
		r.isJSON = false
		if r.tsvCols == nil {
			return &RowError{r.line, "row before any #fields header"}
		}
		return r.tsvRow(line)
	}
}

func (r *Reader) header(line []byte) {
	key, rest, _ := bytes.Cut(line, []byte{r.sep})
	switch string(key) {
	case "#separator":
		r.tsvKind = KindUnknown // a new header block (concatenated logs)
		// "#separator \x09": the one header written with a space.
		if v, ok := bytes.CutPrefix(line, []byte("#separator ")); ok {
			if s, err := strconv.Unquote(`"` + string(v) + `"`); err == nil && len(s) == 1 {
				r.sep = s[0]
			}
		}
	case "#set_separator":
		if len(rest) == 1 {
			r.setSep = rest[0]
		}
	case "#path":
		r.tsvKind = kindOfPath(rest)
	case "#unset_field":
		r.unset = append([]byte(nil), rest...)
	case "#empty_field":
		r.empty = append([]byte(nil), rest...)
	case "#fields":
		r.tsvCols = r.tsvCols[:0]
		r.tsvHas = 0
		for f := range bytes.SplitSeq(rest, []byte{r.sep}) {
			c, ok := fieldCol[string(f)]
			if !ok {
				c = nCols
			} else {
				r.tsvHas |= 1 << c
			}
			r.tsvCols = append(r.tsvCols, c)
		}
		if r.tsvKind == KindUnknown {
			r.tsvKind = kindOfFields(r.tsvHas)
		}
	}
}

func (r *Reader) tsvRow(line []byte) error {
	for i := range r.vals {
		r.vals[i] = nil
	}
	r.has = r.tsvHas
	i := 0
	for len(line) > 0 || i == 0 {
		f := line
		if j := bytes.IndexByte(line, r.sep); j >= 0 {
			f, line = line[:j], line[j+1:]
		} else {
			line = nil
		}
		if i < len(r.tsvCols) {
			if c := r.tsvCols[i]; c < nCols && !bytes.Equal(f, r.unset) && !bytes.Equal(f, r.empty) {
				r.vals[c] = f
			}
		}
		i++
		if line == nil {
			break
		}
	}
	if i < len(r.tsvCols) {
		return &RowError{r.line, fmt.Sprintf("%d fields, header has %d", i, len(r.tsvCols))}
	}
	return nil
}

// jsonRow reads a flat JSON object: string, number, boolean and null
// values; arrays and objects are skipped.
func (r *Reader) jsonRow(line []byte) error {
	for i := range r.vals {
		r.vals[i] = nil
	}
	r.has = 0
	p := 1
	for {
		p = skipWS(line, p)
		if p >= len(line) {
			return &RowError{r.line, "unterminated JSON object"}
		}
		if line[p] == '}' {
			break
		}
		if line[p] == ',' {
			p++
			continue
		}
		if line[p] != '"' {
			return &RowError{r.line, "bad JSON key"}
		}
		end := stringEnd(line, p+1)
		if end < 0 {
			return &RowError{r.line, "unterminated JSON string"}
		}
		key := line[p+1 : end]
		p = skipWS(line, end+1)
		if p >= len(line) || line[p] != ':' {
			return &RowError{r.line, "missing ':' in JSON"}
		}
		p = skipWS(line, p+1)
		if p >= len(line) {
			return &RowError{r.line, "missing JSON value"}
		}
		var val []byte
		switch c := line[p]; {
		case c == '"':
			e := stringEnd(line, p+1)
			if e < 0 {
				return &RowError{r.line, "unterminated JSON string"}
			}
			val, p = line[p+1:e], e+1
		case c == '[' || c == '{':
			e := skipNested(line, p)
			if e < 0 {
				return &RowError{r.line, "unterminated JSON array"}
			}
			if c == '[' {
				val = line[p:e] // kept whole; answers are read from it
			}
			p = e
		default:
			e := p
			for e < len(line) && line[e] != ',' && line[e] != '}' && line[e] != ' ' {
				e++
			}
			val, p = line[p:e], e
			if string(val) == "null" {
				val = nil
			}
		}
		if c, ok := fieldCol[string(key)]; ok {
			r.has |= 1 << c
			if val != nil {
				r.vals[c] = val
			}
		}
	}
	return nil
}

func skipWS(b []byte, p int) int {
	for p < len(b) && (b[p] == ' ' || b[p] == '\t') {
		p++
	}
	return p
}

// stringEnd returns the index of the closing quote of a string whose body
// starts at p, or -1.
func stringEnd(b []byte, p int) int {
	for ; p < len(b); p++ {
		switch b[p] {
		case '\\':
			p++
		case '"':
			return p
		}
	}
	return -1
}

// skipNested returns the index after the array or object starting at p.
func skipNested(b []byte, p int) int {
	depth := 0
	for ; p < len(b); p++ {
		switch b[p] {
		case '"':
			e := stringEnd(b, p+1)
			if e < 0 {
				return -1
			}
			p = e
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				return p + 1
			}
		}
	}
	return -1
}

// fillOther reads an http, ssl or dns row. Only the time is required:
// endpoints that do not parse are left zero (the row can still be joined
// by uid).
func (r *Reader) fillOther(row *Row) error {
	v := &r.vals
	ts, ok := parseTime(v[colTS])
	if !ok {
		return &RowError{r.line, fmt.Sprintf("bad ts %q", clip(v[colTS]))}
	}
	row.TS = ts
	row.Orig, _ = parseAddr(v[colOrigH])
	row.Resp, _ = parseAddr(v[colRespH])
	op, _ := parseUint(v[colOrigP], 65535)
	rp, _ := parseUint(v[colRespP], 65535)
	row.OrigPort, row.RespPort = uint16(op), uint16(rp)
	row.Proto = 6 // http and ssl run over TCP; dns says
	if string(v[colProto]) == "udp" {
		row.Proto = 17
	}
	row.Method, row.Host, row.URI = v[colMethod], v[colHost], v[colURI]
	row.ServerName, row.Query = v[colServerName], v[colQuery]
	row.Validation, row.Subject, row.Issuer = nil, nil, nil
	if row.Kind == KindSSL {
		row.Validation, row.Subject, row.Issuer = v[colValidation], v[colSubject], v[colIssuer]
	}
	row.Client = netip.Addr{}
	if row.Kind == KindHTTP && v[colProxied] != nil {
		row.Client = r.forwardedFor(v[colProxied])
	}
	row.Answers, row.QType = row.Answers[:0], nil
	if row.Kind == KindDNS {
		row.Answers = r.answers(v[colAnswers], row.Answers)
		row.QType = v[colQType]
	}
	return nil
}

// answers reads the addresses among a dns.log answers vector: TSV joined
// by the set separator, or a JSON array of strings. Names and TTLs in the
// vector are skipped; at most flow.MaxAnswers are kept.
func (r *Reader) answers(b []byte, out []netip.Addr) []netip.Addr {
	sep := r.setSep
	if len(b) > 0 && b[0] == '[' {
		b, sep = bytes.Trim(b, "[]"), ','
	}
	for len(b) > 0 && len(out) < flow.MaxAnswers {
		f := b
		if i := bytes.IndexByte(b, sep); i >= 0 {
			f, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		f = bytes.Trim(bytes.TrimSpace(f), `"`)
		if a, err := parseAddr(f); err == nil && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// forwardedFor reads the client a proxy named in Zeek's http.log
// `proxied` set ("X-FORWARDED-FOR -> 10.0.0.111, 10.0.0.7"): the last
// address of the header, the one the last proxy added (earlier ones are
// whatever the client sent).
func (r *Reader) forwardedFor(b []byte) netip.Addr {
	var elems [][]byte
	if len(b) > 0 && b[0] == '[' { // a JSON array of strings
		elems = bytes.Split(bytes.Trim(b, "[]"), []byte(`","`))
	} else {
		elems = bytes.Split(b, []byte{r.setSep})
	}
	var client netip.Addr
	for _, e := range elems {
		name, val, ok := bytes.Cut(bytes.Trim(bytes.TrimSpace(e), `"`), []byte(" -> "))
		if !ok {
			continue
		}
		switch string(bytes.ToUpper(bytes.TrimSpace(name))) {
		case "X-FORWARDED-FOR", "X-REAL-IP", "CLIENT-IP":
		default:
			continue
		}
		// A comma inside a set element is escaped in TSV.
		val = bytes.ReplaceAll(val, []byte(`\x2c`), []byte{','})
		for _, part := range bytes.Split(val, []byte{','}) {
			if a, err := parseAddr(bytes.TrimSpace(part)); err == nil {
				client = a.Unmap()
			}
		}
	}
	return client
}

// fill turns the collected column values into a record.
func (r *Reader) fill(rec *flow.Record) error {
	v := &r.vals
	*rec = flow.Record{}
	ts, ok := parseTime(v[colTS])
	if !ok {
		return &RowError{r.line, fmt.Sprintf("bad ts %q", clip(v[colTS]))}
	}
	var err error
	if rec.Orig, err = parseAddr(v[colOrigH]); err != nil {
		return &RowError{r.line, "bad id.orig_h: " + err.Error()}
	}
	if rec.Resp, err = parseAddr(v[colRespH]); err != nil {
		return &RowError{r.line, "bad id.resp_h: " + err.Error()}
	}
	op, ok1 := parseUint(v[colOrigP], 65535)
	rp, ok2 := parseUint(v[colRespP], 65535)
	if !ok1 || !ok2 {
		return &RowError{r.line, "bad port"}
	}
	rec.OrigPort, rec.RespPort = uint16(op), uint16(rp)
	switch string(v[colProto]) {
	case "tcp":
		rec.Proto = 6
	case "udp":
		rec.Proto = 17
	case "icmp":
		rec.Proto = 1
		if rec.Orig.Is6() && !rec.Orig.Is4In6() {
			rec.Proto = 58
		}
	default:
		return &RowError{r.line, fmt.Sprintf("bad proto %q", clip(v[colProto]))}
	}
	rec.First = ts
	rec.Last = ts
	if d := v[colDuration]; d != nil {
		sec, err := strconv.ParseFloat(string(d), 64)
		if err != nil || sec < 0 || sec > 1e9 || math.IsNaN(sec) {
			return &RowError{r.line, fmt.Sprintf("bad duration %q", clip(d))}
		}
		rec.Last = ts.Add(time.Duration(sec * 1e9))
	}
	counts := [...]struct {
		c   column
		dst *uint64
	}{
		{colOrigBytes, &rec.OrigData}, {colRespBytes, &rec.RespData}, {colOrigPkts, &rec.OrigPkts},
		{colRespPkts, &rec.RespPkts}, {colOrigIPBytes, &rec.OrigBytes}, {colRespIPBytes, &rec.RespBytes},
	}
	for _, c := range counts {
		if v[c.c] == nil {
			continue
		}
		n, ok := parseUint(v[c.c], math.MaxInt64)
		if !ok {
			return &RowError{r.line, fmt.Sprintf("bad count %q", clip(v[c.c]))}
		}
		*c.dst = n
	}
	if rec.Proto == 6 {
		rec.OrigFlags, rec.RespFlags = tcpFlags(v[colHistory], v[colState])
	}
	rec.Partial = string(v[colState]) == "S1" || string(v[colState]) == "OTH"
	return nil
}

func clip(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// parseTime reads Zeek's epoch seconds with a fraction (or an RFC 3339
// time, as some JSON exporters write).
func parseTime(b []byte) (time.Time, bool) {
	if len(b) == 0 {
		return time.Time{}, false
	}
	if bytes.IndexByte(b, 'T') > 0 {
		t, err := time.Parse(time.RFC3339Nano, string(b))
		return t.UTC(), err == nil
	}
	var sec, frac, scale int64 = 0, 0, 1
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if sec > 1e11 {
			return time.Time{}, false
		}
		sec = sec*10 + int64(b[i]-'0')
	}
	if i == 0 {
		return time.Time{}, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if scale < 1e9 {
				frac = frac*10 + int64(b[i]-'0')
				scale *= 10
			}
		}
	}
	if i != len(b) {
		return time.Time{}, false
	}
	return time.Unix(sec, frac*(1e9/scale)).UTC(), true
}

func parseUint(b []byte, limit uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > limit {
			return 0, false
		}
	}
	return n, true
}

// parseAddr parses IPv4 without allocating and falls back to netip for IPv6.
func parseAddr(b []byte) (netip.Addr, error) {
	var a [4]byte
	part, n, digits := 0, 0, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9' && digits < 3:
			n = n*10 + int(c-'0')
			digits++
		case c == '.' && digits > 0 && part < 3 && n <= 255:
			a[part] = byte(n)
			part++
			n, digits = 0, 0
		default:
			return netip.ParseAddr(string(b))
		}
	}
	if part != 3 || digits == 0 || n > 255 {
		return netip.ParseAddr(string(b))
	}
	a[3] = byte(n)
	return netip.AddrFrom4(a), nil
}

// tcpFlags rebuilds each side's flag union from Zeek's history letters
// (upper case: originator), or from conn_state when history is absent.
func tcpFlags(hist, state []byte) (o, r uint8) {
	const fin, syn, rst, psh, ack = 0x01, 0x02, 0x04, 0x08, 0x10
	for _, c := range hist {
		var f uint8
		switch c | 0x20 {
		case 's':
			f = syn
		case 'h':
			f = syn | ack
		case 'a':
			f = ack
		case 'd':
			f = psh | ack
		case 'f':
			f = fin
		case 'r':
			f = rst
		}
		if c >= 'A' && c <= 'Z' {
			o |= f
		} else {
			r |= f
		}
	}
	if len(hist) > 0 {
		return o, r
	}
	switch string(state) {
	case "S0":
		return syn, 0
	case "REJ":
		return syn, rst | ack
	case "S1":
		return syn | ack, syn | ack
	case "SF", "S2", "S3":
		return syn | ack | fin, syn | ack | fin
	case "RSTO":
		return syn | ack | rst, syn | ack
	case "RSTR":
		return syn | ack, syn | ack | rst
	}
	return 0, 0
}
