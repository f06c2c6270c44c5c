package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/index"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// RecoveryReport says what recovery or repair did to one shard.
type RecoveryReport struct {
	Shard       string // sealed name, or the open name when nothing was kept
	Did         string // what was done ("sealed", "trailer rewritten", "index and flows rebuilt", ...)
	Blocks      int    // blocks kept
	Packets     uint64
	RawBytes    uint64 // record bytes of the blocks kept
	StoredBytes int64  // file bytes of the blocks kept
	LostBytes   int64  // bytes cut off after the last intact block, or left in damaged stretches
	LostReason  string // why ("" when nothing was lost)
}

// Recover seals every shard left open by a writer that died, and rebuilds
// missing index and flow files. The caller holds the store's lock.
// newFlows rebuilds flow records (nil: empty flow files). Files that
// cannot be touched (not regular files, planted links, names taken) are
// named in the error; everything else is recovered.
func (s *Store) Recover(newFlows func() FlowTable) ([]RecoveryReport, error) {
	l, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []RecoveryReport
	var errs []error
	for _, d := range l.Skipped {
		errs = append(errs, &FileError{s.shardsPath() + "/" + d.Shard, d.Reason})
	}
	for _, f := range l.Shards {
		if f.Sealed {
			continue
		}
		r, err := s.recoverShard(f, f.Name(), newFlows)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", f.Name(), err))
			continue
		}
		out = append(out, r)
	}
	more, err := s.reindexShards(l.Shards, newFlows, func(f ShardFile) bool {
		return !s.shardFileExists(f.indexName()) || !s.shardFileExists(f.flowsName())
	})
	out, errs = append(out, more...), append(errs, err)
	// Temporary files of an interrupted seal are garbage.
	if names, err := s.names(); err == nil {
		for _, n := range names {
			if strings.HasSuffix(n, extTmp) {
				s.removeShardFile(n)
			}
		}
	}
	return out, errors.Join(errs...)
}

// Repair does what Recover does and mends every sealed shard: a damaged
// shard header or pcap header frame is rewritten, a missing or damaged
// trailer (a shard cut short, bit rot) rebuilt from the intact blocks, and
// index and flow files rebuilt when missing, damaged or in an older
// format. It reads every block of the shards it mends. The caller holds
// the store's lock.
func (s *Store) Repair(newFlows func() FlowTable) ([]RecoveryReport, error) {
	out, err := s.Recover(newFlows)
	errs := []error{err}
	shards, err := s.Shards()
	if err != nil {
		return out, errors.Join(err)
	}
	for _, f := range shards {
		if !f.Sealed {
			continue // Recover sealed or named it
		}
		r, err := s.repairSealed(f, newFlows)
		if err != nil {
			errs = append(errs, fmt.Errorf("repair %s: %w", f.Name(), err))
		}
		if r.Did != "" {
			out = append(out, r)
		}
	}
	return out, errors.Join(errs...)
}

// Reindex rebuilds the index and flow files of the sealed shards whose
// index is in an older format than this build writes, damaged or missing,
// or whose flow file is damaged or missing, so that queries read only what
// their keys need (docs/format/index.md). It reads every block of those
// shards. The caller holds the store's lock.
func (s *Store) Reindex(newFlows func() FlowTable) ([]RecoveryReport, error) {
	shards, err := s.Shards()
	if err != nil {
		return nil, err
	}
	return s.reindexShards(shards, newFlows, func(f ShardFile) bool {
		return !s.currentIndex(f.indexName()) || !s.intactFlows(f.flowsName())
	})
}

