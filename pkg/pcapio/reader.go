// Package pcapio reads and writes packet files: pcap (microsecond and
// nanosecond, either byte order), pcapng (several interfaces and link types),
// gzip- or zstd-compressed copies of either, and nwhealth's own shards.
//
// Readers treat their input as hostile: every length is bounded before it is
// used, damage is reported with the byte offset where it was found, and the
// reader resynchronises on the next plausible record so that every valid
// packet after the damage is still delivered.
package pcapio

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// MaxPacket bounds a captured packet, as libpcap's MAXIMUM_SNAPLEN does.
const MaxPacket = 262144

// maxBlock bounds a pcapng block: the largest packet a store keeps plus
// generous room for options.
const maxBlock = MaxRecord + 1<<16

// Packet is one captured frame.
type Packet struct {
	Timestamp time.Time
	LinkType  pkthdr.LinkType
	Data      []byte // captured bytes; valid until the next call to Next
	OrigLen   int    // length on the wire
	Interface int    // pcapng interface index (0 for pcap)
	Offset    int64  // byte offset of the record in the (decompressed) input
}

// Source yields packets in order: a file reader, a store query, a live capture.
type Source interface {
	Next() (Packet, error) // io.EOF at the end
}

// CorruptError reports damaged input. Calling Next again resynchronises on
// the next plausible record and continues.
type CorruptError struct {
	Offset int64  // byte offset in the decompressed input where the damage was found
	Reason string // what was wrong
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("damaged input at byte %d: %s", e.Offset, e.Reason)
}

// UnsupportedLinkError is a pcap file of a link type nwhealth cannot read
// (pkthdr.Supported). A pcapng interface of such a type is reported as a
// CorruptError at its first packet instead, and its packets are skipped:
// the file's other interfaces are read.
type UnsupportedLinkError struct {
	LinkType pkthdr.LinkType
}

func (e *UnsupportedLinkError) Error() string {
	return fmt.Sprintf("link type %s not supported: %s", pkthdr.LinkName(e.LinkType), supportedLinks)
}

// supportedLinks names what is read, for the messages about what is not.
const supportedLinks = "nwhealth reads Ethernet, Linux cooked, raw IP, loopback, 802.11 (radiotap, PPI, Prism, AVS), PPP, Cisco HDLC, PPPoE, pflog and NFLOG captures"

// ErrUnknownFormat is returned when the input is neither pcap nor pcapng.
var ErrUnknownFormat = errors.New("not a pcap or pcapng file")

// Format names what a Reader found.
type Format int

// Input formats.
const (
	FormatPcap Format = iota + 1
	FormatPcapNG
)

// pcap magic numbers as read little-endian.
const (
	magicMicros    = 0xa1b2c3d4
	magicNanos     = 0xa1b23c4d
	magicMicrosSwp = 0xd4c3b2a1
	magicNanosSwp  = 0x4d3cb2a1
	ngSHB          = 0x0a0d0d0a
	ngByteOrder    = 0x1a2b3c4d
)

// Reader reads pcap or pcapng from a stream, decompressing gzip or zstd.
type Reader struct {
	br      *bufio.Reader
	pb      *pushback
	closers []io.Closer
	format  Format
	bo      binary.ByteOrder
	off     int64 // decompressed bytes consumed
	resync  bool  // the last record was damaged: scan for the next good one
	done    bool  // the input is exhausted (or failed): Next returns io.EOF
	buf     []byte

	// pcap
	linkType pkthdr.LinkType
	snaplen  uint32
	nanos    bool
	lastSec  uint32

	// pcapng
	ifaces []ngIface
	// SkippedBytes counts input bytes passed over while resynchronising.
	SkippedBytes int64
	// SkippedPackets counts packets of pcapng interfaces whose link type
	// is not read (each such interface is named once, as a CorruptError).
	SkippedPackets int
	// Cut names the packets handed out shortened: their captured bytes
	// passed MaxRecord, the most a store keeps, and only the first
	// MaxRecord were kept (the length on the wire is unchanged).
	Cut []*CorruptError
}

type ngIface struct {
	linkType pkthdr.LinkType
	snaplen  uint32
	unitsPer uint64 // timestamp units per second
	pow10    int    // >=0: units are 10^-pow10 s; -1 otherwise
	offset   int64  // if_tsoffset, seconds
	skipped  int    // packets skipped: the link type is not read
}

