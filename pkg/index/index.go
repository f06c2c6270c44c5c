// Package index maps packet keys (addresses, ports, protocols, VLANs) to
// the blocks of a shard that hold them (docs/format/index.md). Queries are
// set algebra over these block lists.
package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"slices"
	"sort"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Kind is a key type.
type Kind uint8

// Key kinds and their value sizes (docs/format/index.md).
const (
	KindIPv4      Kind = 1
	KindIPv6      Kind = 2
	KindPort      Kind = 3
	KindProto     Kind = 4
	KindVLAN      Kind = 5
	KindEtherType Kind = 6
)

func (k Kind) size() int {
	switch k {
	case KindIPv4:
		return 4
	case KindIPv6:
		return 16
	case KindPort, KindVLAN, KindEtherType:
		return 2
	case KindProto:
		return 1
	}
	return 0
}

// Key is one index key. V holds the value big-endian, left-aligned.
type Key struct {
	Kind Kind
	V    [16]byte
}

// Addr returns the key for an IP address.
func Addr(a netip.Addr) Key {
	a = a.Unmap()
	if a.Is4() {
		k := Key{Kind: KindIPv4}
		b := a.As4()
		copy(k.V[:], b[:])
		return k
	}
	return Key{Kind: KindIPv6, V: a.As16()}
}

// Port returns the key for a TCP/UDP/SCTP port.
func Port(p uint16) Key { return Key{Kind: KindPort, V: [16]byte{byte(p >> 8), byte(p)}} }

// Proto returns the key for an IP protocol number.
func Proto(p uint8) Key { return Key{Kind: KindProto, V: [16]byte{p}} }

// VLAN returns the key for a VLAN id.
func VLAN(id uint16) Key { return Key{Kind: KindVLAN, V: [16]byte{byte(id >> 8), byte(id)}} }

// EtherType returns the key for a non-IP frame's EtherType.
func EtherType(et uint16) Key { return Key{Kind: KindEtherType, V: [16]byte{byte(et >> 8), byte(et)}} }

// Keys appends the keys of a parsed packet to dst.
func Keys(dst []Key, p *pkthdr.Packet) []Key {
	for i := 0; i < p.NVLAN; i++ {
		dst = append(dst, VLAN(p.VLAN[i]))
	}
	if p.IPVersion == 0 {
		if p.EtherType != 0 {
			dst = append(dst, EtherType(p.EtherType))
		}
		if p.ARP {
			dst = append(dst, Addr(p.Src), Addr(p.Dst))
		}
		return dst
	}
	dst = append(dst, Addr(p.Src), Addr(p.Dst), Proto(p.Proto))
	if p.HasPorts {
		dst = append(dst, Port(p.SrcPort))
		if p.DstPort != p.SrcPort {
			dst = append(dst, Port(p.DstPort))
		}
	}
	return dst
}

// Builder accumulates the keys of one shard's blocks. It is on the
// per-packet path of capture and import, so a block's distinct keys are
// gathered in an open-addressing set that is "cleared" by bumping a
// generation, and consecutive packets of one flow cost one comparison.
type Builder struct {
	postings map[Key][]uint32
	block    uint32
	blocks   uint32
	first    int64
	last     int64
	any      bool

	prev    [8]Key
	prevN   int
	slots   []slot
	gen     uint32
	inBlock []Key           // distinct keys of the current block
	sigs    [256][4]sigSlot // 4-way: busy flows that collide do not evict each other
	sigNext uint8
	keys    []Key
}

// sig is everything of a packet its keys derive from: packets with equal
// signatures have equal keys, so a signature already seen in the block
// costs one comparison. It is plain words (addresses as the halves of their
// 16-byte form, the rest packed) so that comparing and hashing it, once a
// packet, takes a few instructions.
type sig struct {
	shi, slo, dhi, dlo uint64
	ports              uint64 // sport<<48 | dport<<32 | ethertype<<16 | proto<<8 | IP version
	link               uint64 // vlan[0]<<48 | vlan[1]<<32 | nvlan<<8 | has ports<<1 | arp
}

func (s *sig) eq(o *sig) bool {
	return s.ports == o.ports && s.slo == o.slo && s.dlo == o.dlo && s.link == o.link && s.shi == o.shi && s.dhi == o.dhi
}

