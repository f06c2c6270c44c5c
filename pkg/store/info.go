package store

import (
	"errors"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/index"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// ShardStat describes one shard.
type ShardStat struct {
	Name        string
	Writer      string
	Sealed      bool
	First, Last time.Time
	Blocks      int
	Packets     uint64
	RawBytes    uint64 // pcap bytes before compression
	StoredBytes int64  // shard file size
	IndexBytes  int64
	FlowBytes   int64
	Flows       int
}

// InfoReport describes a store.
type InfoReport struct {
	Shards []ShardStat
	Damage []Damage
	// Totals over Shards.
	Packets                                     uint64
	RawBytes                                    uint64
	StoredBytes, IndexBytes, FlowBytes          int64
	First, Last                                 time.Time
	Verified                                    bool
	BlocksChecked, IndexesChecked, FlowsChecked int
}

// Info describes the store. With verify, every block is read and checked
// (checksum, decompression, records), every index and flow file decoded.
func (s *Store) Info(verify bool) (InfoReport, error) {
	rep := InfoReport{Verified: verify}
	l, err := s.List()
	if err != nil {
		return rep, err
	}
	rep.Damage = append(rep.Damage, l.Skipped...)
	dec := newMetaDecoder()
	defer dec.Close()
	br := pcapio.NewBlockReader()
	defer br.Close()
	for _, sf := range l.Shards {
		st, dmg := s.shardStat(sf, verify, dec, br, &rep)
		rep.Damage = append(rep.Damage, dmg...)
		if st == nil {
			continue
		}
		rep.add(*st)
	}
	return rep, nil
}

// add counts one shard into the report's totals and time span.
func (rep *InfoReport) add(st ShardStat) {
	rep.Shards = append(rep.Shards, st)
	rep.Packets += st.Packets
	rep.RawBytes += st.RawBytes
	rep.StoredBytes += st.StoredBytes
	rep.IndexBytes += st.IndexBytes
	rep.FlowBytes += st.FlowBytes
	if st.Packets > 0 {
		if rep.First.IsZero() || st.First.Before(rep.First) {
			rep.First = st.First
		}
		if st.Last.After(rep.Last) {
			rep.Last = st.Last
		}
	}
}

func (s *Store) shardStat(sf ShardFile, verify bool, dec *zstd.Decoder, br *pcapio.BlockReader, rep *InfoReport) (*ShardStat, []Damage) {
	var dmg []Damage
	f, err := s.openShardFile(sf.Name(), forRead)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, []Damage{{Shard: sf.Name(), Block: -1, Reason: reason(err)}}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, []Damage{{Shard: sf.Name(), Block: -1, Reason: err.Error()}}
	}
	sh, err := pcapio.OpenShard(f, fi.Size())
	if err != nil {
		if !sf.Sealed && errors.Is(err, pcapio.ErrShardTruncated) {
			return nil, nil // just created
		}
		return nil, []Damage{{Shard: sf.Name(), Block: -1, Reason: err.Error()}}
	}
	// The writer is the file name's: what the file says is not printed.
	st := &ShardStat{Name: sf.Name(), Writer: sf.Writer, Sealed: sf.Sealed, Blocks: len(sh.Blocks),
		Packets: sh.Packets, RawBytes: sh.RawBytes, StoredBytes: fi.Size()}
	for i, b := range sh.Blocks {
		if i == 0 || b.First < st.First.UnixNano() {
			st.First = time.Unix(0, b.First).UTC()
		}
		if b.Last > st.Last.UnixNano() {
			st.Last = time.Unix(0, b.Last).UTC()
		}
	}
	repair := " (run nwhealth store repair)"
	if sh.HeaderDamage != "" {
		dmg = append(dmg, Damage{Shard: sf.Name(), Block: -1, Reason: sh.HeaderDamage + repair})
	}
	if sf.Sealed && !sh.Sealed {
		reason := "trailer missing or damaged (blocks found by walking the file)"
		if sh.Damage != nil {
			reason = "trailer missing: the file ends inside a block (" + sh.Damage.Error() + ")"
		}
		dmg = append(dmg, Damage{Shard: sf.Name(), Block: -1, Reason: reason + repair})
	}
	writing := !sf.Sealed && HeldByOther(s.Dir)
	if !writing {
		for _, g := range sh.Gaps {
			dmg = append(dmg, Damage{Shard: sf.Name(), Block: g.Block, Offset: g.Offset, Reason: g.Reason})
		}
	}
	if !sf.Sealed && sh.Damage != nil && !writing {
		dmg = append(dmg, Damage{Shard: sf.Name(), Block: sh.Damage.Block, Offset: sh.Damage.Offset, Reason: sh.Damage.Reason + " (interrupted write; run nwhealth store repair)"})
	}
	if sf.Sealed {
		st.IndexBytes, st.FlowBytes = s.shardFileSize(sf.indexName()), s.shardFileSize(sf.flowsName())
		if st.IndexBytes == 0 {
			dmg = append(dmg, Damage{Shard: sf.Name(), Block: -1, Reason: "index missing" + repair})
		}
		if st.FlowBytes == 0 {
			dmg = append(dmg, Damage{Shard: sf.Name(), Block: -1, Reason: "flows missing" + repair})
		}
	}
	if !verify {
		return st, dmg
	}
	dmg = append(dmg, verifyBlocks(sf.Label(), sh, br, rep)...)
	if sf.Sealed && st.IndexBytes > 0 {
		b, err := s.readShardFile(sf.indexName(), maxIndexFile)
		dmg = append(dmg, verifyIndex(sf.Label(), b, err, len(sh.Blocks), dec, rep)...)
	}
	if sf.Sealed && st.FlowBytes > 0 {
		b, err := s.readShardFile(sf.flowsName(), maxFlowFile)
		var d []Damage
		st.Flows, d = verifyFlows(sf.Label(), b, err, dec, rep)
		dmg = append(dmg, d...)
	}
	return st, dmg
}

