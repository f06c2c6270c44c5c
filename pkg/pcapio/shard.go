package pcapio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/internal/bigbuf"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Shard format constants (docs/format/shard.md).
const (
	ShardVersion   = 2
	oldestVersion  = 1
	skipMagicMeta  = 0x184d2a5e
	skipMagicTrail = 0x184d2a5f
	zstdMagic      = 0xfd2fb528
	shardHdrLen    = 40 // shard header payload
	blockHdrLen    = 44 // block header payload
	blockHdrFrame  = 8 + blockHdrLen
	trailerEntry   = 32
	trailerFixed   = 4 + 4 + 8 + 8 + 8 + 8 // tag, blocks, packets, raw bytes, first, last
	trailerEnd     = "NWHTEND!"

	// MaxBlockRaw bounds a block's decompressed size; readers refuse more.
	MaxBlockRaw = 16 << 20
	// MaxRecord bounds a record's captured length in a shard (version 2;
	// version 1 held at most MaxPacket): the largest packet a store keeps
	// whole. A block of records below MaxBlockRaw-MaxRecord-16 bytes
	// always has room for one more.
	MaxRecord = 8 << 20
	// maxBlocks bounds a trailer's block count before anything is allocated.
	maxBlocks = 1 << 24
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC returns the CRC-32C of b, the checksum every nwhealth file uses.
func CRC(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Errors a shard reader returns; callers branch on them.
var (
	ErrNotShard       = errors.New("not an nwhealth shard")
	ErrShardVersion   = errors.New("unsupported shard version")
	ErrNoTrailer      = errors.New("shard has no trailer (open or interrupted)")
	ErrShardTruncated = errors.New("shard shorter than its header")
)

// ShardHeader describes a shard.
type ShardHeader struct {
	Version  int // as read; writers write ShardVersion
	LinkType pkthdr.LinkType
	Snaplen  uint32
	Nanos    bool
	Created  time.Time
	Writer   string // at most 8 bytes; untrusted when read (the store names shards)
	Seq      uint32
}

// BlockMeta locates and describes one block.
type BlockMeta struct {
	Offset  int64 // of the block header frame
	First   int64 // ns
	Last    int64 // ns
	Packets uint32
	RawLen  uint32
	DataLen uint32
	DataCRC uint32
	// Number is the block number its header carries, for blocks found by
	// walking the file; trailer entries leave it 0 (the header must then
	// agree with the entry in length, first time and packets).
	Number uint32
}

// BlockError names a damaged block.
type BlockError struct {
	Block  int
	Offset int64
	Reason string
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("block %d at byte %d: %s", e.Block, e.Offset, e.Reason)
}

// ShardWriter appends blocks to a shard stream. It never seeks: a crash
// leaves a recoverable prefix.
type ShardWriter struct {
	w       io.Writer
	off     int64
	hdr     ShardHeader
	blocks  []BlockMeta
	packets uint64
	raw     uint64
	first   int64
	last    int64
}

func skippable(magic uint32, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.LittleEndian.PutUint32(b, magic)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)))
	return append(b, payload...)
}

// NewShardWriter writes the shard header and the pcap header frame.
func NewShardWriter(w io.Writer, h ShardHeader, enc *zstd.Encoder) (*ShardWriter, error) {
	if len(h.Writer) > 8 {
		return nil, fmt.Errorf("writer id %q longer than 8 bytes", h.Writer)
	}
	if h.Snaplen > MaxRecord {
		return nil, fmt.Errorf("snaplen %d above the %d bytes a shard record holds", h.Snaplen, MaxRecord)
	}
	out := EncodeShardHeader(h)
	out = enc.EncodeAll(PcapHeader(h.LinkType, h.Snaplen, h.Nanos), out)
	if _, err := w.Write(out); err != nil {
		return nil, fmt.Errorf("write shard header: %w", err)
	}
	return &ShardWriter{w: w, off: int64(len(out)), hdr: h, first: -1}, nil
}

// EncodeShardHeader returns the shard header frame (48 bytes) for h, in
// the current version. Repair rewrites a damaged header with it.
func EncodeShardHeader(h ShardHeader) []byte {
	p := make([]byte, 0, shardHdrLen)
	p = append(p, "NWHS"...)
	p = binary.LittleEndian.AppendUint16(p, ShardVersion)
	var flags uint16
	if h.Nanos {
		flags |= 1
	}
	p = binary.LittleEndian.AppendUint16(p, flags)
	p = binary.LittleEndian.AppendUint32(p, uint32(h.LinkType))
	p = binary.LittleEndian.AppendUint32(p, h.Snaplen)
	p = binary.LittleEndian.AppendUint64(p, uint64(h.Created.UnixNano()))
	var id [8]byte
	copy(id[:], h.Writer)
	p = append(p, id[:]...)
	p = binary.LittleEndian.AppendUint32(p, h.Seq)
	p = binary.LittleEndian.AppendUint32(p, CRC(p))
	return skippable(skipMagicMeta, p)
}

// ShardHeaderLen is the length of the shard header frame, which the pcap
// header frame follows.
const ShardHeaderLen = 8 + shardHdrLen

// EncodedBlock is a block compressed and framed, ready to append.
type EncodedBlock struct {
	Bytes []byte // header frame and data frame
	Meta  BlockMeta
}

// Compressor appends a zstd frame holding src to dst, as
// (*zstd.Encoder).EncodeAll does.
type Compressor interface {
	EncodeAll(src, dst []byte) []byte
}