// OpenFile opens a capture file; "-" is standard input.
func OpenFile(path string) (*Reader, error) {
	var f io.ReadCloser = os.Stdin
	if path != "-" {
		fh, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		f = fh
	}
	r, err := NewReader(f)
	if err != nil {
		if path != "-" {
			f.Close()
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if path != "-" {
		r.closers = append(r.closers, f)
	}
	return r, nil
}

// readBuffer is the size of a Reader's buffer: records and blocks longer
// than it take the slower path of their own buffer. (A variable: fuzzing
// makes it small to reach that path.)
var readBuffer = 1 << 20

// NewReader detects the format of r and reads its file header.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{pb: &pushback{r: r}}
	br := bufio.NewReaderSize(rd.pb, readBuffer)
	head, err := br.Peek(4)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: input shorter than a file header", ErrUnknownFormat)
		}
		return nil, err
	}
	switch {
	case head[0] == 0x1f && head[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		rd.closers = append(rd.closers, zr)
		rd.pb = &pushback{r: zr}
		br = bufio.NewReaderSize(rd.pb, readBuffer)
	case binary.LittleEndian.Uint32(head) == 0xfd2fb528,
		binary.LittleEndian.Uint32(head)&0xfffffff0 == 0x184d2a50: // zstd frame or skippable frame (a shard)
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		rd.closers = append(rd.closers, zstdCloser{zr})
		rd.pb = &pushback{r: zr}
		br = bufio.NewReaderSize(rd.pb, readBuffer)
	}
	rd.br = br
	if err := rd.readFileHeader(); err != nil {
		rd.Close()
		return nil, err
	}
	return rd, nil
}

// pushback is the reader under the Reader's buffer: bytes read past the
// buffer (a large block that turned out damaged) are put back into it.
type pushback struct {
	pending []byte
	r       io.Reader
}

func (p *pushback) Read(b []byte) (int, error) {
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// unread puts b, the last bytes consumed, back before what is buffered.
func (r *Reader) unread(b []byte) {
	buffered, _ := r.br.Peek(r.br.Buffered())
	pend := make([]byte, 0, len(b)+len(buffered)+len(r.pb.pending))
	pend = append(append(append(pend, b...), buffered...), r.pb.pending...)
	r.pb.pending = pend
	r.br.Reset(r.pb)
	r.off -= int64(len(b))
}

type zstdCloser struct{ d *zstd.Decoder }

func (z zstdCloser) Close() error { z.d.Close(); return nil }

// Close releases decompressors and the file opened by OpenFile.
func (r *Reader) Close() error {
	var first error
	for i := len(r.closers) - 1; i >= 0; i-- {
		if err := r.closers[i].Close(); err != nil && first == nil {
			first = err
		}
	}
	r.closers = nil
	return first
}

// Format reports whether the input is pcap or pcapng.
func (r *Reader) Format() Format { return r.format }

// LinkType is the link type of a pcap file, or of the first pcapng interface.
func (r *Reader) LinkType() pkthdr.LinkType {
	if r.format == FormatPcapNG && len(r.ifaces) > 0 {
		return r.ifaces[0].linkType
	}
	return r.linkType
}

// Snaplen is the pcap snapshot length (or the first pcapng interface's).
func (r *Reader) Snaplen() uint32 {
	if r.format == FormatPcapNG && len(r.ifaces) > 0 {
		return r.ifaces[0].snaplen
	}
	return r.snaplen
}

// Nanosecond reports whether timestamps carry more than microsecond precision.
func (r *Reader) Nanosecond() bool {
	if r.format == FormatPcapNG {
		for _, f := range r.ifaces {
			if f.unitsPer > 1e6 {
				return true
			}
		}
		return false
	}
	return r.nanos
}

func (r *Reader) readFileHeader() error {
	head, err := r.br.Peek(4)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnknownFormat, err)
	}
	magic := binary.LittleEndian.Uint32(head)
	switch magic {
	case magicMicros, magicNanos:
		r.bo = binary.LittleEndian
	case magicMicrosSwp, magicNanosSwp:
		r.bo = binary.BigEndian
	case ngSHB:
		r.format = FormatPcapNG
		return nil // the section header is read as an ordinary block
	default:
		return ErrUnknownFormat
	}
	r.format = FormatPcap
	hdr, err := r.br.Peek(24)
	if err != nil {
		return fmt.Errorf("pcap file header: %w", io.ErrUnexpectedEOF)
	}
	r.nanos = r.bo.Uint32(hdr) == magicNanos
	if major := r.bo.Uint16(hdr[4:]); major != 2 {
		return fmt.Errorf("pcap version %d.%d not supported", major, r.bo.Uint16(hdr[6:]))
	}
	r.snaplen = r.bo.Uint32(hdr[16:])
	// The upper bits of the link type field carry FCS length flags.
	r.linkType = pkthdr.LinkType(r.bo.Uint32(hdr[20:]) & 0xffff)
	if !pkthdr.Supported(r.linkType) {
		return &UnsupportedLinkError{r.linkType}
	}
	r.discard(24)
	return nil
}