// verifyBlocks reads and checks every block of a shard.
func verifyBlocks(label string, sh *pcapio.Shard, br *pcapio.BlockReader, rep *InfoReport) []Damage {
	var dmg []Damage
	for i := range sh.Blocks {
		raw, m, err := br.Read(sh, i)
		rep.BlocksChecked++
		if err != nil {
			var be *pcapio.BlockError
			reason := err.Error()
			if errors.As(err, &be) {
				reason = be.Reason
			}
			dmg = append(dmg, Damage{Shard: label, Block: i, Offset: sh.Blocks[i].Offset, Reason: reason})
			continue
		}
		n := 0
		if err := pcapio.Records(raw, sh.Header.LinkType, sh.Header.Nanos, func(pcapio.Packet) bool { n++; return true }); err != nil || n != int(m.Packets) {
			dmg = append(dmg, Damage{Shard: label, Block: i, Offset: m.Offset, Reason: "records do not match the block header"})
		}
	}
	return dmg
}

const repairHint = " (run nwhealth store repair)"

// verifyIndex decodes an index file read with err.
func verifyIndex(label string, b []byte, err error, blocks int, dec *zstd.Decoder, rep *InfoReport) []Damage {
	rep.IndexesChecked++
	if err != nil {
		return []Damage{{Shard: label, Block: -1, Reason: "index: " + reason(err)}}
	} else if ix, err := index.Open(b, dec); err != nil {
		return []Damage{{Shard: label, Block: -1, Reason: "index: " + err.Error() + repairHint}}
	} else if ix.Blocks != blocks {
		return []Damage{{Shard: label, Block: -1, Reason: "index covers a different number of blocks" + repairHint}}
	}
	return nil
}

// verifyFlows decodes a flow file read with err; it returns the records
// counted.
func verifyFlows(label string, b []byte, err error, dec *zstd.Decoder, rep *InfoReport) (int, []Damage) {
	rep.FlowsChecked++
	if err != nil {
		return 0, []Damage{{Shard: label, Block: -1, Reason: "flows: " + reason(err)}}
	}
	recs, _, err := flow.DecodeFile(b, dec)
	if err != nil {
		return len(recs), []Damage{{Shard: label, Block: -1, Reason: "flows: " + err.Error() + repairHint}}
	}
	return len(recs), nil
}

// reason is an error's message without the path a FileError repeats
// (damage already names its shard).
func reason(err error) string {
	var fe *FileError
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return err.Error()
}