// EncodeBlock compresses raw pcap records into dst (reused when large
// enough). number is the block's index in its shard.
func EncodeBlock(dst []byte, enc Compressor, raw []byte, number int, first, last int64, packets int) EncodedBlock {
	dst = append(dst[:0], make([]byte, blockHdrFrame)...)
	dst = enc.EncodeAll(raw, dst)
	if len(dst)-blockHdrFrame > len(raw)-len(raw)/storeGain {
		dst = appendStored(dst[:blockHdrFrame], raw)
	}
	data := dst[blockHdrFrame:]
	m := BlockMeta{First: first, Last: last, Packets: uint32(packets), RawLen: uint32(len(raw)),
		DataLen: uint32(len(data)), DataCRC: CRC(data)}
	h := dst[:0:blockHdrFrame]
	h = binary.LittleEndian.AppendUint32(h, skipMagicMeta)
	h = binary.LittleEndian.AppendUint32(h, blockHdrLen)
	h = append(h, "NWHB"...)
	h = binary.LittleEndian.AppendUint32(h, uint32(number))
	h = binary.LittleEndian.AppendUint64(h, uint64(first))
	h = binary.LittleEndian.AppendUint64(h, uint64(last))
	h = binary.LittleEndian.AppendUint32(h, m.Packets)
	h = binary.LittleEndian.AppendUint32(h, m.RawLen)
	h = binary.LittleEndian.AppendUint32(h, m.DataLen)
	h = binary.LittleEndian.AppendUint32(h, m.DataCRC)
	binary.LittleEndian.AppendUint32(h, CRC(h[8:]))
	return EncodedBlock{Bytes: dst, Meta: m}
}

// storeGain: a block is kept compressed only if that saves at least
// 1/storeGain of its raw bytes; otherwise it is written as a stored frame
// (docs/format/shard.md), which readers use in place. Blocks that
// compress by only 6-12 % (full-size encrypted packets, where only the
// headers repeat) decode at 3-5 GB/s against a copy's 30 or more, and
// that is paid on every read: at 1/16 they were a ninth of a full-payload
// store's blocks and as much of a host query's CPU as reading all its
// blocks. At 1/8 the store grows 0.5-0.7 % (full payload, and the
// SMB/DCE-RPC captures we test with); at 1/4 it grew 5.7 % on the latter.
const storeGain = 8

// Stored frame layout: magic, frame header descriptor (single segment,
// 4-byte content size), content size, then raw blocks of at most
// maxRawBlock bytes, each after a 3-byte block header.
const (
	storedFHD      = 0xa0
	storedHdr      = 4 + 1 + 4
	maxRawBlock    = 128 << 10
	rawBlockHeader = 3
)

// appendStored appends raw to dst as a zstd frame of raw blocks.
func appendStored(dst, raw []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, zstdMagic)
	dst = append(dst, storedFHD)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(raw)))
	for {
		n := min(len(raw), maxRawBlock)
		bh := uint32(n) << 3 // type 0: raw
		if n == len(raw) {
			bh |= 1 // last block
		}
		dst = append(dst, byte(bh), byte(bh>>8), byte(bh>>16))
		dst = append(dst, raw[:n]...)
		if raw = raw[n:]; len(raw) == 0 {
			return dst
		}
	}
}

// storedContent returns the content of frame f if it is a stored frame of
// one raw block holding exactly rawLen bytes.
func storedContent(f []byte, rawLen uint32) ([]byte, bool) {
	const hdr = storedHdr + rawBlockHeader
	if rawLen > maxRawBlock || len(f) != hdr+int(rawLen) || binary.LittleEndian.Uint32(f) != zstdMagic ||
		f[4] != storedFHD || binary.LittleEndian.Uint32(f[5:]) != rawLen {
		return nil, false
	}
	if bh := uint32(f[9]) | uint32(f[10])<<8 | uint32(f[11])<<16; bh != rawLen<<3|1 {
		return nil, false
	}
	return f[hdr:], true
}

// NextBlock is the number the next appended block must carry.
func (s *ShardWriter) NextBlock() int { return len(s.blocks) }

// Append writes an encoded block. On error the shard is left with its
// previous blocks intact and the caller may still Finish it after
// truncating the file to Size().
func (s *ShardWriter) Append(b EncodedBlock) error {
	if _, err := s.w.Write(b.Bytes); err != nil {
		return fmt.Errorf("write block %d: %w", len(s.blocks), err)
	}
	s.appended(b)
	return nil
}

// AppendBlocks writes encoded blocks with one write of their bytes laid end
// to end in buf (returned, grown as needed, for the next call): a system
// call a batch instead of one a block. On error nothing is counted as
// appended: the caller truncates the file to Size() and may append the
// blocks one by one to keep as many as fit.
func (s *ShardWriter) AppendBlocks(bs []EncodedBlock, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for _, b := range bs {
		buf = append(buf, b.Bytes...)
	}
	if _, err := s.w.Write(buf); err != nil {
		return buf, fmt.Errorf("write blocks %d to %d: %w", len(s.blocks), len(s.blocks)+len(bs)-1, err)
	}
	for _, b := range bs {
		s.appended(b)
	}
	return buf, nil
}

// appended records a block written at the end of the shard.
func (s *ShardWriter) appended(b EncodedBlock) {
	m := b.Meta
	m.Offset = s.off
	s.off += int64(len(b.Bytes))
	s.blocks = append(s.blocks, m)
	s.packets += uint64(m.Packets)
	s.raw += uint64(m.RawLen)
	if s.first < 0 || m.First < s.first {
		s.first = m.First
	}
	if m.Last > s.last {
		s.last = m.Last
	}
}

// Size is the length of everything appended successfully.
func (s *ShardWriter) Size() int64 { return s.off }

// Blocks returns the metadata of the blocks written so far.
func (s *ShardWriter) Blocks() []BlockMeta { return s.blocks }

// Finish writes the trailer. The shard is then sealed.
func (s *ShardWriter) Finish() error {
	_, err := s.w.Write(encodeTrailer(s.blocks))
	if err != nil {
		return fmt.Errorf("write shard trailer: %w", err)
	}
	return nil
}

func encodeTrailer(blocks []BlockMeta) []byte {
	var packets, raw uint64
	first, last := int64(0), int64(0)
	for i, b := range blocks {
		packets += uint64(b.Packets)
		raw += uint64(b.RawLen)
		if i == 0 || b.First < first {
			first = b.First
		}
		if i == 0 || b.Last > last {
			last = b.Last
		}
	}
	p := make([]byte, 0, trailerFixed+len(blocks)*trailerEntry+16)
	p = append(p, "NWHT"...)
	p = binary.LittleEndian.AppendUint32(p, uint32(len(blocks)))
	p = binary.LittleEndian.AppendUint64(p, packets)
	p = binary.LittleEndian.AppendUint64(p, raw)
	p = binary.LittleEndian.AppendUint64(p, uint64(first))
	p = binary.LittleEndian.AppendUint64(p, uint64(last))
	for _, b := range blocks {
		p = binary.LittleEndian.AppendUint64(p, uint64(b.Offset))
		p = binary.LittleEndian.AppendUint64(p, uint64(b.First))
		p = binary.LittleEndian.AppendUint64(p, uint64(b.Last))
		p = binary.LittleEndian.AppendUint32(p, b.Packets)
		p = binary.LittleEndian.AppendUint32(p, b.DataLen)
	}
	p = binary.LittleEndian.AppendUint32(p, CRC(p))
	size := uint32(8 + len(p) + 12)
	p = binary.LittleEndian.AppendUint32(p, size)
	p = append(p, trailerEnd...)
	return skippable(skipMagicTrail, p)
}

