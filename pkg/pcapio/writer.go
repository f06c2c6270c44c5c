package pcapio

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Writer writes a classic little-endian pcap stream to any io.Writer. The
// caller buffers: Writer issues one Write per packet.
type Writer struct {
	w     io.Writer
	nanos bool
	buf   []byte
}

// PcapHeader returns the 24-byte pcap file header.
func PcapHeader(lt pkthdr.LinkType, snaplen uint32, nanos bool) []byte {
	h := make([]byte, 24)
	magic := uint32(magicMicros)
	if nanos {
		magic = magicNanos
	}
	binary.LittleEndian.PutUint32(h[0:], magic)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], snaplen)
	binary.LittleEndian.PutUint32(h[20:], uint32(lt))
	return h
}

// NewWriter writes the file header and returns a Writer. nanos selects the
// nanosecond-resolution magic.
func NewWriter(w io.Writer, lt pkthdr.LinkType, snaplen uint32, nanos bool) (*Writer, error) {
	if snaplen == 0 {
		snaplen = MaxPacket
	}
	if _, err := w.Write(PcapHeader(lt, snaplen, nanos)); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &Writer{w: w, nanos: nanos, buf: make([]byte, 0, 16+2048)}, nil
}

// AppendRecord appends a pcap record (16-byte header and data) to dst.
func AppendRecord(dst []byte, ts time.Time, data []byte, origLen int, nanos bool) []byte {
	var h [16]byte
	sec := ts.Unix()
	frac := uint32(ts.Nanosecond())
	if !nanos {
		frac /= 1000
	}
	binary.LittleEndian.PutUint32(h[0:], uint32(sec))
	binary.LittleEndian.PutUint32(h[4:], frac)
	binary.LittleEndian.PutUint32(h[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(h[12:], uint32(max(origLen, len(data))))
	dst = append(dst, h[:]...)
	return append(dst, data...)
}

// Frame is one packet handed to a writer in a batch (a capture ring
// block's packets, a few dozen to a call): the batch saves a call and the
// writer's per-call checks a packet.
type Frame struct {
	Nanos   int64  // time stamp, nanoseconds since the epoch
	Data    []byte // captured bytes, only read during the call
	OrigLen int    // length on the wire
}

// AppendRecordNanos is AppendRecord with the time stamp in nanoseconds
// since the epoch, for the per-packet paths that never build a time.Time.
func AppendRecordNanos(dst []byte, ns int64, data []byte, origLen int, nanos bool) []byte {
	sec, frac := ns/1e9, ns%1e9
	if frac < 0 {
		sec, frac = sec-1, frac+1e9
	}
	if !nanos {
		frac /= 1000
	}
	n := len(dst)
	if cap(dst)-n < 16+len(data) {
		dst = slices.Grow(dst, 16+len(data))
	}
	dst = dst[:n+16]
	h := (*[16]byte)(dst[n:])
	binary.LittleEndian.PutUint32(h[0:], uint32(sec))
	binary.LittleEndian.PutUint32(h[4:], uint32(frac))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(data)))
	binary.LittleEndian.PutUint32(h[12:], uint32(max(origLen, len(data))))
	return append(dst, data...)
}

// WritePacket writes one record.
func (w *Writer) WritePacket(ts time.Time, data []byte, origLen int) error {
	w.buf = AppendRecord(w.buf[:0], ts, data, origLen, w.nanos)
	_, err := w.w.Write(w.buf)
	return err
}

// NgWriter writes pcapng with one interface per link type, for output that
// mixes link types (a pcap file can hold only one).
type NgWriter struct {
	w   io.Writer
	buf []byte
}

// NewNgWriter writes a section header and one interface description per
// link type; packets name their interface by index into lts.
func NewNgWriter(w io.Writer, lts []pkthdr.LinkType, snaplen uint32) (*NgWriter, error) {
	nw := &NgWriter{w: w}
	b := make([]byte, 0, 64)
	// Section header: type, length, byte-order magic, version 1.0, section length -1.
	b = le32(b, ngSHB)
	b = le32(b, 28)
	b = le32(b, ngByteOrder)
	b = le16(b, 1)
	b = le16(b, 0)
	b = le32(b, 0xffffffff)
	b = le32(b, 0xffffffff)
	b = le32(b, 28)
	for _, lt := range lts {
		// Interface description with if_tsresol = 9 (nanoseconds).
		b = le32(b, 1)
		b = le32(b, 32)
		b = le16(b, uint16(lt))
		b = le16(b, 0)
		b = le32(b, snaplen)
		b = le16(b, 9)
		b = le16(b, 1)
		b = append(b, 9, 0, 0, 0)
		b = le32(b, 0) // opt_endofopt
		b = le32(b, 32)
	}
	if _, err := w.Write(b); err != nil {
		return nil, fmt.Errorf("write pcapng header: %w", err)
	}
	return nw, nil
}

// WritePacket writes an enhanced packet block on interface iface.
func (w *NgWriter) WritePacket(iface int, ts time.Time, data []byte, origLen int) error {
	pad := (len(data) + 3) &^ 3
	total := 32 + pad
	ns := uint64(ts.UnixNano())
	b := w.buf[:0]
	b = le32(b, 6)
	b = le32(b, uint32(total))
	b = le32(b, uint32(iface))
	b = le32(b, uint32(ns>>32))
	b = le32(b, uint32(ns))
	b = le32(b, uint32(len(data)))
	b = le32(b, uint32(max(origLen, len(data))))
	b = append(b, data...)
	for len(b) < 28+pad {
		b = append(b, 0)
	}
	b = le32(b, uint32(total))
	w.buf = b
	_, err := w.w.Write(b)
	return err
}

func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func le16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
