package flow

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"slices"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/reczstd"
)

// Flow file constants (docs/format/flows.md).
const (
	FileVersion   = 3
	fileVersion1  = 1
	fileVersion2  = 2
	fileHeaderLen = 44
	maxAnswers    = 32
	maxFileBody   = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of DecodeFile.
var (
	ErrNotFlowFile = errors.New("not an nwhealth flow file")
	ErrFileVersion = errors.New("unsupported flow file version")
	ErrDamaged     = errors.New("flow file damaged")
)

// EncodeFile serialises records (sorted here by first time).
func EncodeFile(recs []*Record, enc *zstd.Encoder) []byte {
	var fw FileWriter
	for _, r := range recs {
		fw.Add(r)
	}
	return fw.Encode(enc)
}

// FileWriter gathers records for one flow file, encoded as they arrive:
// a long-running writer keeps ~100 bytes per flow instead of the record.
type FileWriter struct {
	buf         []byte
	recs        []recRef
	first, last int64
}

// bodyShare: the record encoder writes a body when its matches cover at
// least 1 - 1/bodyShare of it.
const bodyShare = 4

func byFirst(a, b recRef) int { return cmp.Compare(a.first, b.first) }

type recRef struct {
	first, last int64
	off, end    int
}

// Add appends a copy of r.
func (fw *FileWriter) Add(r *Record) {
	off := len(fw.buf)
	fw.buf = appendRecord(fw.buf, r)
	fw.note(r.First.UnixNano(), r.Last.UnixNano(), off, len(fw.buf))
}

// Size is the bytes of the records added, encoded.
func (fw *FileWriter) Size() int { return len(fw.buf) }

// Len is the number of records added.
func (fw *FileWriter) Len() int { return len(fw.recs) }

// Encode returns the flow file, records sorted by first time.
func (fw *FileWriter) Encode(enc *zstd.Encoder) []byte {
	if !slices.IsSortedFunc(fw.recs, byFirst) {
		slices.SortStableFunc(fw.recs, byFirst)
	}
	body := make([]byte, 0, len(fw.buf))
	// Records of a flood of new flows look alike: the record encoder,
	// which compares each with the one before, compresses them for a
	// fraction of what the general encoder costs; other bodies go to the
	// general encoder (bodyShare, below).
	var rz reczstd.Encoder
	for _, r := range fw.recs {
		start := len(body)
		body = append(body, fw.buf[r.off:r.end]...)
		rz.Add(body, start, 0)
	}
	recs, first, last := len(fw.recs), fw.first, fw.last
	var stored []byte
	if rz.Gain() >= len(body)-len(body)/bodyShare {
		stored, _ = rz.Encode(nil, body)
	}
	if stored == nil {
		stored = enc.EncodeAll(body, nil)
	}
	h := make([]byte, 0, fileHeaderLen+len(stored))
	h = append(h, "NWHF"...)
	h = binary.LittleEndian.AppendUint16(h, FileVersion)
	h = binary.LittleEndian.AppendUint16(h, 0)
	h = binary.LittleEndian.AppendUint32(h, uint32(recs))
	h = binary.LittleEndian.AppendUint32(h, uint32(len(body)))
	h = binary.LittleEndian.AppendUint32(h, uint32(len(stored)))
	h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(stored, castagnoli))
	h = binary.LittleEndian.AppendUint64(h, uint64(first))
	h = binary.LittleEndian.AppendUint64(h, uint64(last))
	h = binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
	return append(h, stored...)
}

func appendAddr(b []byte, a netip.Addr, v6 bool) []byte {
	if v6 {
		x := a.As16()
		return append(b, x[:]...)
	}
	x := a.Unmap().As4()
	return append(b, x[:]...)
}

func appendRecord(b []byte, r *Record) []byte {
	le := binary.LittleEndian
	b = le.AppendUint64(b, uint64(r.First.UnixNano()))
	b = le.AppendUint64(b, uint64(r.Last.Sub(r.First)))
	v6 := r.Orig.Unmap().Is6() || r.Resp.Unmap().Is6()
	var flags byte
	if r.Partial {
		flags |= 1
	}
	if v6 {
		flags |= 2
	}
	b = append(b, r.Proto, flags)
	b = le.AppendUint16(b, r.VLAN)
	b = appendAddr(b, r.Orig, v6)
	b = appendAddr(b, r.Resp, v6)
	b = le.AppendUint16(b, r.OrigPort)
	b = le.AppendUint16(b, r.RespPort)
	for _, v := range []uint64{r.OrigPkts, r.RespPkts, r.OrigBytes, r.RespBytes, r.OrigData, r.RespData} {
		b = le.AppendUint64(b, v)
	}
	b = append(b, r.OrigFlags, r.RespFlags, byte(r.NameSource))
	name := r.Name
	if len(name) > 255 {
		name = name[:255]
	}
	b = append(b, byte(len(name)))
	b = append(b, name...)
	b = appendAnswers(b, r.Answers)
	b = appendBursts(b, r.Bursts.At, r.Bursts.N, r.Bursts.Head, int64(r.Last.Sub(r.First)), r.HTTPTarget, r.ProxyDest)
	return appendTLS(b, r.TLS.Flags, r.TLS.SubjectCN, r.TLS.IssuerCN)
}