// Shard reads a shard file through an io.ReaderAt.
type Shard struct {
	r      io.ReaderAt
	size   int64
	Header ShardHeader
	Blocks []BlockMeta
	Sealed bool // a valid trailer was found
	// Packets and RawBytes total the blocks (from the trailer when sealed).
	Packets  uint64
	RawBytes uint64
	End      int64 // end of the last good block (the recovery truncation point)
	// Damage notes a problem met while walking an unsealed shard: the walk
	// stopped there. Nil when the shard is sealed or ended cleanly.
	Damage *BlockError
	// Gaps are the damaged stretches a walk passed over to reach the
	// blocks after them (resynchronising on block headers).
	Gaps []BlockError
	// HeaderDamage says what was wrong with the shard header or the pcap
	// header frame, when the shard was read in spite of it ("" if
	// nothing): docs/format/shard.md, "Finding blocks without the header".
	HeaderDamage string
	// PcapFrameDamaged: the damage is in the pcap header frame (the shard
	// header is intact).
	PcapFrameDamaged bool
	// PcapFrameLen is the length of the pcap header frame after the shard
	// header as found (0 when it is damaged beyond telling).
	PcapFrameLen int
	hdrEnd       int64 // offset of the first block
	// A sealed shard opened by OpenShardTOC keeps its table of contents in
	// the file: ntoc entries from tocOff (nonzero only then), read as
	// needed (Entries); tocEnd is where the blocks end and the trailer
	// starts, spanFirst and spanLast the trailer's time range.
	ntoc                        int
	tocOff                      int64
	spanFirst, spanLast, tocEnd int64
}

// NumBlocks is the number of blocks.
func (s *Shard) NumBlocks() int {
	if s.tocOff != 0 {
		return s.ntoc
	}
	return len(s.Blocks)
}

// Block returns block i's metadata.
func (s *Shard) Block(i int) BlockMeta {
	if s.tocOff != 0 {
		return s.lazyBlock(i)
	}
	return s.Blocks[i]
}

// FirstBlock is the offset where the first block starts (or would).
func (s *Shard) FirstBlock() int64 { return s.hdrEnd }

func decodeEntry(e []byte) BlockMeta {
	return BlockMeta{
		Offset:  int64(binary.LittleEndian.Uint64(e)),
		First:   int64(binary.LittleEndian.Uint64(e[8:])),
		Last:    int64(binary.LittleEndian.Uint64(e[16:])),
		Packets: binary.LittleEndian.Uint32(e[24:]),
		DataLen: binary.LittleEndian.Uint32(e[28:]),
	}
}

// OpenShard reads the shard header and trailer. A shard without a valid
// trailer is walked block by block (open or interrupted shard): Sealed is
// then false and Blocks holds every complete, self-consistent block header
// (data CRCs are checked when blocks are read, or by Verify).
func OpenShard(r io.ReaderAt, size int64) (*Shard, error) { return openShard(r, size, false) }

// OpenShardTOC is OpenShard for readers that touch few blocks: a sealed
// shard's table of contents stays in the file, its entries read as needed
// (Entries, Block) without the trailer CRC, or all at once and checked by
// LoadTOC; Blocks stays nil until then. Unsealed shards are walked as by
// OpenShard.
func OpenShardTOC(r io.ReaderAt, size int64) (*Shard, error) { return openShard(r, size, true) }

func openShard(r io.ReaderAt, size int64, lazy bool) (*Shard, error) {
	s := &Shard{r: r, size: size}
	if err := s.readHeader(); err != nil {
		return nil, err
	}
	if err := s.readTrailer(lazy); err == nil {
		s.Sealed = true
		if n := s.NumBlocks(); n > 0 {
			last := s.Block(n - 1)
			s.End = last.Offset + blockHdrFrame + int64(last.DataLen)
		} else {
			s.End = s.hdrEnd
		}
		return s, nil
	}
	s.ntoc, s.tocOff, s.tocEnd = 0, 0, 0
	s.walk()
	return s, nil
}

// readHeader reads the shard header and the pcap header frame after it.
// Either one is enough to interpret the packets (link type, precision,
// snaplen): a damaged one is noted in HeaderDamage and the other used.
func (s *Shard) readHeader() error {
	if s.size < ShardHeaderLen+8 {
		return ErrShardTruncated
	}
	b := make([]byte, ShardHeaderLen+pcapFrameMax)
	n, err := s.r.ReadAt(b, 0)
	if n < ShardHeaderLen {
		if err == nil || err == io.EOF {
			return ErrShardTruncated
		}
		return err
	}
	b = b[:n]
	hdr, hdrErr := parseShardHeader(b[:ShardHeaderLen])
	if errors.Is(hdrErr, ErrShardVersion) {
		return hdrErr // intact, but not ours to read
	}
	fl, frameOK := zstdFrameLen(b[ShardHeaderLen:])
	var ph ShardHeader
	phErr := errors.New("pcap header frame missing or damaged")
	if frameOK {
		ph, phErr = parsePcapFrame(b[ShardHeaderLen : ShardHeaderLen+fl])
		s.PcapFrameLen = fl
	}
	switch {
	case hdrErr == nil && phErr == nil:
		s.Header = hdr
		if ph.LinkType != hdr.LinkType || ph.Nanos != hdr.Nanos || ph.Snaplen != hdr.Snaplen {
			s.HeaderDamage = "pcap header frame disagrees with the shard header"
			s.PcapFrameDamaged = true
		}
	case hdrErr == nil:
		s.Header = hdr
		s.HeaderDamage = phErr.Error()
		s.PcapFrameDamaged = true
	case phErr == nil:
		// The version is unknown: read as the newest, which accepts
		// everything older versions wrote.
		s.Header = ph
		s.Header.Version = ShardVersion
		s.HeaderDamage = "shard header: " + hdrErr.Error() + " (link type, precision and snaplen taken from the pcap header frame)"
	default:
		if !errors.Is(hdrErr, errHeaderCRC) {
			return ErrNotShard
		}
		return fmt.Errorf("%w: header damaged (%v) and pcap header frame too (%v)", ErrNotShard, hdrErr, phErr)
	}
	if frameOK {
		s.hdrEnd = ShardHeaderLen + int64(fl)
		return nil
	}
	// The frame's extent is unknown: the first block is wherever the
	// first intact block header is.
	s.hdrEnd = ShardHeaderLen
	if off, ok := s.resync(ShardHeaderLen, -1); ok {
		s.hdrEnd = off
	}
	return nil
}