func (r *Reader) discard(n int) {
	d, _ := r.br.Discard(n)
	r.off += int64(d)
}

// Next returns the next packet. After a *CorruptError, calling Next again
// resynchronises on the next plausible record.
func (r *Reader) Next() (Packet, error) {
	if r.format == FormatPcapNG {
		return r.nextNG()
	}
	return r.nextPcap()
}

// inputEnds handles a read that came up short: the input is over. It
// reports damage (a partial record, or a decompression error) once; every
// later call returns io.EOF.
func (r *Reader) inputEnds(start int64, have int, truncated string, err error) (Packet, error) {
	r.done = true
	r.discard(have)
	switch {
	case err == io.EOF && (have == 0 || truncated == ""):
		return Packet{}, io.EOF
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return Packet{}, &CorruptError{start, truncated}
	}
	return Packet{}, &CorruptError{start, "input ends with an error: " + err.Error()}
}

// eofOr turns the end of input met while scanning damaged data into a
// plain io.EOF: the damage was already reported.
func eofOr(err error) error {
	if err == nil || err == io.ErrUnexpectedEOF {
		return io.EOF
	}
	return err
}

func (r *Reader) nextPcap() (Packet, error) {
	if r.done {
		return Packet{}, io.EOF
	}
	if r.resync {
		if err := r.resyncPcap(); err != nil {
			return Packet{}, err
		}
	}
	start := r.off
	hdr, err := r.br.Peek(16)
	if err != nil {
		return r.inputEnds(start, len(hdr), fmt.Sprintf("truncated record header: %d of 16 bytes", len(hdr)), err)
	}
	caplen := r.bo.Uint32(hdr[8:])
	origlen := r.bo.Uint32(hdr[12:])
	if reason := r.checkPcapHeader(hdr); reason != "" {
		r.resync = true
		r.discard(1)
		return Packet{}, &CorruptError{start, reason}
	}
	if 16+int(caplen) > r.br.Size() {
		return r.largePcap(start, hdr, caplen, origlen)
	}
	rec, err := r.br.Peek(16 + int(caplen))
	if err != nil {
		return r.inputEnds(start, len(rec), fmt.Sprintf("truncated record: %d of %d captured bytes", len(rec)-16, caplen), err)
	}
	// rec, not hdr: the second Peek may have moved the buffer.
	p := r.pcapPacket(rec, start, caplen, origlen)
	r.discard(16 + int(caplen))
	p.Data = rec[16:]
	return p, nil
}

// pcapPacket fills in a packet from its record header.
func (r *Reader) pcapPacket(hdr []byte, start int64, caplen, origlen uint32) Packet {
	sec, frac := r.bo.Uint32(hdr), r.bo.Uint32(hdr[4:])
	r.lastSec = sec
	nsec := int64(frac)
	if !r.nanos {
		nsec *= 1000
	}
	return Packet{
		Timestamp: time.Unix(int64(sec), nsec).UTC(),
		LinkType:  r.linkType,
		OrigLen:   int(max(origlen, caplen)),
		Offset:    start,
	}
}

// largePcap reads a record longer than the read buffer into a buffer of
// its own, grown as the bytes arrive (a length the input claims is not
// allocated before it is there), keeping at most MaxRecord of them.
func (r *Reader) largePcap(start int64, hdr []byte, caplen, origlen uint32) (Packet, error) {
	p := r.pcapPacket(hdr, start, caplen, origlen)
	r.discard(16)
	keep := int(min(caplen, MaxRecord))
	data, err := r.readGrow(keep)
	got := int64(len(data))
	if err == nil && int(caplen) > keep {
		var n int64
		n, err = io.CopyN(io.Discard, r.br, int64(caplen)-int64(keep))
		r.off += n
		got += n
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return r.inputEnds(start, 0, fmt.Sprintf("truncated record: %d of %d captured bytes", got, caplen), err)
	}
	if int(caplen) > keep {
		r.Cut = append(r.Cut, &CorruptError{start, fmt.Sprintf("packet of %d captured bytes is longer than the %d a store keeps: its first %d kept", caplen, MaxRecord, MaxRecord)})
	}
	p.Data = data
	return p, nil
}

