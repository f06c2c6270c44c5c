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
	files, err := s.Shards()
	if err != nil {
		return rep, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return rep, err
	}
	defer dec.Close()
	br := pcapio.NewBlockReader()
	defer br.Close()
	for _, sf := range files {
		st, dmg := s.shardStat(sf, verify, dec, br, &rep)
		rep.Damage = append(rep.Damage, dmg...)
		if st == nil {
			continue
		}
		rep.Shards = append(rep.Shards, *st)
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
	return rep, nil
}

func (s *Store) shardStat(sf ShardFile, verify bool, dec *zstd.Decoder, br *pcapio.BlockReader, rep *InfoReport) (*ShardStat, []Damage) {
	var dmg []Damage
	f, err := os.Open(sf.ShardPath())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, []Damage{{Shard: sf.Name(), Block: -1, Reason: err.Error()}}
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
	st := &ShardStat{Name: sf.Name(), Writer: sh.Header.Writer, Sealed: sh.Sealed, Blocks: len(sh.Blocks),
		Packets: sh.Packets, RawBytes: sh.RawBytes, StoredBytes: fi.Size()}
	for i, b := range sh.Blocks {
		if i == 0 || b.First < st.First.UnixNano() {
			st.First = time.Unix(0, b.First).UTC()
		}
		if b.Last > st.Last.UnixNano() {
			st.Last = time.Unix(0, b.Last).UTC()
		}
	}
	if sf.Sealed && !sh.Sealed {
		dmg = append(dmg, Damage{Shard: sf.Name(), Block: -1, Reason: "trailer missing or damaged (blocks found by walking the file)"})
	}
	if !sf.Sealed && sh.Damage != nil && !HeldByOther(s.Dir) {
		dmg = append(dmg, Damage{Shard: sf.Name(), Block: sh.Damage.Block, Offset: sh.Damage.Offset, Reason: sh.Damage.Reason + " (interrupted write; run nwhealth store repair)"})
	}
	if sf.Sealed {
		st.IndexBytes, st.FlowBytes = fileSize(sf.IndexPath()), fileSize(sf.FlowsPath())
		if st.IndexBytes == 0 {
			dmg = append(dmg, Damage{Shard: sf.Name(), Block: -1, Reason: "index missing (run nwhealth store repair)"})
		}
	}
	if !verify {
		return st, dmg
	}
	for i := range sh.Blocks {
		raw, m, err := br.Read(sh, i)
		rep.BlocksChecked++
		if err != nil {
			var be *pcapio.BlockError
			reason := err.Error()
			if errors.As(err, &be) {
				reason = be.Reason
			}
			dmg = append(dmg, Damage{Shard: sf.Name(), Block: i, Offset: sh.Blocks[i].Offset, Reason: reason})
			continue
		}
		n := 0
		if err := pcapio.Records(raw, sh.Header.LinkType, sh.Header.Nanos, func(pcapio.Packet) bool { n++; return true }); err != nil || n != int(m.Packets) {
			dmg = append(dmg, Damage{Shard: sf.Name(), Block: i, Offset: m.Offset, Reason: "records do not match the block header"})
		}
	}
	if sf.Sealed && st.IndexBytes > 0 {
		rep.IndexesChecked++
		if b, err := os.ReadFile(sf.IndexPath()); err != nil {
			dmg = append(dmg, Damage{Shard: sf.Name(), Block: -1, Reason: "index: " + err.Error()})
		} else if ix, err := index.Open(b, dec); err != nil {
			dmg = append(dmg, Damage{Shard: sf.Name(), Block: -1, Reason: "index: " + err.Error()})
		} else if ix.Blocks != len(sh.Blocks) {
			dmg = append(dmg, Damage{Shard: sf.Name(), Block: -1, Reason: "index covers a different number of blocks"})
		}
	}
	if sf.Sealed && st.FlowBytes > 0 {
		rep.FlowsChecked++
		if b, err := os.ReadFile(sf.FlowsPath()); err == nil {
			recs, _, err := flow.DecodeFile(b, dec)
			st.Flows = len(recs)
			if err != nil {
				dmg = append(dmg, Damage{Shard: sf.Name(), Block: -1, Reason: "flows: " + err.Error()})
			}
		}
	}
	return st, dmg
}