// reindexShards rebuilds the index and flow files of the sealed shards
// for which need is true.
func (s *Store) reindexShards(shards []ShardFile, newFlows func() FlowTable, need func(ShardFile) bool) ([]RecoveryReport, error) {
	var out []RecoveryReport
	var errs []error
	for _, f := range shards {
		if !f.Sealed || !need(f) {
			continue
		}
		r, err := s.reindex(f, newFlows)
		if err != nil {
			errs = append(errs, fmt.Errorf("reindex %s: %w", f.Name(), err))
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// currentIndex reports whether the index file is intact and holds every
// key this build indexes (index.KeysVersion or later: a version 3 index
// is kept, as rebuilding it would read every block for a smaller file).
// Indexes are a few ten-thousandths of the packet bytes: checking them
// whole costs little next to a rebuild.
func (s *Store) currentIndex(name string) bool {
	f, err := s.openShardFile(name, forRead)
	if err != nil {
		return false
	}
	defer f.Close()
	if v, err := index.FileVersion(f); err != nil || v < index.KeysVersion {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(f, maxIndexFile))
	if err != nil {
		return false
	}
	_, err = index.Open(b, nil)
	return err == nil
}

// intactFlows reports whether the flow file decodes.
func (s *Store) intactFlows(name string) bool {
	b, err := s.readShardFile(name, maxFlowFile)
	if err != nil {
		return false
	}
	dec := newMetaDecoder()
	defer dec.Close()
	_, _, err = flow.DecodeFile(b, dec)
	return err == nil
}

// Bounds on the files read whole: far above what a 1 GiB shard's index
// and flows take (a few megabytes), far below what would hurt.
const (
	maxIndexFile = 1 << 30
	maxFlowFile  = 1 << 30
)

// newMetaDecoder returns a decoder for index and flow files: their
// bodies declare their length and are decoded into exactly that
// (WithDecodeAllCapLimit), never more than maxIndexFile.
func newMetaDecoder() *zstd.Decoder {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxIndexFile), zstd.WithDecodeAllCapLimit(true))
	return d
}

// names lists every name in the shards directory.
func (s *Store) names() ([]string, error) {
	l, err := s.readDir()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.Name()
	}
	return out, nil
}

// rebuild reads every block of a shard, checking it, and rebuilds the index
// and flow records from its packets. good lists the blocks that read
// intact. With drop, the index covers only those (a trailer listing them
// will be written); otherwise it covers every block of the shard, a bad
// one with an empty entry (its trailer stays as it is). bad names the bad
// blocks.
func rebuild(sh *pcapio.Shard, newFlows func() FlowTable, drop bool) (good []pcapio.BlockMeta, ix *index.Builder, recs *flow.FileWriter, packets uint64, bad []*pcapio.BlockError) {
	recs = &flow.FileWriter{}
	br := pcapio.NewBlockReader()
	defer br.Close()
	ix = index.NewBuilder()
	var ft FlowTable
	if newFlows != nil {
		ft = newFlows()
	}
	var p pkthdr.Packet
	for i := range sh.Blocks {
		raw, m, err := br.Read(sh, i)
		if err != nil {
			var be *pcapio.BlockError
			if !errors.As(err, &be) {
				be = &pcapio.BlockError{Block: i, Offset: sh.Blocks[i].Offset, Reason: err.Error()}
			}
			bad = append(bad, be)
			if !drop {
				ix.EndBlock(sh.Blocks[i].First, sh.Blocks[i].Last)
			}
			continue
		}
		// Records are checked before anything of the block is used: a
		// block left out must leave nothing in the index or flows.
		n := 0
		err = pcapio.RecordSpans(raw, sh.Header.Nanos, func(int, int, int64, uint32) { n++ })
		if err != nil || n != int(m.Packets) {
			bad = append(bad, &pcapio.BlockError{Block: i, Offset: m.Offset, Reason: "records do not match the block header"})
			if !drop {
				ix.EndBlock(m.First, m.Last)
			}
			continue
		}
		k := 0
		pcapio.Records(raw, sh.Header.LinkType, sh.Header.Nanos, func(pk pcapio.Packet) bool {
			pkthdr.Parse(pk.LinkType, pk.Data, &p)
			ix.AddPacket(&p)
			if ft != nil && p.IPVersion != 0 {
				ft.AddParsedNanos(pk.Timestamp.UnixNano(), &p, pk.Data, pk.OrigLen)
				if k&4095 == 0 {
					ft.ExpireInto(pk.Timestamp, recs)
				}
			}
			k++
			return true
		})
		ix.EndBlock(m.First, m.Last)
		packets += uint64(n)
		m.Number = sh.Blocks[i].Number
		good = append(good, m)
	}
	if ft != nil {
		ft.FlushInto(recs)
	}
	return good, ix, recs, packets, bad
}