var errHeaderCRC = errors.New("header checksum mismatch")

// parseShardHeader checks and decodes the shard header frame.
func parseShardHeader(b []byte) (ShardHeader, error) {
	if binary.LittleEndian.Uint32(b) != skipMagicMeta || binary.LittleEndian.Uint32(b[4:]) != shardHdrLen || string(b[8:12]) != "NWHS" {
		return ShardHeader{}, errors.New("no shard header")
	}
	p := b[8 : 8+shardHdrLen]
	if CRC(p[:36]) != binary.LittleEndian.Uint32(p[36:]) {
		return ShardHeader{}, errHeaderCRC
	}
	v := binary.LittleEndian.Uint16(p[4:])
	if v < oldestVersion || v > ShardVersion {
		return ShardHeader{}, fmt.Errorf("%w %d", ErrShardVersion, v)
	}
	h := ShardHeader{
		Version:  int(v),
		Nanos:    binary.LittleEndian.Uint16(p[6:])&1 != 0,
		LinkType: pkthdr.LinkType(binary.LittleEndian.Uint32(p[8:])),
		Snaplen:  binary.LittleEndian.Uint32(p[12:]),
		Created:  time.Unix(0, int64(binary.LittleEndian.Uint64(p[16:]))).UTC(),
		Writer:   string(bytes.TrimRight(p[24:32], "\x00")),
		Seq:      binary.LittleEndian.Uint32(p[32:]),
	}
	return h, nil
}

// pcapFrameMax bounds the pcap header frame: 24 bytes of content and the
// frame's overhead, with room to spare for any encoding of them.
const pcapFrameMax = 256

// headerDecoder decodes pcap header frames that are not raw blocks
// (writers store them raw; another zstd encoder might not). Its output
// is capped at the 24 bytes such a frame holds.
var headerDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<10), zstd.WithDecodeAllCapLimit(true))
	return d
})

// parsePcapFrame decodes the pcap header frame: one zstd frame whose
// content is a classic little-endian pcap file header.
func parsePcapFrame(f []byte) (ShardHeader, error) {
	ph, err := headerDecoder().DecodeAll(f, make([]byte, 0, 24))
	if err != nil || len(ph) != 24 {
		return ShardHeader{}, errors.New("pcap header frame does not decode to a pcap file header")
	}
	magic := binary.LittleEndian.Uint32(ph)
	if (magic != magicMicros && magic != magicNanos) || binary.LittleEndian.Uint16(ph[4:]) != 2 || binary.LittleEndian.Uint16(ph[6:]) != 4 {
		return ShardHeader{}, errors.New("pcap header frame holds no valid pcap file header")
	}
	snap := binary.LittleEndian.Uint32(ph[16:])
	if snap > MaxRecord {
		return ShardHeader{}, fmt.Errorf("pcap header frame: snaplen %d out of bounds", snap)
	}
	return ShardHeader{LinkType: pkthdr.LinkType(binary.LittleEndian.Uint32(ph[20:])), Snaplen: snap, Nanos: magic == magicNanos}, nil
}

// zstdFrameLen returns the length of the zstd frame at the start of b, from
// its frame header and block headers (RFC 8878 section 3.1.1).
func zstdFrameLen(b []byte) (int, bool) {
	if len(b) < 5 || binary.LittleEndian.Uint32(b) != zstdMagic {
		return 0, false
	}
	fhd := b[4]
	single := fhd&0x20 != 0
	n := 5
	if !single {
		n++ // window descriptor
	}
	n += [4]int{0, 1, 2, 4}[fhd&3]
	switch fhd >> 6 {
	case 0:
		if single {
			n++
		}
	case 1:
		n += 2
	case 2:
		n += 4
	case 3:
		n += 8
	}
	for {
		if len(b) < n+3 {
			return 0, false
		}
		bh := uint32(b[n]) | uint32(b[n+1])<<8 | uint32(b[n+2])<<16
		last, typ, size := bh&1 != 0, (bh>>1)&3, int(bh>>3)
		n += 3
		switch typ {
		case 0, 2: // raw, compressed
			n += size
		case 1: // RLE
			n++
		default:
			return 0, false
		}
		if last {
			break
		}
	}
	if fhd&4 != 0 {
		n += 4 // content checksum
	}
	return n, n <= len(b)
}

func (s *Shard) readTrailer(lazy bool) error {
	if s.size < s.hdrEnd+8+trailerFixed+4+12 {
		return ErrNoTrailer
	}
	tail := make([]byte, 12)
	if _, err := s.r.ReadAt(tail, s.size-12); err != nil {
		return err
	}
	if string(tail[4:]) != trailerEnd {
		return ErrNoTrailer
	}
	size := int64(binary.LittleEndian.Uint32(tail))
	if size < 8+trailerFixed+4+12 || size > s.size-s.hdrEnd || (size-8-trailerFixed-16)%trailerEntry != 0 {
		return ErrNoTrailer
	}
	if lazy {
		return s.readTOCHead(size)
	}
	b := make([]byte, size)
	if _, err := s.r.ReadAt(b, s.size-size); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(b) != skipMagicTrail || string(b[8:12]) != "NWHT" {
		return ErrNoTrailer
	}
	p := b[8 : size-12]
	body, sum := p[:len(p)-4], binary.LittleEndian.Uint32(p[len(p)-4:])
	if CRC(body) != sum {
		return fmt.Errorf("%w: trailer checksum mismatch", ErrNoTrailer)
	}
	n := int(binary.LittleEndian.Uint32(body[4:]))
	if n > maxBlocks || trailerFixed+n*trailerEntry != len(body) {
		return fmt.Errorf("%w: trailer block count %d inconsistent", ErrNoTrailer, n)
	}
	s.Packets = binary.LittleEndian.Uint64(body[8:])
	s.RawBytes = binary.LittleEndian.Uint64(body[16:])
	toc := body[trailerFixed:]
	blocks := make([]BlockMeta, n)
	for i := range blocks {
		blocks[i] = decodeEntry(toc[i*trailerEntry:])
		if blocks[i].Offset < s.hdrEnd || blocks[i].Offset+blockHdrFrame+int64(blocks[i].DataLen) > s.size-size {
			return fmt.Errorf("%w: block %d lies outside the file", ErrNoTrailer, i)
		}
	}
	s.Blocks = blocks
	return nil
}