// readGrow reads n bytes into the reader's own buffer, growing it a
// mebibyte at a time as they arrive.
func (r *Reader) readGrow(n int) ([]byte, error) {
	r.buf = r.buf[:0]
	for len(r.buf) < n {
		want := min(n-len(r.buf), 1<<20)
		if cap(r.buf)-len(r.buf) < want {
			r.buf = append(r.buf[:cap(r.buf)], make([]byte, want)...)[:len(r.buf)]
		}
		got, err := io.ReadFull(r.br, r.buf[len(r.buf):len(r.buf)+want])
		r.off += int64(got)
		r.buf = r.buf[:len(r.buf)+got]
		if err != nil {
			return r.buf, err // what was read, for unread
		}
	}
	return r.buf, nil
}

// checkPcapHeader returns why a record header is implausible, or "".
// Captured lengths up to the file's snaplen pass (or libpcap's limit, for
// files whose snaplen is smaller than what they hold): a record between
// MaxRecord and such a snaplen is read and cut (Cut).
func (r *Reader) checkPcapHeader(hdr []byte) string {
	frac, caplen, origlen := r.bo.Uint32(hdr[4:]), r.bo.Uint32(hdr[8:]), r.bo.Uint32(hdr[12:])
	limit := max(uint32(MaxPacket), r.snaplen)
	switch {
	case caplen > limit:
		return fmt.Sprintf("captured length %d exceeds %d", caplen, limit)
	case r.nanos && frac >= 1e9, !r.nanos && frac >= 1e6:
		return fmt.Sprintf("sub-second timestamp field %d out of range", frac)
	case origlen > 1<<24:
		return fmt.Sprintf("original length %d implausible", origlen)
	case origlen == 0 && caplen == 0:
		return "empty record" // zeroed storage, never a real frame
	}
	return ""
}

// plausiblePcap is stricter than checkPcapHeader: it is used to find a record
// boundary in damaged data, where a false match costs more packets.
func (r *Reader) plausiblePcap(hdr []byte) bool {
	if r.checkPcapHeader(hdr) != "" {
		return false
	}
	sec, caplen, origlen := r.bo.Uint32(hdr), r.bo.Uint32(hdr[8:]), r.bo.Uint32(hdr[12:])
	if caplen > origlen || (r.snaplen > 0 && caplen > r.snaplen) || origlen == 0 {
		return false
	}
	if r.lastSec != 0 && (sec+86400 < r.lastSec || sec > r.lastSec+30*86400) {
		return false
	}
	return true
}

// resyncPcap advances byte by byte until two consecutive records (or one
// ending exactly at end of input) look right.
func (r *Reader) resyncPcap() error {
	skipped := int64(0)
	for {
		hdr, err := r.br.Peek(16)
		if len(hdr) < 16 {
			_, err = r.inputEnds(r.off, len(hdr), "", eofOr(err))
			return err
		}
		if r.plausiblePcap(hdr) {
			n := 16 + int(r.bo.Uint32(hdr[8:]))
			next, err := r.br.Peek(n + 16)
			if (len(next) == n && (err == io.EOF || err == io.ErrUnexpectedEOF)) ||
				(len(next) == n+16 && r.plausiblePcap(next[n:])) {
				r.resync = false
				r.SkippedBytes += skipped
				return nil
			}
		}
		r.discard(1)
		skipped++
	}
}