// recoverShard seals a shard without a usable trailer from its intact
// blocks: an open shard a writer left (name is its .shard.open name, and
// it is renamed to its sealed name, never over an existing file), or a
// sealed one whose trailer is missing or damaged (it keeps its name). The
// shard's writer and sequence come from sf, that is from its validated
// file name, never from the file's contents.
func (s *Store) recoverShard(sf ShardFile, name string, newFlows func() FlowTable) (RecoveryReport, error) {
	rep := RecoveryReport{Shard: name, Did: "sealed"}
	if sf.Sealed {
		rep.Did = "trailer rebuilt"
	}
	f, err := s.openShardFile(name, forWrite)
	if err != nil {
		return rep, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return rep, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	sh, err := pcapio.OpenShard(f, fi.Size())
	if err != nil {
		if errors.Is(err, pcapio.ErrShardTruncated) && !sf.Sealed {
			// Not even a shard header made it to disk: nothing to keep.
			rep.LostBytes, rep.LostReason = fi.Size(), err.Error()
			f.Close()
			return rep, s.removeShardFile(name)
		}
		return rep, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if mended := mendBlocks(f, sh); mended != "" {
		// Walk again: the mended blocks are intact now.
		if sh, err = pcapio.OpenShard(f, fi.Size()); err != nil {
			return rep, fmt.Errorf("%s: %w", f.Name(), err)
		}
		rep.Did += "; " + mended
	}
	good, ix, recs, packets, bad := rebuild(sh, newFlows, true)
	if len(good) == 0 {
		rep.LostBytes, rep.LostReason = fi.Size(), "no intact block"
		if sf.Sealed {
			return rep, fmt.Errorf("%s: no intact block; left as it is", f.Name())
		}
		f.Close()
		return rep, s.removeShardFile(name)
	}
	last := good[len(good)-1]
	end := last.Offset + int64(pcapio.BlockSpan(last))
	rep.Blocks, rep.Packets = len(good), packets
	var kept int64
	for _, b := range good {
		kept += int64(pcapio.BlockSpan(b))
		rep.RawBytes += uint64(b.RawLen)
	}
	rep.StoredBytes = kept
	rep.LostBytes = end - sh.FirstBlock() - kept + fi.Size() - end
	var why []string
	for _, g := range sh.Gaps {
		why = append(why, g.Error())
	}
	for _, b := range bad {
		why = append(why, b.Error())
	}
	if sh.Damage != nil {
		why = append(why, sh.Damage.Error())
	} else if fi.Size() > end {
		why = append(why, fmt.Sprintf("%d bytes after the last intact block (a trailer damaged or cut short) dropped", fi.Size()-end))
	}
	rep.LostReason = strings.Join(why, "; ")

	if err := f.Truncate(end); err != nil {
		return rep, fmt.Errorf("truncate %s at byte %d: %w", f.Name(), end, err)
	}
	if _, err := f.WriteAt(pcapio.TrailerFor(good), end); err != nil {
		return rep, fmt.Errorf("write trailer of %s at byte %d: %w", f.Name(), end, err)
	}
	// Blocks left out between kept ones make block numbers skip, which
	// only version 2 allows; a damaged header is rewritten either way.
	skipped := len(good) != len(sh.Blocks) || len(sh.Gaps) > 0
	if sh.HeaderDamage != "" || (skipped && sh.Header.Version < pcapio.ShardVersion) {
		if err := rewriteHeader(f, sh, sf); err != nil {
			return rep, err
		}
	}
	if err := f.Sync(); err != nil {
		return rep, fmt.Errorf("fsync %s: %w", f.Name(), err)
	}
	stem := strings.TrimSuffix(strings.TrimSuffix(name, extOpen), extShard)
	if !sf.Sealed {
		first, lastTS := good[0].First, good[0].Last
		for _, b := range good {
			first, lastTS = min(first, b.First), max(lastTS, b.Last)
		}
		stem = shardStem(time.Unix(0, first), time.Unix(0, lastTS), sf.Writer, sf.Seq)
		// A sealed shard is never replaced, nor its index and flows.
		if s.shardFileExists(stem + extShard) {
			return rep, fmt.Errorf("sealed shard %s: %w; %s left open", stem+extShard, ErrExists, name)
		}
	}
	if err := s.writeIndexAndFlows(stem, ix, recs); err != nil {
		return rep, err
	}
	if !sf.Sealed {
		if err := s.renameShardFile(name, stem+extShard, true); err != nil {
			return rep, err
		}
		rep.Shard = stem + extShard
	}
	return rep, s.syncShards()
}

// mendBlocks rewrites the header of every block found between two intact
// ones (by the walk's resynchronising) whose data frame is intact and
// whose damaged header still agrees with it (pcapio.MendBlockHeader): a
// flipped byte in a block header then loses nothing. It says what it did.
func mendBlocks(f *os.File, sh *pcapio.Shard) string {
	var mended []string
	for _, g := range sh.Gaps {
		next := -1
		for i, b := range sh.Blocks {
			if b.Offset > g.Offset {
				next = i
				break
			}
		}
		if next < 0 {
			continue
		}
		number := uint32(0)
		if next > 0 {
			number = sh.Blocks[next-1].Number + 1
		}
		n := sh.Blocks[next].Offset - g.Offset
		if number >= sh.Blocks[next].Number || n > pcapio.MaxBlockRaw+pcapio.MaxBlockRaw/64+1024+64 {
			continue
		}
		stretch := make([]byte, n)
		if _, err := f.ReadAt(stretch, g.Offset); err != nil {
			continue
		}
		hdr, m, ok := pcapio.MendBlockHeader(stretch, number, sh.Header.Nanos)
		if !ok {
			continue
		}
		if _, err := f.WriteAt(hdr, g.Offset); err != nil {
			continue
		}
		mended = append(mended, fmt.Sprintf("header of block %d at byte %d rebuilt from its intact data (%d packets)", number, g.Offset, m.Packets))
	}
	return strings.Join(mended, "; ")
}

// rewriteHeader writes a new shard header over a damaged or outdated one,
// and a new pcap header frame over a damaged one when the new frame has
// the same length. Writer and sequence come from the file name (sf).
func rewriteHeader(f *os.File, sh *pcapio.Shard, sf ShardFile) error {
	h := sh.Header
	h.Writer, h.Seq = sf.Writer, sf.Seq
	hdr := pcapio.EncodeShardHeader(h)
	if n := int(sh.FirstBlock()) - pcapio.ShardHeaderLen; sh.PcapFrameDamaged {
		if frame, ok := pcapio.PcapHeaderFrame(h, n); ok {
			hdr = append(hdr, frame...)
		}
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("rewrite header of %s: %w", f.Name(), err)
	}
	return nil
}

// repairSealed mends one sealed shard (see Repair).
func (s *Store) repairSealed(sf ShardFile, newFlows func() FlowTable) (RecoveryReport, error) {
	rep := RecoveryReport{Shard: sf.Name()}
	f, err := s.openShardFile(sf.Name(), forRead)
	if err != nil {
		return rep, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return rep, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	sh, err := pcapio.OpenShard(f, fi.Size())
	f.Close()
	if err != nil {
		return rep, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if !sh.Sealed {
		// Cut short or a damaged trailer: seal it again from its blocks.
		return s.recoverShard(sf, sf.Name(), newFlows)
	}
	if sh.HeaderDamage != "" {
		w, err := s.openShardFile(sf.Name(), forWrite)
		if err != nil {
			return rep, err
		}
		err = rewriteHeader(w, sh, sf)
		if err == nil {
			err = w.Sync()
		}
		w.Close()
		if err != nil {
			return rep, err
		}
		rep.Did, rep.LostReason = "header rewritten", sh.HeaderDamage
	}
	if !s.currentIndex(sf.indexName()) || !s.intactFlows(sf.flowsName()) {
		r, err := s.reindex(sf, newFlows)
		if err != nil {
			return rep, err
		}
		if rep.Did != "" {
			r.Did = rep.Did + "; " + r.Did
		}
		rep = r
	}
	return rep, nil
}

func (s *Store) writeIndexAndFlows(stem string, ix *index.Builder, recs *flow.FileWriter) error {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	defer enc.Close()
	if err := s.writeShardFileAtomic(stem+extIndex, ix.Encode(enc)); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err := s.writeShardFileAtomic(stem+extFlows, recs.Encode(enc)); err != nil {
		return fmt.Errorf("write flows: %w", err)
	}
	return nil
}

// reindex rebuilds the index and flow files of a sealed shard.
func (s *Store) reindex(sf ShardFile, newFlows func() FlowTable) (RecoveryReport, error) {
	rep := RecoveryReport{Shard: sf.Name(), Did: "index and flows rebuilt"}
	f, err := s.openShardFile(sf.Name(), forRead)
	if err != nil {
		return rep, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return rep, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	sh, err := pcapio.OpenShard(f, fi.Size())
	if err != nil {
		return rep, fmt.Errorf("%s: %w", f.Name(), err)
	}
	good, ix, recs, packets, bad := rebuild(sh, newFlows, false)
	rep.Blocks, rep.Packets = len(good), packets
	if len(bad) > 0 {
		rep.LostReason = bad[0].Error() // the block stays in place; queries report it
	}
	return rep, s.writeIndexAndFlows(sf.stem(), ix, recs)
}