// readTOCHead opens a trailer of size bytes for reading its entries one at
// a time: a query that needs a few blocks of a large shard reads a few
// entries, not the whole table, so its cost follows its matches. The
// trailer's CRC is not checked then; every block read is still checked
// against its own CRC-protected header, and Plausible tells whether an
// entry may be trusted to prune (store info --verify checks the trailer).
func (s *Shard) readTOCHead(size int64) error {
	start := s.size - size
	b := make([]byte, 8+trailerFixed)
	if _, err := s.r.ReadAt(b, start); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(b) != skipMagicTrail || string(b[8:12]) != "NWHT" {
		return ErrNoTrailer
	}
	body := b[8:]
	n := int(binary.LittleEndian.Uint32(body[4:]))
	if n > maxBlocks || int64(8+trailerFixed+n*trailerEntry+16) != size {
		return fmt.Errorf("%w: trailer block count %d inconsistent", ErrNoTrailer, n)
	}
	s.Packets = binary.LittleEndian.Uint64(body[8:])
	s.RawBytes = binary.LittleEndian.Uint64(body[16:])
	s.spanFirst = int64(binary.LittleEndian.Uint64(body[24:]))
	s.spanLast = int64(binary.LittleEndian.Uint64(body[32:]))
	s.tocEnd = start
	s.ntoc, s.tocOff = n, start+8+trailerFixed
	if n > 0 {
		// The last block bounds all others: blocks are written in order.
		if last := s.Block(n - 1); last.Offset < s.hdrEnd || last.Offset+blockHdrFrame+int64(last.DataLen) > start {
			s.ntoc, s.tocOff, s.tocEnd = 0, 0, 0
			return fmt.Errorf("%w: block %d lies outside the file", ErrNoTrailer, n-1)
		}
	}
	return nil
}

// lazyBlock reads entry i from the file, uncached: planners read many
// entries with Entries. A failed read gives an entry that no block header
// matches, so reading the block reports the damage.
func (s *Shard) lazyBlock(i int) BlockMeta {
	var e [trailerEntry]byte
	if _, err := s.r.ReadAt(e[:], s.tocOff+int64(i)*trailerEntry); err != nil {
		return BlockMeta{Offset: -1}
	}
	return decodeEntry(e[:])
}

// Plausible reports whether an entry read without the trailer CRC (see
// OpenShardTOC) is consistent with the rest of the trailer: inside the
// file and inside the shard's time range. A reader prunes blocks by time
// only on plausible entries; it reads the others, whose own headers then
// tell whether they are damaged.
func (s *Shard) Plausible(m BlockMeta) bool {
	if s.tocEnd == 0 {
		return true // checked with the whole trailer
	}
	return m.Offset >= s.hdrEnd && m.Offset+blockHdrFrame+int64(m.DataLen) <= s.tocEnd &&
		m.First <= m.Last && m.First >= s.spanFirst && m.Last <= s.spanLast
}

// tocChunk is the most of a table of contents Entries and AllEntries read
// at a time.
const tocChunk = 64 << 10

// tocGap is how many unwanted entries Entries reads through rather than
// making another read: 4 KiB, about what a system call costs in copying.
const tocGap = 4096 / trailerEntry

// Entries calls fn with the entries of the given blocks (ascending
// numbers below NumBlocks) of a lazily opened shard, reading the table in
// stretches of at most tocChunk bytes around the wanted entries into buf,
// which is returned for reuse: few reads and little memory however large
// the table, and nothing read for the parts without a wanted block.
// Entries are not checked against the trailer CRC (see OpenShardTOC); a
// failed read ends the walk.
func (s *Shard) Entries(blocks []uint32, buf []byte, fn func(i uint32, m BlockMeta)) ([]byte, error) {
	if s.tocOff == 0 {
		for _, b := range blocks {
			fn(b, s.Block(int(b)))
		}
		return buf, nil
	}
	buf = tocBuffer(buf)
	have0, have1 := -1, -1 // entries held in buf: [have0, have1)
	for k, b := range blocks {
		i := int(b)
		if i >= s.ntoc {
			return buf, fmt.Errorf("block %d beyond the table of contents (%d blocks)", i, s.ntoc)
		}
		if i < have0 || i >= have1 {
			// Read from this entry through the last of the next ones
			// that lie close together: a selective query's blocks are
			// scattered over the table, and reading whole chunks copied
			// a megabyte per shard for a few kilobytes of entries.
			end := i + 1
			for _, c := range blocks[k+1:] {
				j := int(c)
				if j < end || j >= s.ntoc || j-end > tocGap || j+1-i > len(buf)/trailerEntry {
					break
				}
				end = j + 1
			}
			n := end - i
			if _, err := s.r.ReadAt(buf[:n*trailerEntry], s.tocOff+int64(i)*trailerEntry); err != nil {
				return buf, fmt.Errorf("read table of contents: %w", err)
			}
			have0, have1 = i, i+n
		}
		fn(b, decodeEntry(buf[(i-have0)*trailerEntry:]))
	}
	return buf, nil
}

// tocBuffer returns buf, or a new buffer if buf holds less than a chunk,
// at full length.
func tocBuffer(buf []byte) []byte {
	if cap(buf) < tocChunk {
		bigbuf.Put(buf)
		buf = bigbuf.Get(tocChunk)
	}
	return buf[:cap(buf)]
}