func (r *Reader) nextNG() (Packet, error) {
	for {
		if r.done {
			return Packet{}, io.EOF
		}
		if r.resync {
			if err := r.resyncNG(); err != nil {
				return Packet{}, err
			}
		}
		start := r.off
		hdr, err := r.br.Peek(12)
		if err != nil {
			return r.inputEnds(start, len(hdr), fmt.Sprintf("truncated block header: %d of 12 bytes", len(hdr)), err)
		}
		btype := binary.LittleEndian.Uint32(hdr)
		if btype == ngSHB {
			// The byte order of a section is only known from its header.
			switch binary.LittleEndian.Uint32(hdr[8:]) {
			case ngByteOrder:
				r.bo = binary.LittleEndian
			case 0x4d3c2b1a:
				r.bo = binary.BigEndian
			default:
				r.resync = true
				r.discard(1)
				return Packet{}, &CorruptError{start, "section header with bad byte-order magic"}
			}
		} else if r.bo == nil {
			return Packet{}, &CorruptError{start, "pcapng block before any section header"}
		} else {
			btype = r.bo.Uint32(hdr)
		}
		blen := r.bo.Uint32(hdr[4:])
		if blen < 12 || blen%4 != 0 || blen > maxBlock {
			r.resync = true
			r.discard(1)
			if blen > maxBlock && blen%4 == 0 {
				return Packet{}, &CorruptError{start, fmt.Sprintf("block length %d: more than the %d of the largest packet kept (a longer packet, or damage)", blen, maxBlock)}
			}
			return Packet{}, &CorruptError{start, fmt.Sprintf("block length %d invalid", blen)}
		}
		block, err := r.peekBlock(int(blen))
		if err != nil && int(blen) > r.br.Size() && len(block) > 1 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			// A long block the input ends in: a damaged length as likely
			// as a cut file. The bytes read go back to be searched.
			r.resync = true
			r.unread(block[1:])
			return Packet{}, &CorruptError{start, fmt.Sprintf("truncated block: %d bytes declared", blen)}
		}
		if err != nil {
			if err == io.EOF { // the block header was there: the block is cut short
				err = io.ErrUnexpectedEOF
			}
			return r.inputEnds(start, 0, fmt.Sprintf("truncated block: %d bytes declared", blen), err)
		}
		if r.bo.Uint32(block[blen-4:]) != blen {
			r.resync = true
			if int(blen) > r.br.Size() {
				// Read past the buffer already: put back all but the
				// first byte, so the search for the next block sees them.
				r.unread(block[1:])
			} else {
				r.discard(1)
			}
			return Packet{}, &CorruptError{start, "block trailer length does not match header"}
		}
		body := block[8 : blen-4]
		p, ok, reason := r.ngBlock(btype, body)
		r.consumeBlock(int(blen))
		if reason != "" {
			return Packet{}, &CorruptError{start, reason}
		}
		if ok {
			p.Offset = start
			return p, nil
		}
	}
}

// peekBlock returns the whole block; small blocks are served from the
// buffer without copying, larger ones are read into a reused buffer, grown
// as the bytes arrive.
func (r *Reader) peekBlock(n int) ([]byte, error) {
	if n <= r.br.Size() {
		b, err := r.br.Peek(n)
		if err != nil && len(b) < n {
			r.discard(len(b))
		}
		return b, err
	}
	return r.readGrow(n)
}

func (r *Reader) consumeBlock(n int) {
	if n <= r.br.Size() {
		r.discard(n)
	}
	// A large block was already consumed by peekBlock.
}

// ngBlock interprets one pcapng block body. ok is true for a packet.
func (r *Reader) ngBlock(btype uint32, body []byte) (p Packet, ok bool, reason string) {
	switch btype {
	case ngSHB:
		if len(body) < 16 {
			return p, false, "section header too short"
		}
		if major := r.bo.Uint16(body[4:]); major != 1 {
			return p, false, fmt.Sprintf("pcapng version %d not supported", major)
		}
		r.ifaces = r.ifaces[:0]
	case 1: // interface description
		if len(body) < 8 {
			return p, false, "interface description too short"
		}
		if len(r.ifaces) >= 1<<16 {
			return p, false, "too many interfaces"
		}
		f := ngIface{linkType: pkthdr.LinkType(r.bo.Uint16(body)), snaplen: r.bo.Uint32(body[4:]), unitsPer: 1e6, pow10: 6}
		r.ngOptions(body[8:], func(code uint16, v []byte) {
			switch {
			case code == 9 && len(v) >= 1: // if_tsresol
				n := int(v[0] & 0x7f)
				if v[0]&0x80 == 0 && n <= 9 {
					f.pow10 = n
					f.unitsPer = pow10(n)
				} else if v[0]&0x80 != 0 && n < 63 {
					f.pow10 = -1
					f.unitsPer = 1 << n
				}
			case code == 14 && len(v) >= 8: // if_tsoffset
				f.offset = int64(r.bo.Uint64(v))
			}
		})
		r.ifaces = append(r.ifaces, f)
	case 6, 2: // enhanced packet, obsolete packet
		if len(body) < 20 {
			return p, false, "packet block too short"
		}
		var id int
		if btype == 6 {
			id = int(r.bo.Uint32(body))
		} else {
			id = int(r.bo.Uint16(body))
		}
		if id >= len(r.ifaces) {
			return p, false, fmt.Sprintf("packet for undeclared interface %d", id)
		}
		caplen, origlen := r.bo.Uint32(body[12:]), r.bo.Uint32(body[16:])
		if caplen > uint32(len(body)-20) || caplen > MaxRecord {
			return p, false, fmt.Sprintf("captured length %d exceeds block", caplen)
		}
		f := r.ifaces[id]
		if !pkthdr.Supported(f.linkType) {
			return p, false, r.unsupported(id)
		}
		ts := uint64(r.bo.Uint32(body[4:]))<<32 | uint64(r.bo.Uint32(body[8:]))
		return Packet{
			Timestamp: f.time(ts),
			LinkType:  f.linkType,
			Data:      body[20 : 20+caplen],
			OrigLen:   int(max(origlen, caplen)),
			Interface: id,
		}, true, ""
	case 3: // simple packet: interface 0, no timestamp
		if len(body) < 4 || len(r.ifaces) == 0 {
			return p, false, "simple packet block without interface"
		}
		if !pkthdr.Supported(r.ifaces[0].linkType) {
			return p, false, r.unsupported(0)
		}
		origlen := r.bo.Uint32(body)
		caplen := uint32(len(body) - 4)
		if origlen < caplen {
			caplen = origlen
		}
		if s := r.ifaces[0].snaplen; s > 0 && caplen > s {
			caplen = s
		}
		return Packet{LinkType: r.ifaces[0].linkType, Data: body[4 : 4+caplen], OrigLen: int(origlen), Timestamp: time.Unix(0, 0).UTC()}, true, ""
	}
	return p, false, "" // other blocks (statistics, name resolution, custom) are skipped
}