func addrWords(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

type sigSlot struct {
	gen  uint32
	hash uint32
	sig  sig
}

// AddPacket records the keys of a parsed packet in the current block.
func (b *Builder) AddPacket(p *pkthdr.Packet) {
	var sg sig
	sg.shi, sg.slo = addrWords(p.Src)
	sg.dhi, sg.dlo = addrWords(p.Dst)
	sg.ports = uint64(p.SrcPort)<<48 | uint64(p.DstPort)<<32 | uint64(p.EtherType)<<16 | uint64(p.Proto)<<8 | uint64(p.IPVersion)
	sg.link = uint64(p.VLAN[0])<<48 | uint64(p.VLAN[1])<<32 | uint64(p.NVLAN)<<8
	if p.HasPorts {
		sg.link |= 2
	}
	if p.ARP {
		sg.link |= 1
	}
	// The top bits of each product depend on every bit of its factor.
	h64 := (sg.shi^sg.slo)*0x9e3779b97f4a7c15 ^ (sg.dhi^sg.dlo)*0xc2b2ae3d27d4eb4f ^
		sg.ports*0xd6e8feb86659fd93 ^ sg.link*0x85ebca77c2b2ae63
	h := uint32(h64 >> 32)
	set := &b.sigs[h>>24]
	for i := range set {
		if sl := &set[i]; sl.gen == b.gen && sl.hash == h && sl.sig.eq(&sg) {
			return
		}
	}
	victim := -1
	for i := range set {
		if set[i].gen != b.gen {
			victim = i
			break
		}
	}
	if victim < 0 {
		b.sigNext++
		victim = int(b.sigNext & 3)
	}
	set[victim] = sigSlot{gen: b.gen, hash: h, sig: sg}
	b.keys = Keys(b.keys[:0], p)
	b.Add(b.keys)
}

type slot struct {
	gen uint32
	key Key
}

const setBits = 15 // 32768 slots: more than the keys a 128 KiB block can hold

// NewBuilder returns an empty builder positioned at block 0.
func NewBuilder() *Builder {
	return &Builder{postings: make(map[Key][]uint32), slots: make([]slot, 1<<setBits), gen: 1}
}

func (k *Key) hash() uint64 {
	a := binary.LittleEndian.Uint64(k.V[0:8])
	b := binary.LittleEndian.Uint64(k.V[8:16])
	// Multiplication moves entropy only upwards; the folds bring the high
	// bits back down, since the table is indexed by the low ones.
	h := (a^uint64(k.Kind)<<59)*0x9e3779b97f4a7c15 ^ b*0xc2b2ae3d27d4eb4f
	h ^= h >> 32
	h *= 0xd6e8feb86659fd93
	return h ^ h>>29
}

// Add records the keys of one packet in the current block.
func (b *Builder) Add(keys []Key) {
	if b.prevN == len(keys) && len(keys) <= len(b.prev) {
		same := true
		for i := range keys {
			if keys[i] != b.prev[i] {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	mask := uint64(len(b.slots) - 1)
	for i := range keys {
		k := &keys[i]
		// Past half full the table degrades: later keys go to the list
		// unchecked and EndBlock dedupes them.
		if len(b.inBlock) > len(b.slots)/2 {
			b.inBlock = append(b.inBlock, *k)
			continue
		}
		for h := k.hash() & mask; ; h = (h + 1) & mask {
			s := &b.slots[h]
			if s.gen != b.gen {
				s.gen, s.key = b.gen, *k
				b.inBlock = append(b.inBlock, *k)
				break
			}
			if s.key == *k {
				break
			}
		}
	}
	if len(keys) <= len(b.prev) {
		b.prevN = copy(b.prev[:], keys)
	} else {
		b.prevN = 0
	}
}

// EndBlock closes the current block: its keys join their postings.
func (b *Builder) EndBlock(first, last int64) {
	for _, k := range b.inBlock {
		p := b.postings[k]
		if n := len(p); n > 0 && p[n-1] == b.block {
			continue // a duplicate from an overfull set
		}
		b.postings[k] = append(p, b.block)
	}
	b.inBlock = b.inBlock[:0]
	b.gen++
	if b.gen == 0 { // wrapped: old generations could alias
		clear(b.slots)
		b.gen = 1
	}
	b.prevN = 0
	if !b.any || first < b.first {
		b.first = first
	}
	if !b.any || last > b.last {
		b.last = last
	}
	b.any = true
	b.block++
	b.blocks = b.block
}

// Blocks is the number of blocks ended so far.
func (b *Builder) Blocks() int { return int(b.blocks) }

// Keys is the number of distinct keys.
func (b *Builder) Keys() int { return len(b.postings) }

// Index file constants.
const (
	Version     = 1
	headerLen   = 48
	flagRawBody = 1       // header flags bit 0: the body is not compressed
	rawBodyMax  = 4 << 20 // bodies larger than this are compressed
	// maxBody bounds the decompressed body a reader accepts.
	maxBody = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode serialises the index (docs/format/index.md).
func (b *Builder) Encode(enc *zstd.Encoder) []byte {
	byKind := map[Kind][]Key{}
	for k := range b.postings {
		byKind[k.Kind] = append(byKind[k.Kind], k)
	}
	kinds := make([]Kind, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	dirLen := 16 * len(kinds)
	var tables, postings []byte
	type sect struct {
		kind                 Kind
		n                    int
		tableOff, postingOff int
	}
	var sects []sect
	var post []byte
	tables = make([]byte, 0)
	postStart := 0
	for _, kind := range kinds {
		keys := byKind[kind]
		sz := kind.size()
		sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i].V[:sz], keys[j].V[:sz]) < 0 })
		sc := sect{kind: kind, n: len(keys), tableOff: len(tables)}
		post = post[:0]
		for _, k := range keys {
			tables = append(tables, k.V[:sz]...)
			tables = binary.LittleEndian.AppendUint32(tables, uint32(len(post)))
			blocks := b.postings[k]
			tables = binary.LittleEndian.AppendUint32(tables, uint32(len(blocks)))
			prev := uint32(0)
			for i, blk := range blocks {
				if i == 0 {
					post = binary.AppendUvarint(post, uint64(blk))
				} else {
					post = binary.AppendUvarint(post, uint64(blk-prev))
				}
				prev = blk
			}
		}
		sc.postingOff = postStart
		postings = append(postings, post...)
		postStart += len(post)
		sects = append(sects, sc)
	}
	body := make([]byte, 0, dirLen+len(tables)+len(postings))
	for _, sc := range sects {
		body = append(body, byte(sc.kind), byte(sc.kind.size()), 0, 0)
		body = binary.LittleEndian.AppendUint32(body, uint32(sc.n))
		body = binary.LittleEndian.AppendUint32(body, uint32(dirLen+sc.tableOff))
		body = binary.LittleEndian.AppendUint32(body, uint32(dirLen+len(tables)+sc.postingOff))
	}
	body = append(body, tables...)
	body = append(body, postings...)
	// The body is stored raw unless it is large: a query then reads it in
	// place instead of decompressing every index it consults, and indexes
	// stay around a ten-thousandth of the packet bytes either way.
	stored, flags := body, uint16(flagRawBody)
	if len(body) > rawBodyMax {
		stored, flags = enc.EncodeAll(body, nil), 0
	}

	h := make([]byte, headerLen, headerLen+len(stored))
	copy(h, "NWHI")
	binary.LittleEndian.PutUint16(h[4:], Version)
	binary.LittleEndian.PutUint16(h[6:], flags)
	binary.LittleEndian.PutUint64(h[24:], uint64(b.first))
	binary.LittleEndian.PutUint64(h[32:], uint64(b.last))
	putHeader(h, b.blocks, uint32(len(sects)), uint32(len(body)), stored)
	return append(h, stored...)
}

// putHeader fills the counts, lengths and checksums of an index header.
func putHeader(h []byte, blocks, sects, rawLen uint32, stored []byte) {
	binary.LittleEndian.PutUint32(h[8:], blocks)
	binary.LittleEndian.PutUint32(h[12:], sects)
	binary.LittleEndian.PutUint32(h[16:], rawLen)
	binary.LittleEndian.PutUint32(h[20:], uint32(len(stored)))
	binary.LittleEndian.PutUint32(h[40:], crc32.Checksum(stored, castagnoli))
	binary.LittleEndian.PutUint32(h[44:], crc32.Checksum(h[:44], castagnoli))
}

// Errors of Open.
var (
	ErrNotIndex = errors.New("not an nwhealth index")
	ErrVersion  = errors.New("unsupported index version")
	ErrCorrupt  = errors.New("index damaged")
)

// Index is a decoded shard index.
type Index struct {
	Blocks      int
	First, Last int64
	body        []byte
	sects       map[Kind]section
}

type section struct {
	size      int
	n         int
	table     []byte
	postings  []byte
	entrySize int
}

// Open decodes an index file's bytes. A raw body is used in place; a
// compressed one is decoded with dec, or with a decoder of its own when
// dec is nil.
func Open(b []byte, dec *zstd.Decoder) (*Index, error) {
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrNotIndex, len(b))
	}
	if string(b[:4]) != "NWHI" {
		return nil, ErrNotIndex
	}
	if crc32.Checksum(b[:44], castagnoli) != binary.LittleEndian.Uint32(b[44:]) {
		return nil, fmt.Errorf("%w: header checksum mismatch", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != Version {
		return nil, fmt.Errorf("%w %d", ErrVersion, v)
	}
	ix := &Index{
		Blocks: int(binary.LittleEndian.Uint32(b[8:])),
		First:  int64(binary.LittleEndian.Uint64(b[24:])),
		Last:   int64(binary.LittleEndian.Uint64(b[32:])),
		sects:  map[Kind]section{},
	}
	nsect := int(binary.LittleEndian.Uint32(b[12:]))
	rawLen := int(binary.LittleEndian.Uint32(b[16:]))
	storedLen := int(binary.LittleEndian.Uint32(b[20:]))
	if storedLen != len(b)-headerLen || rawLen > maxBody || nsect > 255 {
		return nil, fmt.Errorf("%w: lengths inconsistent", ErrCorrupt)
	}
	stored := b[headerLen:]
	if crc32.Checksum(stored, castagnoli) != binary.LittleEndian.Uint32(b[40:]) {
		return nil, fmt.Errorf("%w: body checksum mismatch", ErrCorrupt)
	}
	body := stored
	if binary.LittleEndian.Uint16(b[6:])&flagRawBody == 0 {
		var err error
		if dec == nil {
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			defer d.Close()
			dec = d
		}
		body, err = dec.DecodeAll(stored, make([]byte, 0, rawLen))
		if err != nil || len(body) != rawLen {
			return nil, fmt.Errorf("%w: body does not decompress to %d bytes", ErrCorrupt, rawLen)
		}
	} else if len(body) != rawLen {
		return nil, fmt.Errorf("%w: raw body of %d bytes, header says %d", ErrCorrupt, len(body), rawLen)
	}
	ix.body = body
	if len(body) < 16*nsect {
		return nil, fmt.Errorf("%w: section directory truncated", ErrCorrupt)
	}
	for i := 0; i < nsect; i++ {
		d := body[16*i:]
		kind, size := Kind(d[0]), int(d[1])
		n := int(binary.LittleEndian.Uint32(d[4:]))
		toff := int(binary.LittleEndian.Uint32(d[8:]))
		poff := int(binary.LittleEndian.Uint32(d[12:]))
		es := size + 8
		if size != kind.size() || size == 0 || n < 0 || toff > len(body) || n > (len(body)-toff)/es || poff > len(body) {
			return nil, fmt.Errorf("%w: section %d out of bounds", ErrCorrupt, i)
		}
		ix.sects[kind] = section{size: size, n: n, table: body[toff : toff+n*es], postings: body[poff:], entrySize: es}
	}
	return ix, nil
}

// Lookup returns the sorted block numbers holding key k (nil when none).
func (ix *Index) Lookup(k Key) ([]uint32, error) {
	s, ok := ix.sects[k.Kind]
	if !ok {
		return nil, nil
	}
	v := k.V[:s.size]
	i := sort.Search(s.n, func(i int) bool { return bytes.Compare(s.table[i*s.entrySize:i*s.entrySize+s.size], v) >= 0 })
	if i == s.n || !bytes.Equal(s.table[i*s.entrySize:i*s.entrySize+s.size], v) {
		return nil, nil
	}
	e := s.table[i*s.entrySize+s.size:]
	off, cnt := int(binary.LittleEndian.Uint32(e)), int(binary.LittleEndian.Uint32(e[4:]))
	if off > len(s.postings) || cnt > ix.Blocks || cnt > len(s.postings)-off {
		return nil, fmt.Errorf("%w: posting out of bounds", ErrCorrupt)
	}
	p := s.postings[off:]
	out := make([]uint32, 0, cnt)
	var cur uint64
	for j := 0; j < cnt; j++ {
		d, n := binary.Uvarint(p)
		if n <= 0 {
			return nil, fmt.Errorf("%w: posting varint", ErrCorrupt)
		}
		p = p[n:]
		if j == 0 {
			cur = d
		} else {
			if d == 0 {
				return nil, fmt.Errorf("%w: posting not increasing", ErrCorrupt)
			}
			cur += d
		}
		if cur >= uint64(ix.Blocks) {
			return nil, fmt.Errorf("%w: posting names block %d of %d", ErrCorrupt, cur, ix.Blocks)
		}
		out = append(out, uint32(cur))
	}
	return out, nil
}

// Range returns the block lists of every key of kind whose value lies in
// [lo, hi] (inclusive, big-endian bytes), for CIDR queries.
func (ix *Index) Range(kind Kind, lo, hi [16]byte) ([][]uint32, error) {
	s, ok := ix.sects[kind]
	if !ok {
		return nil, nil
	}
	i := sort.Search(s.n, func(i int) bool { return bytes.Compare(s.table[i*s.entrySize:i*s.entrySize+s.size], lo[:s.size]) >= 0 })
	var out [][]uint32
	for ; i < s.n; i++ {
		var k Key
		k.Kind = kind
		copy(k.V[:], s.table[i*s.entrySize:i*s.entrySize+s.size])
		if bytes.Compare(k.V[:s.size], hi[:s.size]) > 0 {
			break
		}
		l, err := ix.Lookup(k)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// Size reports the decompressed body length, for statistics.
func (ix *Index) Size() int { return len(ix.body) }

// Union merges sorted lists.
func Union(lists ...[]uint32) []uint32 {
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	var out []uint32
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Intersect keeps the values present in both sorted lists.
func Intersect(a, b []uint32) []uint32 {
	out := make([]uint32, 0, min(len(a), len(b)))
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