// AllEntries is Entries for every block of the shard, without a list of
// them: a time-range query looks at each entry's time range, reading the
// table a chunk at a time into buf instead of loading it whole.
func (s *Shard) AllEntries(buf []byte, fn func(i uint32, m BlockMeta)) ([]byte, error) {
	if s.tocOff == 0 {
		for i, m := range s.Blocks {
			fn(uint32(i), m)
		}
		return buf, nil
	}
	buf = tocBuffer(buf)
	for i := 0; i < s.ntoc; {
		n := min(len(buf)/trailerEntry, s.ntoc-i)
		if _, err := s.r.ReadAt(buf[:n*trailerEntry], s.tocOff+int64(i)*trailerEntry); err != nil {
			return buf, fmt.Errorf("read table of contents: %w", err)
		}
		for j := range n {
			fn(uint32(i+j), decodeEntry(buf[j*trailerEntry:]))
		}
		i += n
	}
	return buf, nil
}

// LoadTOC reads a lazily opened shard's whole table of contents at once,
// checking its CRC, for a reader about to look at most entries. If the
// table is damaged, the shard is walked block by block instead (Sealed
// becomes false) and the error says why.
func (s *Shard) LoadTOC() error {
	if s.tocOff == 0 {
		return nil
	}
	s.ntoc, s.tocOff, s.tocEnd = 0, 0, 0
	err := s.readTrailer(false)
	if err != nil {
		s.Sealed, s.Blocks = false, nil
		s.walk()
	}
	return err
}

// Refresh walks the blocks appended to an open shard since it was opened
// (or last refreshed), given the file's new size.
func (s *Shard) Refresh(size int64) {
	if s.Sealed || size <= s.size {
		return
	}
	s.size = size
	s.Damage = nil
	s.walkFrom(s.End)
}

// walk reads block headers forward from the first block until the data
// ends, resynchronising on the next intact block past damage.
func (s *Shard) walk() {
	s.End = s.hdrEnd
	s.walkFrom(s.hdrEnd)
}

// lastNumber is the number of the last block found, or -1.
func (s *Shard) lastNumber() int64 {
	if len(s.Blocks) == 0 {
		return -1
	}
	return int64(s.Blocks[len(s.Blocks)-1].Number)
}

func (s *Shard) walkFrom(off int64) {
	hdr := make([]byte, blockHdrFrame)
	for off < s.size {
		n, _ := s.r.ReadAt(hdr, off)
		if n < blockHdrFrame {
			// The end of the file: a block or trailer being written, or
			// one cut short. Nothing can follow it.
			if n >= 4 && binary.LittleEndian.Uint32(hdr) == skipMagicTrail {
				return // a partly written trailer
			}
			if n > 0 {
				s.Damage = &BlockError{len(s.Blocks), off, "incomplete block header"}
			}
			return
		}
		m, reason := parseBlockHeader(hdr)
		if reason == "" && int64(m.Number) <= s.lastNumber() {
			reason = fmt.Sprintf("block number %d out of sequence", m.Number)
		}
		if reason == "" {
			end := off + blockHdrFrame + int64(m.DataLen)
			if end > s.size {
				s.Damage = &BlockError{len(s.Blocks), off, "incomplete block data"}
				return
			}
			s.addBlock(m, off)
			off = end
			continue
		}
		next, ok := s.resync(off+1, s.lastNumber())
		if !ok {
			if binary.LittleEndian.Uint32(hdr) != skipMagicTrail {
				s.Damage = &BlockError{len(s.Blocks), off, reason}
			}
			return // the trailer (damaged, or being written), or damage to the end
		}
		s.Gaps = append(s.Gaps, BlockError{len(s.Blocks), off, fmt.Sprintf("%d damaged bytes skipped to the next intact block (%s)", next-off, reason)})
		off = next
	}
}

func (s *Shard) addBlock(m BlockMeta, off int64) {
	m.Offset = off
	s.Blocks = append(s.Blocks, m)
	s.Packets += uint64(m.Packets)
	s.RawBytes += uint64(m.RawLen)
	s.End = off + blockHdrFrame + int64(m.DataLen)
}

// blockMark is how every block header frame starts: the skippable-frame
// magic, the payload size and the tag.
var blockMark = []byte{0x5e, 0x2a, 0x4d, 0x18, blockHdrLen, 0, 0, 0, 'N', 'W', 'H', 'B'}

// resyncChunk is how much of the file resync reads at a time.
const resyncChunk = 1 << 20

// resync finds the first intact block at or after from: its header frame
// checks, its number is above last, and its data frame lies inside the
// file with a CRC that checks (docs/format/shard.md, "Finding blocks
// without the header or trailer").
func (s *Shard) resync(from, last int64) (int64, bool) {
	buf := make([]byte, resyncChunk)
	var data []byte
	for off := from; off+blockHdrFrame <= s.size; {
		n, _ := s.r.ReadAt(buf, off)
		if n < len(blockMark) {
			return 0, false
		}
		chunk := buf[:n]
		for i := 0; ; {
			j := bytes.Index(chunk[i:], blockMark)
			if j < 0 {
				break
			}
			at := off + int64(i+j)
			var ok bool
			if ok, data = s.intactAt(at, last, data); ok {
				return at, true
			}
			i += j + 1
		}
		if off+int64(n) >= s.size {
			return 0, false
		}
		// The next chunk overlaps this one by a mark less a byte, so a
		// mark across the boundary is found.
		off += int64(n - len(blockMark) + 1)
	}
	return 0, false
}

// intactAt checks the block at off the way resync needs; data is a
// buffer for the block's data, returned for reuse.
func (s *Shard) intactAt(off, last int64, data []byte) (bool, []byte) {
	hdr := make([]byte, blockHdrFrame)
	if n, _ := s.r.ReadAt(hdr, off); n < blockHdrFrame {
		return false, data
	}
	m, reason := parseBlockHeader(hdr)
	if reason != "" || int64(m.Number) <= last || off+blockHdrFrame+int64(m.DataLen) > s.size {
		return false, data
	}
	if cap(data) < int(m.DataLen) {
		data = make([]byte, m.DataLen)
	}
	data = data[:m.DataLen]
	if n, _ := s.r.ReadAt(data, off+blockHdrFrame); n < len(data) || CRC(data) != m.DataCRC {
		return false, data
	}
	return true, data
}