// unsupported skips a packet of pcapng interface id, whose link type is
// not read, and names the interface at its first packet.
func (r *Reader) unsupported(id int) string {
	f := &r.ifaces[id]
	f.skipped++
	r.SkippedPackets++
	if f.skipped > 1 {
		return ""
	}
	return fmt.Sprintf("pcapng interface %d: link type %s not supported, its packets are skipped (%s)", id, pkthdr.LinkName(f.linkType), supportedLinks)
}

func (f ngIface) time(ts uint64) time.Time {
	sec := ts / f.unitsPer
	rem := ts % f.unitsPer
	var nsec uint64
	switch {
	case f.pow10 >= 0 && f.pow10 <= 9:
		nsec = rem * pow10(9-f.pow10)
	default:
		// Binary fractions: scale without overflowing for units up to 2^62.
		nsec = uint64((float64(rem) / float64(f.unitsPer)) * 1e9)
	}
	return time.Unix(int64(sec)+f.offset, int64(nsec)).UTC()
}

func pow10(n int) uint64 {
	v := uint64(1)
	for range n {
		v *= 10
	}
	return v
}

// ngOptions walks a pcapng option list, stopping at opt_endofopt or damage.
func (r *Reader) ngOptions(b []byte, fn func(code uint16, v []byte)) {
	for len(b) >= 4 {
		code, n := r.bo.Uint16(b), int(r.bo.Uint16(b[2:]))
		if code == 0 {
			return
		}
		pad := (n + 3) &^ 3
		if 4+pad > len(b) {
			return
		}
		fn(code, b[4:4+n])
		b = b[4+pad:]
	}
}

// resyncNG scans for the next block whose header and trailer lengths agree.
func (r *Reader) resyncNG() error {
	skipped := 0
	for {
		hdr, err := r.br.Peek(12)
		if len(hdr) < 12 {
			_, err = r.inputEnds(r.off, len(hdr), "", eofOr(err))
			return err
		}
		bo := r.bo
		if binary.LittleEndian.Uint32(hdr) == ngSHB {
			switch binary.LittleEndian.Uint32(hdr[8:]) {
			case ngByteOrder:
				bo = binary.LittleEndian
			case 0x4d3c2b1a:
				bo = binary.BigEndian
			}
		}
		if bo == nil { // no section yet: only a section header can start one
			r.discard(1)
			skipped++
			continue
		}
		btype, blen := bo.Uint32(hdr), bo.Uint32(hdr[4:])
		known := btype == ngSHB || (btype >= 1 && btype <= 6) || btype == 10 || btype == 0x80000001
		if known && blen >= 12 && blen%4 == 0 && int(blen) <= r.br.Size() {
			b, _ := r.br.Peek(int(blen))
			if len(b) == int(blen) && bo.Uint32(b[blen-4:]) == blen {
				r.resync = false
				r.SkippedBytes += int64(skipped)
				return nil
			}
		}
		r.discard(1)
		skipped++
	}
}
