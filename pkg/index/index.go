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
	"io"
	"net/netip"
	"slices"
	"sort"
	"strconv"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/internal/bigbuf"
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

// String names a kind as docs/format/index.md does, for messages that
// say which part of an index is damaged.
func (k Kind) String() string {
	switch k {
	case KindIPv4:
		return "ipv4"
	case KindIPv6:
		return "ipv6"
	case KindPort:
		return "port"
	case KindProto:
		return "proto"
	case KindVLAN:
		return "vlan"
	case KindEtherType:
		return "ethertype"
	}
	return "kind " + strconv.Itoa(int(k))
}

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

// Keys appends the keys of a parsed packet to dst: those of its innermost
// IP header and, for a packet inside IP tunnels, of the outermost one.
func Keys(dst []Key, p *pkthdr.Packet) []Key {
	for i := 0; i < p.NVLAN; i++ {
		dst = append(dst, VLAN(p.VLAN[i]))
	}
	if o := &p.Outer; o.IPVersion != 0 {
		dst = append(dst, Addr(o.Src()), Addr(o.Dst()), Proto(o.Proto))
		if o.HasPorts {
			dst = append(dst, Port(o.SrcPort))
			if o.DstPort != o.SrcPort {
				dst = append(dst, Port(o.DstPort))
			}
		}
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
// per-packet path of capture and import, and a flood or a scan brings a
// new key (a port, an address) in nearly every packet, so a key costs a
// lookup and a comparison, never a hash map of 17-byte keys nor a
// per-block set: each key's postings list remembers the last block it was
// added to. Ports and IPv4 addresses are appended to logs of words that
// are sorted when the index is encoded; the rarer kinds use a map.
// Postings live in one arena of words, so a shard's millions of keys hold
// no pointers and allocate nothing each. Consecutive packets with the same signature (a flow's)
// cost one comparison.
type Builder struct {
	block  uint32
	blocks uint32
	first  int64
	last   int64
	any    bool

	lists []plist
	arena []uint32 // postings beyond each list's first, in chunks
	// Ports are logged as port<<32 | block, once a block each, and
	// sorted when encoded. portSeen has a bit for each port logged in the
	// current block (portFrom: where the block's entries start in the
	// log), cleared as the block ends: 8 KiB, where a word a port was
	// 256 KiB, and a flood's random source port missed the cache there in
	// every packet.
	portLog  []uint64
	portFrom int
	portSeen [1 << 16 / 64]uint64
	// v4 logs IPv4 addresses as address<<32 | block, appended as they
	// come (the signature cache keeps a flow's repeats out) and sorted
	// when the index is encoded: a flood of spoofed sources appends to
	// memory in order instead of probing a table of millions at random.
	v4        []uint64
	v4Seen    [1 << v4SeenBits]uint64 // address<<32 | block, + 1
	protos    [256]int32              // list index + 1 of each IP protocol's key (in other)
	protoSeen [256]uint32             // block + 1 each IP protocol was last added in
	other     map[Key]int32           // the other kinds' keys and lists

	gen     uint32          // the block's generation of signatures
	sigs    [256][4]sigSlot // 4-way: busy flows that collide do not evict each other
	sigNext uint8

	// Encode's scratch, kept for the next shard's (the store reuses a
	// builder): the radix sort's second log, its counters (256 KiB) and
	// the postings, some 8 and 3 MiB under a flood, which fresh each seal
	// cost a page fault every 4 KiB. At most the logs' length of words
	// and what the postings of a million keys take.
	sortTmp   []uint64
	sortCount *[1 << 16]uint32
	postBuf   []byte
}

// plist is one key's postings: the blocks it is in, ascending. The first
// is kept inline (most keys of a flood are in one block), the rest in
// arena chunks of chunkWords words: the next chunk's offset, then
// postings.
type plist struct {
	first, last uint32 // blocks
	n           uint32 // postings
	head, tail  int32  // arena offsets of the first and last chunk; -1 none
}

const chunkWords = 8

func (b *Builder) post(id int32) {
	l := &b.lists[id]
	if l.n > 0 && l.last == b.block {
		return
	}
	l.last = b.block
	if l.n == 0 {
		l.first = b.block
		l.n = 1
		return
	}
	pos := int(l.n-1) % (chunkWords - 1) // in the tail chunk
	if pos == 0 {
		c := int32(len(b.arena))
		b.arena = append(b.arena, make([]uint32, chunkWords)...)
		if l.tail >= 0 {
			b.arena[l.tail] = uint32(c)
		} else {
			l.head = c
		}
		l.tail = c
	}
	b.arena[int(l.tail)+1+pos] = b.block
	l.n++
}

// postings appends key list id's blocks to dst.
func (b *Builder) postings(dst []uint32, id int32) []uint32 {
	l := &b.lists[id]
	if l.n == 0 {
		return dst
	}
	dst = append(dst, l.first)
	left := int(l.n - 1)
	for c := l.head; left > 0; c = int32(b.arena[c]) {
		k := min(left, chunkWords-1)
		dst = append(dst, b.arena[int(c)+1:int(c)+1+k]...)
		left -= k
	}
	return dst
}

func (b *Builder) newList() int32 {
	b.lists = append(b.lists, plist{head: -1, tail: -1})
	return int32(len(b.lists) - 1)
}

func (b *Builder) addPort(p uint16) {
	w, bit := &b.portSeen[p>>6], uint64(1)<<(p&63)
	if *w&bit != 0 {
		return
	}
	*w |= bit
	b.portLog = append(b.portLog, uint64(p)<<32|uint64(b.block))
}

// clearPorts forgets the ports seen in the block that ends: word by word
// for a few, whole for many (a flood logs hundreds a block).
func (b *Builder) clearPorts() {
	if n := len(b.portLog) - b.portFrom; n > len(b.portSeen)/4 {
		b.portSeen = [len(b.portSeen)]uint64{}
	} else {
		for _, e := range b.portLog[b.portFrom:] {
			b.portSeen[uint16(e>>32)>>6] = 0
		}
	}
	b.portFrom = len(b.portLog)
}

func (b *Builder) addV4(a uint32) {
	e := uint64(a)<<32 | uint64(b.block)
	// A small cache of addresses already logged in this block (most
	// repeats: the destination of a flood, both ends of busy flows);
	// what it misses is dropped when the log is sorted.
	c := &b.v4Seen[(a*0x9e3779b1)>>(32-v4SeenBits)]
	if *c == e+1 {
		return
	}
	*c = e + 1
	b.v4 = append(b.v4, e)
}

const v4SeenBits = 10

func (b *Builder) addOther(k Key) int32 {
	id, ok := b.other[k]
	if !ok {
		if b.other == nil {
			b.other = map[Key]int32{}
		}
		id = b.newList()
		b.other[k] = id
	}
	b.post(id)
	return id
}

// addProto adds an IP protocol key: every packet of a flood has one, and
// its list is found by array instead of hashing a Key each time.
func (b *Builder) addProto(p uint8) {
	// Every packet of a block has one of a few: answered here, inline,
	// before its list is asked.
	if b.protoSeen[p] == b.block+1 {
		return
	}
	b.protoSeen[p] = b.block + 1
	b.postProto(p)
}

// postProto adds an IP protocol's key by its list.
func (b *Builder) postProto(p uint8) {
	if id := b.protos[p]; id != 0 {
		b.post(id - 1)
		return
	}
	b.protos[p] = b.addOther(Proto(p)) + 1
}

// addKey adds one key of any kind to the current block.
func (b *Builder) addKey(k Key) {
	switch k.Kind {
	case KindPort:
		b.addPort(uint16(k.V[0])<<8 | uint16(k.V[1]))
	case KindIPv4:
		b.addV4(binary.BigEndian.Uint32(k.V[:4]))
	default:
		b.addOther(k)
	}
}

// sortLog sorts a log of key<<32 | block words in place, keys of at most
// keyBits bits (16 for ports, 32 for IPv4 addresses). The log is
// appended in block order, so only the keys need sorting, stably (LSD
// radix sort, which is): the blocks' passes are skipped, and so are the
// digits above keyBits, which are zero (a port log's second 16-bit digit
// was counted in full only to find that). A flood logs millions of
// entries a shard; with 16-bit digits its IPv4 keys take two sequential
// passes and its ports one, instead of a comparison sort's many. count is
// the passes' counters, kept by the caller.
func sortLog(w []uint64, tmp *[]uint64, count *[1 << 16]uint32, keyBits uint) {
	if len(w) < 1<<12 {
		slices.Sort(w)
		return
	}
	if cap(*tmp) < len(w) {
		*tmp = make([]uint64, len(w))
	}
	// Smaller logs take 8-bit digits: a pass's count table is walked
	// whole, and 64 Ki counters would cost more than the entries.
	digit := uint(8)
	if len(w) >= 1<<16 {
		digit = 16
	}
	// A digit indexes the array as a uint16, so no bounds check is left
	// in the passes' loops.
	m := uint16(1<<digit - 1)
	c := count[:int(m)+1]
	src, dst := w, (*tmp)[:len(w)]
	for shift := uint(32); shift < 32+keyBits; shift += digit {
		clear(c)
		for _, x := range src {
			count[uint16(x>>shift)&m]++
		}
		if int(count[uint16(src[0]>>shift)&m]) == len(src) {
			continue // every entry has this digit: nothing to move
		}
		pos := uint32(0)
		for i, n := range c {
			c[i] = pos
			pos += n
		}
		for _, x := range src {
			d := uint16(x>>shift) & m
			dst[count[d]] = x
			count[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &w[0] {
		copy(w, src)
	}
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

type sigSlot struct {
	gen  uint32
	hash uint32
	sig  sig
}

// AddPacket records the keys of a parsed packet in the current block.
func (b *Builder) AddPacket(p *pkthdr.Packet) {
	// The signature is the innermost packet's; tunnel endpoints differ
	// under one signature (two switches mirroring one conversation), so
	// their keys are added each time, through the kinds' own caches.
	if p.Outer.IPVersion != 0 {
		b.addOuter(&p.Outer)
	}
	var sg sig
	sg.shi, sg.slo, sg.dhi, sg.dlo = p.AddrWords()
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
	victim := -1 // the first slot of an older block, else one in turn
	for i := range set {
		sl := &set[i]
		if sl.gen != b.gen {
			if victim < 0 {
				victim = i
			}
			continue
		}
		if sl.hash == h && sl.sig.eq(&sg) {
			return
		}
	}
	if victim < 0 {
		b.sigNext++
		victim = int(b.sigNext & 3)
	}
	sl := &set[victim]
	sl.gen, sl.hash, sl.sig = b.gen, h, sg
	b.addKeys(p, sg.slo, sg.dlo)
}

// AddFlowPacket records the keys of a parsed packet in the current block,
// as AddPacket does, without AddPacket's check for a packet of the same
// signature earlier in the block: for a caller that already adds a flow's
// keys once a block (the store, by its flow table's marks), for which that
// check almost never finds one (the reverse direction has another
// signature) and, under a flood of new flows, costs a third of adding the
// keys. A key added twice in a block is written once all the same.
func (b *Builder) AddFlowPacket(p *pkthdr.Packet) {
	_, slo, _, dlo := p.AddrWords()
	if p.IPVersion == 4 && p.HasPorts && p.NVLAN == 0 && p.Outer.IPVersion == 0 && p.Src.Is4() && p.Dst.Is4() {
		// IPv4 with ports, untagged and not tunnelled (a flood's every
		// packet): addKeys' keys in its order, without its tests.
		b.addV4(uint32(slo))
		b.addV4(uint32(dlo))
		b.addProto(p.Proto)
		b.addPort(p.SrcPort)
		if p.DstPort != p.SrcPort {
			b.addPort(p.DstPort)
		}
		return
	}
	if p.Outer.IPVersion != 0 {
		b.addOuter(&p.Outer)
	}
	b.addKeys(p, slo, dlo)
}

// addKeys adds the keys Keys gives, kind by kind; slo and dlo are the low
// halves of the addresses' 16-byte forms.
func (b *Builder) addKeys(p *pkthdr.Packet, slo, dlo uint64) {
	for i := 0; i < p.NVLAN; i++ {
		b.addOther(VLAN(p.VLAN[i]))
	}
	if p.IPVersion == 0 {
		if p.EtherType != 0 {
			b.addOther(EtherType(p.EtherType))
		}
		if p.ARP {
			b.addAddr(p.Src, slo)
			b.addAddr(p.Dst, dlo)
		}
		return
	}
	if p.Src.Is4() && p.Dst.Is4() { // the common case, asked once
		b.addV4(uint32(slo))
		b.addV4(uint32(dlo))
	} else {
		b.addAddr(p.Src, slo)
		b.addAddr(p.Dst, dlo)
	}
	b.addProto(p.Proto)
	if p.HasPorts {
		b.addPort(p.SrcPort)
		if p.DstPort != p.SrcPort {
			b.addPort(p.DstPort)
		}
	}
}

// addOuter adds the keys of a tunnelled packet's outermost IP header.
func (b *Builder) addOuter(o *pkthdr.Outer) {
	for _, a := range [2]netip.Addr{o.Src(), o.Dst()} {
		if a.Is4() {
			v := a.As4()
			b.addV4(binary.BigEndian.Uint32(v[:]))
		} else {
			b.addOther(Addr(a))
		}
	}
	b.addProto(o.Proto)
	if o.HasPorts {
		b.addPort(o.SrcPort)
		if o.DstPort != o.SrcPort {
			b.addPort(o.DstPort)
		}
	}
}

// addAddr adds an address key; lo is the low half of its 16-byte form.
func (b *Builder) addAddr(a netip.Addr, lo uint64) {
	if a.Is4() || a.Is4In6() {
		b.addV4(uint32(lo))
		return
	}
	b.addOther(Addr(a))
}

// NewBuilder returns an empty builder positioned at block 0.
func NewBuilder() *Builder { return &Builder{gen: 1} }

// Reset empties b for another shard, as NewBuilder's, keeping the memory
// of its logs, lists and postings.
func (b *Builder) Reset() {
	*b = Builder{
		gen:       1,
		lists:     b.lists[:0],
		arena:     b.arena[:0],
		portLog:   b.portLog[:0],
		v4:        b.v4[:0],
		sortTmp:   b.sortTmp,
		sortCount: b.sortCount,
		postBuf:   b.postBuf[:0],
	}
}

// Add records the keys of one packet in the current block.
func (b *Builder) Add(keys []Key) {
	for _, k := range keys {
		b.addKey(k)
	}
}

// EndBlock closes the current block.
func (b *Builder) EndBlock(first, last int64) {
	b.gen++
	if b.gen == 0 { // wrapped: old generations could alias
		b.sigs = [256][4]sigSlot{}
		b.gen = 1
	}
	if !b.any || first < b.first {
		b.first = first
	}
	if !b.any || last > b.last {
		b.last = last
	}
	b.any = true
	b.clearPorts()
	b.block++
	b.blocks = b.block
}

// Blocks is the number of blocks ended so far.
func (b *Builder) Blocks() int { return int(b.blocks) }

// Keys is the number of keys, counting a port or an IPv4 address once for
// each block it was logged in (at most a few times a block; repeats are
// dropped when encoded): what the builder holds in memory.
func (b *Builder) Keys() int { return len(b.lists) + len(b.v4) + len(b.portLog) }

// Index file constants.
const (
	// Version 4 gives a key of one block its block in the table entry
	// and checks postings by chunk: a flood's index, most of whose keys
	// are in one block, is half the size of version 3's.
	Version = 4
	// KeysVersion is the oldest version whose writers added every key
	// this build adds (version 3 added tunnelled packets' inner headers):
	// a store rebuilds older indexes (store repair) for queries to find
	// hosts inside tunnels, and keeps these, whose bytes only are older.
	KeysVersion = 3
	headerLen   = 48
	flagRawBody = 1 // header flags bit 0: the body is not compressed
	// maxBody bounds the decompressed body a reader accepts.
	maxBody = 1 << 30
	// dirEntry is a section directory entry's size (version 1: 16).
	dirEntry = 24
	// headRead is what OpenAt reads first: the header and the section
	// directory of any index with up to 168 sections.
	headRead = 4096
	// refOne marks a version 4 reference that is a block number, the
	// key's only block, rather than a postings start.
	refOne = 1 << 31
	// chunkLen is the span of postings each version 4 chunk CRC covers:
	// a lookup reads and checks the chunks its postings lie in.
	chunkLen = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// appendUvarint is binary.AppendUvarint with the one-byte case first:
// most postings deltas are below 128.
func appendUvarint(b []byte, v uint32) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return binary.AppendUvarint(b, uint64(v))
}

// keyList is a key of the map-held kinds and its postings list (an
// index into lists) as Encode gathers them.
type keyList struct {
	k  Key
	id int32
}

// rawBodyMax: bodies larger than this are compressed (a variable for
// tests).
var rawBodyMax = 32 << 20

// Encode serialises the index (docs/format/index.md).
func (b *Builder) Encode(enc *zstd.Encoder) []byte { return b.EncodeTo(nil, enc) }

// EncodeTo is Encode writing into dst's memory when it has room (its
// contents are overwritten), so that a writer sealing shard after shard
// keeps one buffer instead of a new one each seal.
func (b *Builder) EncodeTo(dst []byte, enc *zstd.Encoder) []byte {
	// Ports and IPv4 addresses come from their logs sorted as words (a
	// key's blocks in order, repeats dropped), written into the key
	// table and postings as the sorted log is walked; the rarer kinds
	// from the map, sorted by value. Under a flood the logs hold
	// millions of entries: nothing is gathered in between, and the
	// output is sized before it is filled.
	if b.sortCount == nil {
		b.sortCount = new([1 << 16]uint32)
	}
	sortLog(b.portLog, &b.sortTmp, b.sortCount, 16)
	sortLog(b.v4, &b.sortTmp, b.sortCount, 32)
	// A log's distinct keys are counted as its table is written; until
	// then its length bounds them (the tables' capacity only).
	counts := map[Kind]int{}
	if len(b.portLog) > 0 {
		counts[KindPort] = len(b.portLog)
	}
	if len(b.v4) > 0 {
		counts[KindIPv4] = len(b.v4)
	}
	byKind := map[Kind][]keyList{}
	for k, id := range b.other {
		byKind[k.Kind] = append(byKind[k.Kind], keyList{k, id})
		counts[k.Kind]++
	}
	kinds := make([]Kind, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	dirLen := dirEntry * len(kinds)
	type sect struct {
		kind                Kind
		n                   int
		tableOff, tableLen  int
		postingOff, postLen int
	}
	var sects []sect
	// The output is built in one buffer: header, directory, then the key
	// tables in place (their size is known) and the postings after them
	// (kept apart until the tables are done). Postings take a byte or two
	// a block in the commonest case.
	tablesLen := 0
	for _, kind := range kinds {
		tablesLen += counts[kind] * (kind.size() + 4)
	}
	if n := 2*(len(b.portLog)+len(b.v4)) + 4*len(b.arena) + 8*len(b.lists); cap(b.postBuf) < n {
		b.postBuf = make([]byte, 0, n)
	}
	postings := b.postBuf[:0]
	tablesAt := headerLen + dirLen
	out := dst[:0]
	// The chunk CRCs follow their key tables: a word for each 4 KiB of
	// postings, and one more for each section's last chunk.
	if n := tablesAt + tablesLen + 4*len(kinds) + cap(postings)/(chunkLen/4) + cap(postings); cap(out) < n {
		out = make([]byte, 0, n)
	}
	out = out[:tablesAt]
	// A key of one block (a flood's spoofed address, most of its source
	// ports) is that block in its reference: no postings, no checksum.
	entry := func(v []byte, ref uint32) {
		out = append(out, v...)
		out = binary.LittleEndian.AppendUint32(out, ref)
	}
	var blocks []uint32
	for _, kind := range kinds {
		sz := kind.size()
		sc := sect{kind: kind, n: counts[kind], tableOff: len(out) - tablesAt, postingOff: len(postings)}
		if log := b.portLog; kind == KindPort || kind == KindIPv4 {
			if kind == KindIPv4 {
				log = b.v4
			}
			// Entries written in place, a flood's million of them: the
			// room for the table is made here (a log's length bounds its
			// keys), whatever earlier tables' chunk CRCs took.
			out = slices.Grow(out, counts[kind]*(sz+4))
			keys := 0
			for i := 0; i < len(log); {
				x := log[i]
				key, first := x>>32, uint32(x)
				// The log may repeat a key in a block (its cache misses):
				// the key has postings only if it has another block.
				for i++; i < len(log) && log[i] == x; i++ {
				}
				ref := refOne | first
				if i < len(log) && log[i]>>32 == key {
					ref = uint32(len(postings) - sc.postingOff)
					prev := first
					postings = appendUvarint(postings, prev)
					for ; i < len(log) && log[i]>>32 == key; i++ {
						if blk := uint32(log[i]); blk != prev {
							postings = appendUvarint(postings, blk-prev)
							prev = blk
						}
					}
				}
				at := len(out)
				out = out[:at+sz+4]
				if sz == 4 {
					binary.BigEndian.PutUint32(out[at:], uint32(key))
				} else {
					binary.BigEndian.PutUint16(out[at:], uint16(key))
				}
				binary.LittleEndian.PutUint32(out[at+sz:], ref)
				keys++
			}
			sc.n = keys
		} else {
			ids := byKind[kind]
			slices.SortFunc(ids, func(a, b keyList) int { return bytes.Compare(a.k.V[:sz], b.k.V[:sz]) })
			for _, kl := range ids {
				blocks = b.postings(blocks[:0], kl.id)
				if len(blocks) == 1 {
					entry(kl.k.V[:sz], refOne|blocks[0])
					continue
				}
				entry(kl.k.V[:sz], uint32(len(postings)-sc.postingOff))
				prev := uint32(0)
				for i, blk := range blocks {
					if i == 0 {
						postings = appendUvarint(postings, blk)
					} else {
						postings = appendUvarint(postings, blk-prev)
					}
					prev = blk
				}
			}
		}
		sc.tableLen = len(out) - tablesAt - sc.tableOff
		sc.postLen = len(postings) - sc.postingOff
		for p := postings[sc.postingOff:]; len(p) > 0; p = p[min(len(p), chunkLen):] {
			out = binary.LittleEndian.AppendUint32(out, crc(p[:min(len(p), chunkLen)]))
		}
		sects = append(sects, sc)
	}
	tables := out[tablesAt:]
	dir := out[headerLen:headerLen]
	for _, sc := range sects {
		dir = append(dir, byte(sc.kind), byte(sc.kind.size()), 0, 0)
		dir = binary.LittleEndian.AppendUint32(dir, uint32(sc.n))
		dir = binary.LittleEndian.AppendUint32(dir, uint32(dirLen+sc.tableOff))
		dir = binary.LittleEndian.AppendUint32(dir, uint32(dirLen+len(tables)+sc.postingOff))
		dir = binary.LittleEndian.AppendUint32(dir, uint32(sc.postLen))
		dir = binary.LittleEndian.AppendUint32(dir, crc(tables[sc.tableOff:sc.tableOff+sc.tableLen]))
	}
	out = append(out, postings...)
	b.postBuf = postings[:0]
	body := out[headerLen:]
	// The body is stored raw unless it is large: a query then reads the
	// directory, one key table and the postings it needs in place, instead
	// of reading (or decompressing) every index it consults whole. A
	// store's shards hold at most a million keys (some 25 MiB): the
	// bodies that reach that size are a flood's spoofed addresses, whose
	// compression would cost the capture more than the disk it saves.
	stored, flags := body, uint16(flagRawBody)
	if len(body) > rawBodyMax {
		stored, flags = enc.EncodeAll(body, nil), 0
		out = append(out[:headerLen], stored...)
	}
	h := out[:headerLen]
	copy(h, "NWHI")
	binary.LittleEndian.PutUint16(h[4:], Version)
	binary.LittleEndian.PutUint16(h[6:], flags)
	binary.LittleEndian.PutUint64(h[24:], uint64(b.first))
	binary.LittleEndian.PutUint64(h[32:], uint64(b.last))
	putHeader(h, b.blocks, uint32(len(sects)), uint32(len(body)), out[headerLen:])
	return out
}

// putHeader fills the counts, lengths and checksums of an index header
// whose version and flags are set. The body checksum covers the stored
// bytes of a compressed body (read whole anyway), and only the section
// directory of a raw one, whose tables and postings carry their own.
func putHeader(h []byte, blocks, sects, rawLen uint32, stored []byte) {
	binary.LittleEndian.PutUint32(h[8:], blocks)
	binary.LittleEndian.PutUint32(h[12:], sects)
	binary.LittleEndian.PutUint32(h[16:], rawLen)
	binary.LittleEndian.PutUint32(h[20:], uint32(len(stored)))
	covered := stored
	if binary.LittleEndian.Uint16(h[4:]) >= 2 && binary.LittleEndian.Uint16(h[6:])&flagRawBody != 0 {
		covered = stored[:min(len(stored), int(sects)*dirEntry)]
	}
	binary.LittleEndian.PutUint32(h[40:], crc(covered))
	binary.LittleEndian.PutUint32(h[44:], crc(h[:44]))
}

// Errors of Open.
var (
	ErrNotIndex = errors.New("not an nwhealth index")
	ErrVersion  = errors.New("unsupported index version")
	ErrCorrupt  = errors.New("index damaged")
)

// Index is a decoded shard index. An index opened by Open holds its body;
// one opened by OpenAt reads its key tables and postings as lookups need
// them, checking each against its own checksum.
type Index struct {
	Blocks      int
	First, Last int64
	version     int
	bodyLen     int
	body        []byte      // nil when read through r
	r           io.ReaderAt // with body nil: the file, the body at headerLen
	buf         []byte      // holds the tables and postings read through r
	sects       map[Kind]*section
	checked     bool // every chunk's checksum held when opened (Open)
}

type section struct {
	size, n   int
	entrySize int
	tableOff  int // in the body
	tableCRC  uint32
	table     []byte // nil until loaded
	crcs      []byte // version 4: the postings chunks' CRCs, loaded with the table
	postOff   int    // in the body
	postLen   int    // version 2; version 1 postings run to the body's end
}

// header checks an index header and returns the section count and the
// raw and stored body lengths.
func header(b []byte) (ix *Index, nsect, rawLen, storedLen int, raw bool, err error) {
	if len(b) < headerLen {
		return nil, 0, 0, 0, false, fmt.Errorf("%w: %d bytes", ErrNotIndex, len(b))
	}
	if string(b[:4]) != "NWHI" {
		return nil, 0, 0, 0, false, ErrNotIndex
	}
	if crc(b[:44]) != binary.LittleEndian.Uint32(b[44:]) {
		return nil, 0, 0, 0, false, fmt.Errorf("%w: header checksum mismatch", ErrCorrupt)
	}
	v := int(binary.LittleEndian.Uint16(b[4:]))
	if v < 1 || v > Version {
		return nil, 0, 0, 0, false, fmt.Errorf("%w %d", ErrVersion, v)
	}
	ix = &Index{
		Blocks:  int(binary.LittleEndian.Uint32(b[8:])),
		First:   int64(binary.LittleEndian.Uint64(b[24:])),
		Last:    int64(binary.LittleEndian.Uint64(b[32:])),
		version: v,
		sects:   map[Kind]*section{},
	}
	nsect = int(binary.LittleEndian.Uint32(b[12:]))
	rawLen = int(binary.LittleEndian.Uint32(b[16:]))
	storedLen = int(binary.LittleEndian.Uint32(b[20:]))
	raw = binary.LittleEndian.Uint16(b[6:])&flagRawBody != 0
	if rawLen > maxBody || nsect > 255 || (raw && storedLen != rawLen) {
		return nil, 0, 0, 0, false, fmt.Errorf("%w: lengths inconsistent", ErrCorrupt)
	}
	return ix, nsect, rawLen, storedLen, raw, nil
}

// Open decodes an index file's bytes and checks all of it. A raw body is
// used in place; a compressed one is decoded with dec, or with a decoder
// of its own when dec is nil.
func Open(b []byte, dec *zstd.Decoder) (*Index, error) {
	ix, nsect, rawLen, storedLen, raw, err := header(b)
	if err != nil {
		return nil, err
	}
	if storedLen != len(b)-headerLen {
		return nil, fmt.Errorf("%w: lengths inconsistent", ErrCorrupt)
	}
	stored := b[headerLen:]
	body := stored
	if ix.version == 1 || !raw {
		if crc(stored) != binary.LittleEndian.Uint32(b[40:]) {
			return nil, fmt.Errorf("%w: body checksum mismatch", ErrCorrupt)
		}
	}
	if !raw {
		if dec == nil {
			// Capped at the declared length: a body that would decode to
			// more is refused, not decoded.
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxBody), zstd.WithDecodeAllCapLimit(true))
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
	}
	ix.body, ix.bodyLen = body, len(body)
	if err := ix.directory(body, nsect, !raw, binary.LittleEndian.Uint32(b[40:])); err != nil {
		return nil, err
	}
	if ix.version >= 4 {
		if err := ix.check4(); err != nil {
			return nil, err
		}
	} else if ix.version >= 2 {
		if err := ix.check(); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

// OpenAt opens the index file r of size bytes for lookups, reading only
// its header and section directory now; buf is used (and grown) for what
// lookups read, and Buffer returns it for reuse. Version 1 indexes and
// compressed bodies are read whole and checked, as by Open.
func OpenAt(r io.ReaderAt, size int64, buf []byte) (*Index, error) {
	if size > headerLen+maxBody {
		return nil, fmt.Errorf("%w: %d bytes, more than any index", ErrCorrupt, size)
	}
	n := int(min(size, headRead))
	if cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	b := buf[:n]
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	ix, nsect, _, storedLen, raw, err := header(b)
	if err != nil {
		return nil, err
	}
	if int64(storedLen) != size-headerLen {
		return nil, fmt.Errorf("%w: lengths inconsistent", ErrCorrupt)
	}
	if ix.version == 1 || !raw {
		if cap(buf) < int(size) {
			// Large and touched once: memory that may be huge pages,
			// with room for the next shard's index, and no garbage.
			bigbuf.Put(buf)
			buf = bigbuf.Get(int(size + size/4))
		}
		b = buf[:size]
		if _, err := r.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("read index: %w", err)
		}
		ix, err := Open(b, nil)
		if ix != nil {
			ix.buf = buf
		}
		return ix, err
	}
	dirEnd := headerLen + nsect*dirEntry
	if dirEnd > int(size) {
		return nil, fmt.Errorf("%w: section directory truncated", ErrCorrupt)
	}
	if dirEnd > len(b) {
		if cap(buf) < dirEnd {
			buf = make([]byte, 0, dirEnd)
		}
		b = buf[:dirEnd]
		if _, err := r.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("read index: %w", err)
		}
	}
	ix.r, ix.bodyLen = r, storedLen
	if err := ix.directory(b[headerLen:dirEnd], nsect, false, binary.LittleEndian.Uint32(b[40:])); err != nil {
		return nil, err
	}
	ix.buf = buf[:0] // the directory is parsed: the buffer is free again
	return ix, nil
}

// FileVersion returns the format version of the index file r, checking
// only its header.
func FileVersion(r io.ReaderAt) (int, error) {
	b := make([]byte, headerLen)
	if _, err := r.ReadAt(b, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%w: shorter than its header", ErrNotIndex)
		}
		return 0, err
	}
	ix, _, _, _, _, err := header(b)
	if err != nil {
		return 0, err
	}
	return ix.version, nil
}

// Buffer returns the buffer the index read into, for the next OpenAt (and
// at last for bigbuf.Put, as it may come from there). The index must not
// be used after that.
func (ix *Index) Buffer() []byte { return ix.buf[:0] }

// directory parses the section directory at the start of dir (the whole
// body when in memory), checking it against dirCRC unless the body was
// checked whole (checked).
func (ix *Index) directory(dir []byte, nsect int, checked bool, dirCRC uint32) error {
	de := dirEntry
	if ix.version == 1 {
		de, checked = 16, true
	}
	if len(dir) < de*nsect {
		return fmt.Errorf("%w: section directory truncated", ErrCorrupt)
	}
	if !checked && crc(dir[:de*nsect]) != dirCRC {
		return fmt.Errorf("%w: section directory checksum mismatch", ErrCorrupt)
	}
	for i := 0; i < nsect; i++ {
		d := dir[de*i:]
		kind, size := Kind(d[0]), int(d[1])
		sc := &section{size: size, n: int(binary.LittleEndian.Uint32(d[4:]))}
		toff := int(binary.LittleEndian.Uint32(d[8:]))
		poff := int(binary.LittleEndian.Uint32(d[12:]))
		sc.entrySize = size + 8
		plen := ix.bodyLen - poff
		if ix.version >= 2 {
			sc.entrySize = size + 12
			plen = int(binary.LittleEndian.Uint32(d[16:]))
			sc.tableCRC = binary.LittleEndian.Uint32(d[20:])
		}
		if ix.version >= 4 {
			sc.entrySize = size + 4
		}
		if size != kind.size() || size == 0 || toff > ix.bodyLen || sc.n > (ix.bodyLen-toff)/sc.entrySize ||
			poff > ix.bodyLen || plen < 0 || plen > ix.bodyLen-poff || ix.sects[kind] != nil ||
			sc.crcLen(ix.version, plen) > ix.bodyLen-toff-sc.n*sc.entrySize {
			return fmt.Errorf("%w: section %d (%s) out of bounds", ErrCorrupt, i, kind)
		}
		sc.tableOff, sc.postOff, sc.postLen = toff, poff, plen
		if ix.body != nil {
			tend := toff + sc.n*sc.entrySize
			sc.table = ix.body[toff:tend]
			sc.crcs = ix.body[tend : tend+sc.crcLen(ix.version, plen)]
			if ix.version >= 2 && crc(sc.table) != sc.tableCRC {
				return fmt.Errorf("%w: %s key table checksum mismatch", ErrCorrupt, kind)
			}
		}
		ix.sects[kind] = sc
	}
	return nil
}

// read returns n bytes of the body at off, from memory or read into the
// index's buffer (earlier slices of the buffer stay valid: it is only
// ever appended to, and a regrown buffer leaves them in the old one).
func (ix *Index) read(off, n int) ([]byte, error) {
	if off < 0 || n < 0 || off > ix.bodyLen-n {
		return nil, fmt.Errorf("%w: read out of bounds", ErrCorrupt)
	}
	if ix.body != nil {
		return ix.body[off : off+n], nil
	}
	ix.buf = slices.Grow(ix.buf, n)
	b := ix.buf[len(ix.buf) : len(ix.buf)+n]
	if _, err := ix.r.ReadAt(b, int64(headerLen+off)); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	ix.buf = ix.buf[:len(ix.buf)+n]
	return b, nil
}

// crcLen is the length of the chunk CRCs after a section's key table
// (version 4; none before) for plen bytes of postings.
func (s *section) crcLen(version, plen int) int {
	if version < 4 {
		return 0
	}
	return 4 * ((plen + chunkLen - 1) / chunkLen)
}

// keyTable returns the section of kind with its key table loaded and
// checked (nil when the index has no such keys). A version 4 table is
// read with its chunk CRCs, in one read; each chunk's CRC is checked
// with its chunk.
func (ix *Index) keyTable(kind Kind) (*section, error) {
	s := ix.sects[kind]
	if s == nil || s.table != nil {
		return s, nil
	}
	tlen := s.n * s.entrySize
	t, err := ix.read(s.tableOff, tlen+s.crcLen(ix.version, s.postLen))
	if err != nil {
		return nil, err
	}
	if crc(t[:tlen]) != s.tableCRC {
		return nil, fmt.Errorf("%w: key table checksum mismatch", ErrCorrupt)
	}
	s.table, s.crcs = t[:tlen], t[tlen:]
	return s, nil
}

// span returns where key i's postings lie in s's postings: version 2 keys
// end where the next begins (the last at the section's end).
func (s *section) span(i int) (start, end int) {
	e := s.table[i*s.entrySize+s.size:]
	start = int(binary.LittleEndian.Uint32(e))
	end = s.postLen
	if i+1 < s.n {
		end = int(binary.LittleEndian.Uint32(s.table[(i+1)*s.entrySize+s.size:]))
	}
	return start, end
}

// find returns the index of value v in s's key table, or the insertion
// point and false.
func (s *section) find(v []byte) (int, bool) {
	i := sort.Search(s.n, func(i int) bool { return bytes.Compare(s.table[i*s.entrySize:i*s.entrySize+s.size], v) >= 0 })
	return i, i < s.n && bytes.Equal(s.table[i*s.entrySize:i*s.entrySize+s.size], v)
}

// Lookup returns the sorted block numbers holding key k (nil when none).
func (ix *Index) Lookup(k Key) ([]uint32, error) {
	s, err := ix.keyTable(k.Kind)
	if s == nil || err != nil {
		return nil, err
	}
	i, ok := s.find(k.V[:s.size])
	if !ok {
		return nil, nil
	}
	lists, err := ix.postings(s, i, i+1)
	if err != nil {
		return nil, err
	}
	return lists[0], nil
}

// Range returns the block lists of every key of kind whose value lies in
// [lo, hi] (inclusive, big-endian bytes), for CIDR queries.
func (ix *Index) Range(kind Kind, lo, hi [16]byte) ([][]uint32, error) {
	s, err := ix.keyTable(kind)
	if s == nil || err != nil {
		return nil, err
	}
	i, _ := s.find(lo[:s.size])
	j := i
	for j < s.n && bytes.Compare(s.table[j*s.entrySize:j*s.entrySize+s.size], hi[:s.size]) <= 0 {
		j++
	}
	if i == j {
		return nil, nil
	}
	return ix.postings(s, i, j)
}

// postings decodes the postings of keys i to j-1 of s, which lie one
// after the other: a range is one read.
func (ix *Index) postings(s *section, i, j int) ([][]uint32, error) {
	if ix.version >= 4 {
		return ix.postings4(s, i, j)
	}
	p, base, err := ix.postingBytes(s, i, j)
	if err != nil {
		return nil, err
	}
	out := make([][]uint32, 0, j-i)
	for ; i < j; i++ {
		l, err := ix.posting(s, i, p, base, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// postingBytes returns the postings of keys i to j-1 of s and where they
// start in the section's postings (version 1: all of them, from 0).
func (ix *Index) postingBytes(s *section, i, j int) ([]byte, int, error) {
	if ix.version == 1 {
		return ix.body[s.postOff:], 0, nil
	}
	start, _ := s.span(i)
	_, end := s.span(j - 1)
	if start > end || end > s.postLen {
		return nil, 0, fmt.Errorf("%w: posting out of bounds", ErrCorrupt)
	}
	p, err := ix.read(s.postOff+start, end-start)
	return p, start, err
}

// posting decodes key i's block list from p (postingBytes, from base),
// appending to dst.
func (ix *Index) posting(s *section, i int, p []byte, base int, dst []uint32) ([]uint32, error) {
	e := s.table[i*s.entrySize+s.size:]
	off, cnt := int(binary.LittleEndian.Uint32(e)), int(binary.LittleEndian.Uint32(e[4:]))
	if ix.version == 1 {
		if off > len(p) {
			return nil, fmt.Errorf("%w: posting out of bounds", ErrCorrupt)
		}
		return decodePosting(dst, p[off:], cnt, ix.Blocks)
	}
	start, end := s.span(i)
	if start < base || start > end || end-base > len(p) {
		return nil, fmt.Errorf("%w: posting out of bounds", ErrCorrupt)
	}
	q := p[start-base : end-base]
	if crc(q) != binary.LittleEndian.Uint32(e[8:]) {
		return nil, fmt.Errorf("%w: posting checksum mismatch", ErrCorrupt)
	}
	return decodePosting(dst, q, cnt, ix.Blocks)
}

// decodePosting appends cnt delta-coded block numbers from p to dst, each
// below blocks and strictly increasing.
func decodePosting(dst []uint32, p []byte, cnt, blocks int) ([]uint32, error) {
	// Each varint takes a byte at least: cnt is not trusted further.
	if cnt > blocks || cnt > len(p) {
		return nil, fmt.Errorf("%w: posting out of bounds", ErrCorrupt)
	}
	if dst == nil {
		dst = make([]uint32, 0, cnt)
	}
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
		if cur >= uint64(blocks) {
			return nil, fmt.Errorf("%w: posting names block %d of %d", ErrCorrupt, cur, blocks)
		}
		dst = append(dst, uint32(cur))
	}
	return dst, nil
}

// check decodes every posting of an index held in memory, so that Open
// vouches for all of it.
func (ix *Index) check() error {
	var scratch []uint32
	for _, s := range ix.sects {
		if s.n == 0 {
			continue
		}
		p, base, err := ix.postingBytes(s, 0, s.n)
		if err != nil {
			return err
		}
		for i := 0; i < s.n; i++ {
			if scratch, err = ix.posting(s, i, p, base, scratch[:0]); err != nil {
				return err
			}
		}
	}
	return nil
}

// ref returns key i's version 4 reference.
func (s *section) ref(i int) uint32 {
	return binary.LittleEndian.Uint32(s.table[i*s.entrySize+s.size:])
}

// nextMulti returns the first key from i on that has postings (version
// 4), or s.n. Under a flood such keys are rare among a million of one
// block: the walk costs a load a key of the table, in memory, which its
// read and checksum cost already.
func (s *section) nextMulti(i int) int { return s.nextMultiBefore(i, s.n) }

// nextMultiBefore is nextMulti looking at keys before j only (j: none).
func (s *section) nextMultiBefore(i, j int) int {
	for ; i < j; i++ {
		if s.ref(i)&refOne == 0 {
			return i
		}
	}
	return j
}

// postingEnd returns where the postings of a key end whose next key with
// postings is k: at k's start, or the section's end.
func (s *section) postingEnd(k int) int {
	if k < s.n {
		return int(s.ref(k))
	}
	return s.postLen
}

// postings4 decodes the block lists of version 4 keys i to j-1: those of
// one block from their references, the others from the postings chunks
// they lie in (one read, each chunk checked).
func (ix *Index) postings4(s *section, i, j int) ([][]uint32, error) {
	out := make([][]uint32, 0, j-i)
	ones := make([]uint32, 0, j-i) // the single blocks, in one allocation
	var p []byte
	// endJ: where the postings of the range's last key with postings end.
	base, endJ := 0, 0
	if k := s.nextMultiBefore(i, j); k < j { // a lookup of a key of one block walks nothing
		endJ = s.postingEnd(s.nextMulti(j))
		var err error
		if p, base, err = ix.chunks(s, int(s.ref(k)), endJ); err != nil {
			return nil, err
		}
	}
	for k := i; k < j; k++ {
		r := s.ref(k)
		if r&refOne != 0 {
			if int(r&^refOne) >= ix.Blocks {
				return nil, fmt.Errorf("%w: key names block %d of %d", ErrCorrupt, r&^refOne, ix.Blocks)
			}
			ones = append(ones, r&^refOne)
			out = append(out, ones[len(ones)-1:len(ones):len(ones)])
			continue
		}
		// Past j the walk was made once, for endJ: under a flood it can
		// cross most of the table.
		start, end := int(r), endJ
		if m := s.nextMultiBefore(k+1, j); m < j {
			end = int(s.ref(m))
		}
		if start < base || start > end || end-base > len(p) {
			return nil, fmt.Errorf("%w: posting out of bounds", ErrCorrupt)
		}
		l, err := decodePosting4(nil, p[start-base:end-base], ix.Blocks)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// chunks returns the postings of s from start to end, and where what it
// returns starts: the whole chunks holding them, each checked against
// its CRC unless the index was checked whole when opened.
func (ix *Index) chunks(s *section, start, end int) ([]byte, int, error) {
	if start < 0 || start >= end || end > s.postLen {
		return nil, 0, fmt.Errorf("%w: posting out of bounds", ErrCorrupt)
	}
	cs := start / chunkLen * chunkLen
	ce := min((end+chunkLen-1)/chunkLen*chunkLen, s.postLen)
	p, err := ix.read(s.postOff+cs, ce-cs)
	if err != nil || ix.checked {
		return p, cs, err
	}
	for c := 0; c < len(p); c += chunkLen {
		// crcs has a word for each chunk of postLen: loaded in full.
		w := (cs + c) / chunkLen * 4
		if crc(p[c:min(len(p), c+chunkLen)]) != binary.LittleEndian.Uint32(s.crcs[w:]) {
			return nil, 0, fmt.Errorf("%w: postings chunk %d checksum mismatch", ErrCorrupt, (cs+c)/chunkLen)
		}
	}
	return p, cs, nil
}

// decodePosting4 appends a version 4 posting's block numbers to dst (nil:
// a new slice): two delta-coded numbers or more, filling p exactly, each
// below blocks and strictly increasing.
func decodePosting4(dst []uint32, p []byte, blocks int) ([]uint32, error) {
	n := 0 // the varints' last bytes: at most one a byte of p
	for _, c := range p {
		if c < 0x80 {
			n++
		}
	}
	if n < 2 || n > blocks {
		return nil, fmt.Errorf("%w: posting of %d blocks", ErrCorrupt, n)
	}
	if dst == nil {
		dst = make([]uint32, 0, n)
	}
	l, err := decodePosting(dst, p, n, blocks)
	if err != nil {
		return nil, err
	}
	if len(p) > 0 && p[len(p)-1] >= 0x80 {
		return nil, fmt.Errorf("%w: posting varint", ErrCorrupt)
	}
	return l, nil
}

// check4 checks all of a version 4 index held in memory, so that Open
// vouches for it: each chunk's CRC, values ascending, every reference,
// and postings that are exactly the keys' with postings, back to back.
func (ix *Index) check4() error {
	for kind, s := range ix.sects {
		p := ix.body[s.postOff : s.postOff+s.postLen]
		for c := 0; c < len(p); c += chunkLen {
			if crc(p[c:min(len(p), c+chunkLen)]) != binary.LittleEndian.Uint32(s.crcs[c/chunkLen*4:]) {
				return fmt.Errorf("%w: %s postings chunk %d checksum mismatch", ErrCorrupt, kind, c/chunkLen)
			}
		}
		for i := 1; i < s.n; i++ {
			if bytes.Compare(s.table[(i-1)*s.entrySize:(i-1)*s.entrySize+s.size], s.table[i*s.entrySize:i*s.entrySize+s.size]) >= 0 {
				return fmt.Errorf("%w: %s keys not ascending", ErrCorrupt, kind)
			}
		}
		if k := s.nextMulti(0); (k == s.n && s.postLen != 0) || (k < s.n && s.ref(k) != 0) {
			return fmt.Errorf("%w: %s postings do not start with its first key's", ErrCorrupt, kind)
		}
	}
	var scratch []uint32
	for kind, s := range ix.sects {
		p := ix.body[s.postOff : s.postOff+s.postLen]
		for k := 0; k < s.n; k++ {
			r := s.ref(k)
			if r&refOne != 0 {
				if int(r&^refOne) >= ix.Blocks {
					return fmt.Errorf("%w: %s key names block %d of %d", ErrCorrupt, kind, r&^refOne, ix.Blocks)
				}
				continue
			}
			start, end := int(r), s.postingEnd(s.nextMulti(k+1))
			if start >= end || end > len(p) {
				return fmt.Errorf("%w: %s posting out of bounds", ErrCorrupt, kind)
			}
			var err error
			if scratch, err = decodePosting4(scratch[:0], p[start:end], ix.Blocks); err != nil {
				return err
			}
		}
	}
	ix.checked = true
	return nil
}

// Size reports the body length, for statistics.
func (ix *Index) Size() int { return ix.bodyLen }

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