// parseBlockHeader checks a block header frame; it returns why it is bad.
func parseBlockHeader(h []byte) (BlockMeta, string) {
	if !bytes.Equal(h[:len(blockMark)], blockMark) {
		return BlockMeta{}, "no block header"
	}
	p := h[8:]
	if CRC(p[:40]) != binary.LittleEndian.Uint32(p[40:]) {
		return BlockMeta{}, "block header checksum mismatch"
	}
	m := BlockMeta{
		Number:  binary.LittleEndian.Uint32(p[4:]),
		First:   int64(binary.LittleEndian.Uint64(p[8:])),
		Last:    int64(binary.LittleEndian.Uint64(p[16:])),
		Packets: binary.LittleEndian.Uint32(p[24:]),
		RawLen:  binary.LittleEndian.Uint32(p[28:]),
		DataLen: binary.LittleEndian.Uint32(p[32:]),
		DataCRC: binary.LittleEndian.Uint32(p[36:]),
	}
	if m.RawLen > MaxBlockRaw || m.DataLen > maxDataLen {
		return BlockMeta{}, "block length out of bounds"
	}
	return m, ""
}

// maxDataLen bounds a block's data frame: its raw length and zstd's worst
// case overhead.
const maxDataLen = MaxBlockRaw + MaxBlockRaw/64 + 1024

// BlockReader reads and decompresses blocks, reusing its buffers. It is not
// safe for concurrent use; make one per goroutine.
type BlockReader struct {
	dec   *zstd.Decoder
	spare []byte // a buffer to decompress into, or to lend for the next read
	raw   []byte // Read's buffer
}

// NewBlockReader returns a reader with its own decoder.
func NewBlockReader() *BlockReader {
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxBlockRaw), zstd.WithDecodeAllCapLimit(true))
	return &BlockReader{dec: dec}
}

// Close releases the decoder and the buffers.
func (br *BlockReader) Close() {
	br.dec.Close()
	bigbuf.Put(br.spare)
	bigbuf.Put(br.raw)
	br.spare, br.raw = nil, nil
}

// Read returns block i's pcap records (valid until the next Read) and its
// checked metadata. Damage is a *BlockError.
func (br *BlockReader) Read(s *Shard, i int) ([]byte, BlockMeta, error) {
	return br.ReadMeta(s, i, s.Block(i))
}

// ReadMeta is Read for a caller that already holds block i's metadata.
func (br *BlockReader) ReadMeta(s *Shard, i int, m BlockMeta) ([]byte, BlockMeta, error) {
	raw, owner, hm, err := br.ReadInto(s, i, m, br.raw)
	br.raw = owner
	return raw, hm, err
}

// ReadInto is ReadMeta for a caller that keeps blocks: it reads into buf
// (its length ignored, grown as needed) and returns the records and the
// buffer holding them, which the caller now owns (hand it back to a later
// ReadInto, or to bigbuf.Put) and which may not be buf: a stored block's
// records are used where they were read, a compressed one's are
// decompressed into the reader's spare buffer, and buf becomes the spare.
// owner is returned on errors too.
func (br *BlockReader) ReadInto(s *Shard, i int, m BlockMeta, buf []byte) (raw, owner []byte, hm BlockMeta, err error) {
	// An entry's length is checked before it sizes a buffer: a damaged or
	// crafted table of contents allocates nothing past a block's bounds
	// or the file's end.
	if m.DataLen > maxDataLen {
		return nil, buf, m, &BlockError{i, m.Offset, "block length out of bounds"}
	}
	if m.Offset < 0 || m.Offset+blockHdrFrame+int64(m.DataLen) > s.size {
		return nil, buf, m, &BlockError{i, m.Offset, "block runs past the end of the file"}
	}
	n := blockHdrFrame + int(m.DataLen)
	if cap(buf) < n {
		bigbuf.Put(buf)
		buf = bigbuf.Get(bufRound(n))
	}
	b := buf[:n]
	if _, err := s.r.ReadAt(b, m.Offset); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, buf, m, &BlockError{i, m.Offset, "block runs past the end of the file"}
		}
		return nil, buf, m, fmt.Errorf("read block %d at byte %d: %w", i, m.Offset, err)
	}
	hm, reason := parseBlockHeader(b)
	if reason != "" {
		return nil, buf, m, &BlockError{i, m.Offset, reason}
	}
	if hm.DataLen != m.DataLen || (s.Sealed && (hm.First != m.First || hm.Packets != m.Packets)) || (!s.Sealed && hm.Number != m.Number) {
		return nil, buf, m, &BlockError{i, m.Offset, "block header disagrees with the table of contents"}
	}
	hm.Offset = m.Offset
	data := b[blockHdrFrame:]
	if CRC(data) != hm.DataCRC {
		return nil, buf, hm, &BlockError{i, m.Offset, "data checksum mismatch"}
	}
	if content, ok := storedContent(data, hm.RawLen); ok {
		return content, buf, hm, nil
	}
	out := br.spare
	if cap(out) < int(hm.RawLen)+decodeSlack {
		// Sized with room to spare: blocks differ by a packet or two,
		// and a buffer regrown for each would be fresh memory each time
		// (a page fault per 4 KiB).
		bigbuf.Put(out)
		out = bigbuf.Get(bufRound(int(hm.RawLen)))
	}
	br.spare = buf
	// Capped at the declared length: a frame claiming more (or holding
	// several) is refused before it is decoded past it. The decoder's fast
	// copies need decodeSlack bytes of room past the end; without them it
	// takes its slow path.
	raw, err = br.dec.DecodeAll(data, out[:0:int(hm.RawLen)+decodeSlack])
	if err != nil {
		return nil, out, hm, &BlockError{i, m.Offset, "decompress: " + err.Error()}
	}
	if len(raw) != int(hm.RawLen) {
		return nil, out, hm, &BlockError{i, m.Offset, fmt.Sprintf("decompressed %d bytes, header says %d", len(raw), hm.RawLen)}
	}
	return raw, out, hm, nil
}

// decodeSlack is the room past a block's raw length the zstd decoder's
// fast copies write into (klauspost/compress compressedBlockOverAlloc).
const decodeSlack = 32

// bufRound rounds a buffer size up to a multiple of 16 KiB with at least
// 4 KiB to spare: room for the zstd decoder's small over-allocation and
// for the next blocks, which differ by a packet or two.
func bufRound(n int) int { return (n + 4<<10 + 16<<10 - 1) &^ (16<<10 - 1) }

