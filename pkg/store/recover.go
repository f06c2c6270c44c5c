package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/index"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// RecoveryReport says what recovery did to one shard.
type RecoveryReport struct {
	Shard      string // sealed name, or the open name when nothing was kept
	Blocks     int    // blocks kept
	Packets    uint64
	LostBytes  int64  // bytes cut off after the last good block
	LostReason string // why the cut was made ("" when the file ended cleanly)
}

// Recover seals every shard left open by a writer that died. The caller
// holds the store's lock. newFlows rebuilds flow records (nil: empty flow
// files).
func (s *Store) Recover(newFlows func() FlowTable) ([]RecoveryReport, error) {
	shards, err := s.Shards()
	if err != nil {
		return nil, err
	}
	var out []RecoveryReport
	var errs []error
	for _, f := range shards {
		if f.Sealed {
			continue
		}
		r, err := recoverShard(s.Dir, f.ShardPath(), newFlows)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", f.Name(), err))
			continue
		}
		out = append(out, r)
	}
	more, err := reindexShards(shards, newFlows, func(f ShardFile) bool {
		return !fileExists(f.IndexPath()) || !fileExists(f.FlowsPath())
	})
	out, errs = append(out, more...), append(errs, err)
	// Temporary files of an interrupted seal are garbage.
	if ents, err := os.ReadDir(filepath.Join(s.Dir, shardsDir)); err == nil {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), extTmp) {
				os.Remove(filepath.Join(s.Dir, shardsDir, e.Name()))
			}
		}
	}
	return out, errors.Join(errs...)
}

// Reindex rebuilds the index and flow files of the sealed shards whose
// index is in an older format than this build writes, damaged or missing, so
// that queries read only what their keys need (docs/format/index.md). It
// reads every block of those shards: store repair runs it, writers
// starting on the store do not. The caller holds the store's lock.
func (s *Store) Reindex(newFlows func() FlowTable) ([]RecoveryReport, error) {
	shards, err := s.Shards()
	if err != nil {
		return nil, err
	}
	return reindexShards(shards, newFlows, func(f ShardFile) bool { return !currentIndex(f.IndexPath()) })
}