// appendTLS writes the fields version 3 added: the certificate facts.
func appendTLS(b []byte, f TLSFlags, subject, issuer string) []byte {
	f &= TLSFlagsAll
	if f&TLSCertSeen == 0 {
		// Names and self-signed only come with a certificate: the reader
		// refuses them otherwise.
		f, subject, issuer = f&TLSNoSNI, "", ""
	}
	b = append(b, byte(f))
	for _, s := range [2]string{subject, issuer} {
		if len(s) > MaxCN {
			s = s[:MaxCN]
		}
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	return b
}

func appendAnswers(b []byte, answers []netip.Addr) []byte {
	n := min(len(answers), maxAnswers)
	b = append(b, byte(n))
	for _, a := range answers[:n] {
		a = a.Unmap()
		if a.Is4() {
			b = append(b, 4)
			x := a.As4()
			b = append(b, x[:]...)
		} else {
			b = append(b, 6)
			x := a.As16()
			b = append(b, x[:]...)
		}
	}
	return b
}

// appendBursts writes the fields version 2 added: bursts, HTTP target,
// proxy destination. durNS is the record's Last-First.
func appendBursts(b []byte, kept []uint32, n uint32, headB uint8, durNS int64, tg, pd string) []byte {
	head := int(headB)
	if len(kept) > MaxBursts || head > len(kept) || uint32(len(kept)) > n {
		// Not what the builder makes: keep what the format can say.
		kept, head = kept[:min(len(kept), MaxBursts)], min(len(kept), MaxBursts)
	}
	b = binary.AppendUvarint(b, uint64(max(n, uint32(len(kept)))))
	b = append(b, byte(len(kept)), byte(head))
	var prev uint32
	durMS := uint32(min(max(time.Duration(durNS), 0)/time.Millisecond, 1<<32-1))
	for _, t := range kept {
		// Never backwards nor past the end: the reader refuses both.
		t = min(max(t, prev), durMS)
		b = binary.AppendUvarint(b, uint64(t-prev))
		prev = t
	}
	if len(tg) > MaxTarget {
		tg = tg[:MaxTarget]
	}
	b = binary.AppendUvarint(b, uint64(len(tg)))
	b = append(b, tg...)
	if len(pd) > maxProxyDest {
		pd = pd[:maxProxyDest]
	}
	b = append(b, byte(len(pd)))
	return append(b, pd...)
}

// FileInfo is a flow file's header.
type FileInfo struct {
	Records     int
	First, Last time.Time
}

// DecodeFile returns the records of a flow file. On damage inside the body
// it returns the records before the damage together with an error wrapping
// ErrDamaged.
func DecodeFile(b []byte, dec *zstd.Decoder) ([]Record, FileInfo, error) {
	var fi FileInfo
	if len(b) < fileHeaderLen || string(b[:4]) != "NWHF" {
		return nil, fi, ErrNotFlowFile
	}
	le := binary.LittleEndian
	if crc32.Checksum(b[:40], castagnoli) != le.Uint32(b[40:]) {
		return nil, fi, fmt.Errorf("%w: header checksum mismatch", ErrDamaged)
	}
	version := le.Uint16(b[4:])
	if version != FileVersion && version != fileVersion1 && version != fileVersion2 {
		return nil, fi, fmt.Errorf("%w %d", ErrFileVersion, version)
	}
	n := int(le.Uint32(b[8:]))
	rawLen := int(le.Uint32(b[12:]))
	storedLen := int(le.Uint32(b[16:]))
	fi = FileInfo{Records: n, First: time.Unix(0, int64(le.Uint64(b[24:]))).UTC(), Last: time.Unix(0, int64(le.Uint64(b[32:]))).UTC()}
	if storedLen != len(b)-fileHeaderLen || rawLen > maxFileBody {
		return nil, fi, fmt.Errorf("%w: lengths inconsistent", ErrDamaged)
	}
	stored := b[fileHeaderLen:]
	if crc32.Checksum(stored, castagnoli) != le.Uint32(b[20:]) {
		return nil, fi, fmt.Errorf("%w: body checksum mismatch", ErrDamaged)
	}
	body, err := dec.DecodeAll(stored, make([]byte, 0, rawLen))
	if err != nil || len(body) != rawLen {
		return nil, fi, fmt.Errorf("%w: body does not decompress", ErrDamaged)
	}
	// A record is at least 90 bytes: bound the allocation by what is there.
	recs := make([]Record, 0, min(n, len(body)/90+1))
	for i := 0; i < n; i++ {
		r, rest, ok := decodeRecord(body, version)
		if !ok {
			return recs, fi, fmt.Errorf("%w: record %d does not fit", ErrDamaged, i)
		}
		recs = append(recs, r)
		body = rest
	}
	return recs, fi, nil
}

func decodeRecord(b []byte, version uint16) (Record, []byte, bool) {
	var r Record
	le := binary.LittleEndian
	if len(b) < 20 {
		return r, nil, false
	}
	first, dur := int64(le.Uint64(b)), le.Uint64(b[8:])
	r.First = time.Unix(0, first).UTC()
	r.Last = time.Unix(0, first+int64(dur)).UTC()
	r.Proto, r.Partial = b[16], b[17]&1 != 0
	v6 := b[17]&2 != 0
	r.VLAN = le.Uint16(b[18:])
	b = b[20:]
	al := 4
	if v6 {
		al = 16
	}
	if len(b) < 2*al+4+48+4 {
		return r, nil, false
	}
	if v6 {
		r.Orig, r.Resp = netip.AddrFrom16([16]byte(b[:16])), netip.AddrFrom16([16]byte(b[16:32]))
	} else {
		r.Orig, r.Resp = netip.AddrFrom4([4]byte(b[:4])), netip.AddrFrom4([4]byte(b[4:8]))
	}
	b = b[2*al:]
	r.OrigPort, r.RespPort = le.Uint16(b), le.Uint16(b[2:])
	b = b[4:]
	var v [6]uint64
	for i := range v {
		v[i] = le.Uint64(b[8*i:])
	}
	r.OrigPkts, r.RespPkts, r.OrigBytes, r.RespBytes, r.OrigData, r.RespData = v[0], v[1], v[2], v[3], v[4], v[5]
	b = b[48:]
	r.OrigFlags, r.RespFlags, r.NameSource = b[0], b[1], NameSource(b[2])
	nl := int(b[3])
	b = b[4:]
	if len(b) < nl+1 {
		return r, nil, false
	}
	r.Name = string(b[:nl])
	na := int(b[nl])
	b = b[nl+1:]
	if na > maxAnswers {
		return r, nil, false
	}
	for range na {
		if len(b) < 1 {
			return r, nil, false
		}
		switch b[0] {
		case 4:
			if len(b) < 5 {
				return r, nil, false
			}
			r.Answers = append(r.Answers, netip.AddrFrom4([4]byte(b[1:5])))
			b = b[5:]
		case 6:
			if len(b) < 17 {
				return r, nil, false
			}
			r.Answers = append(r.Answers, netip.AddrFrom16([16]byte(b[1:17])))
			b = b[17:]
		default:
			return r, nil, false
		}
	}
	if version == fileVersion1 {
		return r, b, true
	}
	r, b, ok := decodeV2(r, b, dur)
	if !ok || version == fileVersion2 {
		return r, b, ok
	}
	return decodeV3(r, b)
}

// decodeV3 reads the fields version 3 added after the proxy destination.
func decodeV3(r Record, b []byte) (Record, []byte, bool) {
	if len(b) < 1 {
		return r, nil, false
	}
	f := TLSFlags(b[0])
	b = b[1:]
	if f&^TLSFlagsAll != 0 {
		return r, nil, false
	}
	var names [2]string
	for i := range names {
		if len(b) < 1 || b[0] > MaxCN || len(b)-1 < int(b[0]) {
			return r, nil, false
		}
		names[i] = string(b[1 : 1+b[0]])
		b = b[1+b[0]:]
	}
	if f&TLSCertSeen == 0 && (f&(TLSSelfSigned|TLSIssuerAbsent) != 0 || names[0] != "" || names[1] != "") {
		return r, nil, false
	}
	r.TLS = TLSCert{Flags: f, SubjectCN: names[0], IssuerCN: names[1]}
	return r, b, true
}

// decodeV2 reads the fields version 2 added after the answers.
func decodeV2(r Record, b []byte, durNS uint64) (Record, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > 1<<32-1 || len(b) < k+2 {
		return r, nil, false
	}
	kept, head := int(b[k]), int(b[k+1])
	b = b[k+2:]
	if kept > MaxBursts || head > kept || uint64(kept) > n || head < kept && (kept != MaxBursts || n <= MaxBursts) {
		return r, nil, false
	}
	// Each start takes at least a byte: bound the slice by what is there.
	if kept > len(b) {
		return r, nil, false
	}
	r.Bursts.N, r.Bursts.Head = uint32(n), uint8(head)
	dur := durNS / uint64(time.Millisecond)
	if kept > 0 {
		r.Bursts.At = make([]uint32, kept)
	}
	var t uint64
	for i := range kept {
		d, k := binary.Uvarint(b)
		if k <= 0 {
			return r, nil, false
		}
		b = b[k:]
		t += d
		if d > dur || t > dur || t > 1<<32-1 { // starts lie inside the flow, in 32 bits
			return r, nil, false
		}
		r.Bursts.At[i] = uint32(t)
	}
	tl, k := binary.Uvarint(b)
	if k <= 0 || tl > MaxTarget || uint64(len(b)-k) < tl {
		return r, nil, false
	}
	b = b[k:]
	r.HTTPTarget = string(b[:tl])
	b = b[tl:]
	if len(b) < 1 || len(b)-1 < int(b[0]) {
		return r, nil, false
	}
	pl := int(b[0])
	r.ProxyDest = string(b[1 : 1+pl])
	return r, b[1+pl:], true
}