// Records walks the pcap records of a block. fn gets each packet (Data is
// a slice of raw); returning false stops the walk. A record that does not fit
// is reported as an error.
func Records(raw []byte, lt pkthdr.LinkType, nanos bool, fn func(p Packet) bool) error {
	for off := 0; off < len(raw); {
		ts, caplen, orig, err := recordHeader(raw, off, nanos)
		if err != nil {
			return err
		}
		p := Packet{Timestamp: time.Unix(0, ts).UTC(), LinkType: lt, Data: raw[off+16 : off+16+caplen], OrigLen: int(orig), Offset: int64(off)}
		if !fn(p) {
			return nil
		}
		off += 16 + caplen
	}
	return nil
}

// RecordSpans walks a block's records like Records for callers that want
// every record as stored, not decoded: fn gets each record's offset and
// length (header included), time in nanoseconds and length on the wire.
func RecordSpans(raw []byte, nanos bool, fn func(off, n int, ts int64, orig uint32)) error {
	for off := 0; off < len(raw); {
		ts, caplen, orig, err := recordHeader(raw, off, nanos)
		if err != nil {
			return err
		}
		fn(off, 16+caplen, ts, orig)
		off += 16 + caplen
	}
	return nil
}

// recordHeader checks and decodes the pcap record header at off.
func recordHeader(raw []byte, off int, nanos bool) (ts int64, caplen int, orig uint32, err error) {
	if len(raw)-off < 16 {
		return 0, 0, 0, fmt.Errorf("record at %d: truncated header", off)
	}
	h := raw[off:]
	sec, frac := binary.LittleEndian.Uint32(h), binary.LittleEndian.Uint32(h[4:])
	c, orig := binary.LittleEndian.Uint32(h[8:]), binary.LittleEndian.Uint32(h[12:])
	if c > MaxRecord || int(c) > len(raw)-off-16 {
		return 0, 0, 0, fmt.Errorf("record at %d: length %d out of bounds", off, c)
	}
	nsec := int64(frac)
	if !nanos {
		nsec *= 1000
	}
	return int64(sec)*1e9 + nsec, int(c), orig, nil
}

// BlockSpan is the number of file bytes a block occupies (header frame
// and data frame) from its Offset.
func BlockSpan(m BlockMeta) int { return blockHdrFrame + int(m.DataLen) }

// TrailerFor returns the trailer bytes sealing blocks; recovery appends it
// to a shard truncated at its last good block.
func TrailerFor(blocks []BlockMeta) []byte { return encodeTrailer(blocks) }

// PcapHeaderFrame returns the pcap header frame for h in exactly n bytes,
// if one of the encodings writers use has that length (with and without
// a content checksum): repair rewrites a damaged frame in place only when
// the rewrite fits exactly, so that no block moves.
func PcapHeaderFrame(h ShardHeader, n int) ([]byte, bool) {
	for _, crc := range []bool{false, true} {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(crc), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, false
		}
		f := enc.EncodeAll(PcapHeader(h.LinkType, h.Snaplen, h.Nanos), nil)
		enc.Close()
		if len(f) == n {
			return f, true
		}
	}
	return nil, false
}

// blockHeaderFrame encodes a block header frame for m, numbered number.
func blockHeaderFrame(m BlockMeta, number uint32) []byte {
	h := make([]byte, 0, blockHdrFrame)
	h = binary.LittleEndian.AppendUint32(h, skipMagicMeta)
	h = binary.LittleEndian.AppendUint32(h, blockHdrLen)
	h = append(h, "NWHB"...)
	h = binary.LittleEndian.AppendUint32(h, number)
	h = binary.LittleEndian.AppendUint64(h, uint64(m.First))
	h = binary.LittleEndian.AppendUint64(h, uint64(m.Last))
	h = binary.LittleEndian.AppendUint32(h, m.Packets)
	h = binary.LittleEndian.AppendUint32(h, m.RawLen)
	h = binary.LittleEndian.AppendUint32(h, m.DataLen)
	h = binary.LittleEndian.AppendUint32(h, m.DataCRC)
	return binary.LittleEndian.AppendUint32(h, CRC(h[8:]))
}

// MendBlockHeader looks at a damaged stretch between two intact blocks
// (or before the first) for a block whose header frame alone is damaged:
// the stretch is a header frame's 52 bytes followed by exactly one zstd
// frame that decodes to whole pcap records, and the damaged header's
// data CRC field still matches that frame. That CRC is what vouches for
// the data: a block whose data CRC field is the damaged part is not
// mended (its data cannot be told intact). It returns a header frame
// rebuilt from the records, numbered number, to be written over the
// damaged one; ok is false for anything else (a stretch that is not such
// a block is left alone).
func MendBlockHeader(stretch []byte, number uint32, nanos bool) (hdr []byte, m BlockMeta, ok bool) {
	if len(stretch) <= blockHdrFrame+9 || len(stretch) > blockHdrFrame+MaxBlockRaw+MaxBlockRaw/64+1024 {
		return nil, m, false
	}
	data := stretch[blockHdrFrame:]
	if fl, ok := zstdFrameLen(data); !ok || fl != len(data) || binary.LittleEndian.Uint32(stretch[8+36:]) != CRC(data) {
		return nil, m, false
	}
	raw, err := mendDecoder().DecodeAll(data, nil)
	if err != nil || len(raw) == 0 {
		return nil, m, false
	}
	m = BlockMeta{First: 1<<63 - 1, Last: -1 << 63, RawLen: uint32(len(raw)), DataLen: uint32(len(data)), DataCRC: CRC(data)}
	if err := RecordSpans(raw, nanos, func(_, _ int, ts int64, _ uint32) {
		m.Packets++
		m.First, m.Last = min(m.First, ts), max(m.Last, ts)
	}); err != nil {
		return nil, m, false
	}
	if binary.LittleEndian.Uint32(stretch[8+36:]) != m.DataCRC {
		return nil, m, false
	}
	m.Number = number
	return blockHeaderFrame(m, number), m, true
}

// mendDecoder decodes the frames MendBlockHeader looks at, capped at a
// block's largest raw length.
var mendDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxBlockRaw))
	return d
})