// reindexShards rebuilds the index and flow files of the sealed shards
// for which need is true.
func reindexShards(shards []ShardFile, newFlows func() FlowTable, need func(ShardFile) bool) ([]RecoveryReport, error) {
	var out []RecoveryReport
	var errs []error
	for _, f := range shards {
		if !f.Sealed || !need(f) {
			continue
		}
		r, err := reindex(f, newFlows)
		if err != nil {
			errs = append(errs, fmt.Errorf("reindex %s: %w", f.Name(), err))
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// currentIndex reports whether the index file at path is intact and in
// this build's format. Indexes are a few ten-thousandths of the packet
// bytes: checking them whole costs little next to a rebuild.
func currentIndex(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if v, err := index.FileVersion(f); err != nil || v != index.Version {
		return false
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return false
	}
	_, err = index.Open(b, nil)
	return err == nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// rebuild reads every block of a shard, checking it, and rebuilds the index
// and flow records from its packets. With stop, it ends at the first bad
// block (recovery keeps a prefix); otherwise a bad block gets an empty index
// entry and the rest is still indexed (a sealed shard's blocks are
// independent). bad is the first bad block.
func rebuild(sh *pcapio.Shard, newFlows func() FlowTable, stop bool) (good []pcapio.BlockMeta, ix *index.Builder, recs *flow.FileWriter, packets uint64, bad *pcapio.BlockError) {
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
			if bad == nil {
				bad = be
			}
			if stop {
				break
			}
			ix.EndBlock(sh.Blocks[i].First, sh.Blocks[i].Last)
			continue
		}
		n := 0
		err = pcapio.Records(raw, sh.Header.LinkType, sh.Header.Nanos, func(pk pcapio.Packet) bool {
			pkthdr.Parse(pk.LinkType, pk.Data, &p)
			ix.AddPacket(&p)
			if ft != nil && p.IPVersion != 0 {
				ft.AddParsed(pk.Timestamp, &p, pk.Data, pk.OrigLen)
				if n&4095 == 0 {
					ft.Expire(pk.Timestamp, recs.Add)
				}
			}
			n++
			return true
		})
		if err != nil || n != int(m.Packets) {
			if bad == nil {
				bad = &pcapio.BlockError{Block: i, Offset: m.Offset, Reason: "records do not match the block header"}
			}
			if stop {
				break
			}
		}
		ix.EndBlock(m.First, m.Last)
		packets += uint64(n)
		good = append(good, m)
	}
	if ft != nil {
		ft.Flush(recs.Add)
	}
	return good, ix, recs, packets, bad
}

// recoverShard seals an open shard from its complete, intact blocks.
func recoverShard(dir, path string, newFlows func() FlowTable) (RecoveryReport, error) {
	rep := RecoveryReport{Shard: filepath.Base(path)}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return rep, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return rep, err
	}
	sh, err := pcapio.OpenShard(f, fi.Size())
	if err != nil {
		// Not even a shard header made it to disk: nothing to keep.
		if errors.Is(err, pcapio.ErrShardTruncated) || errors.Is(err, pcapio.ErrNotShard) {
			rep.LostBytes, rep.LostReason = fi.Size(), err.Error()
			f.Close()
			return rep, os.Remove(path)
		}
		return rep, err
	}
	good, ix, recs, packets, bad := rebuild(sh, newFlows, true)
	end := sh.End
	switch {
	case bad != nil:
		end = bad.Offset
		rep.LostReason = bad.Error()
	case sh.Damage != nil:
		rep.LostReason = sh.Damage.Error()
	}
	if len(good) == 0 {
		rep.LostBytes = fi.Size()
		f.Close()
		return rep, os.Remove(path)
	}
	rep.LostBytes = fi.Size() - end
	rep.Blocks, rep.Packets = len(good), packets
	if err := f.Truncate(end); err != nil {
		return rep, err
	}
	if _, err := f.WriteAt(pcapio.TrailerFor(good), end); err != nil {
		return rep, fmt.Errorf("write trailer: %w", err)
	}
	if err := f.Sync(); err != nil {
		return rep, err
	}
	first, last := good[0].First, good[0].Last
	for _, b := range good {
		first, last = min(first, b.First), max(last, b.Last)
	}
	base := sealedBase(dir, time.Unix(0, first), time.Unix(0, last), sh.Header.Writer, sh.Header.Seq)
	if err := writeIndexAndFlows(base, ix, recs); err != nil {
		return rep, err
	}
	if err := os.Rename(path, base+extShard); err != nil {
		return rep, err
	}
	rep.Shard = filepath.Base(base + extShard)
	return rep, syncDir(filepath.Dir(base))
}

func writeIndexAndFlows(base string, ix *index.Builder, recs *flow.FileWriter) error {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	defer enc.Close()
	if err := writeFileAtomic(base+extIndex, ix.Encode(enc)); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err := writeFileAtomic(base+extFlows, recs.Encode(enc)); err != nil {
		return fmt.Errorf("write flows: %w", err)
	}
	return nil
}

// reindex rebuilds the index and flow files of a sealed shard.
func reindex(sf ShardFile, newFlows func() FlowTable) (RecoveryReport, error) {
	rep := RecoveryReport{Shard: sf.Name()}
	f, err := os.Open(sf.ShardPath())
	if err != nil {
		return rep, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return rep, err
	}
	sh, err := pcapio.OpenShard(f, fi.Size())
	if err != nil {
		return rep, err
	}
	good, ix, recs, packets, bad := rebuild(sh, newFlows, false)
	rep.Blocks, rep.Packets = len(good), packets
	if bad != nil {
		rep.LostReason = bad.Error() // the block stays in place; queries report it
	}
	return rep, writeIndexAndFlows(sf.Base, ix, recs)
}
