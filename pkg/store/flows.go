package store

import (
	"container/heap"
	"errors"
	"os"
	"slices"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// MatchFlow applies the selector's time, address, port, protocol and VLAN
// fields to a flow record (Filter is for packets and is ignored): a flow
// matches when it overlaps [From, To) and either end matches.
func (s *Selector) MatchFlow(r *flow.Record) bool {
	if !s.From.IsZero() && r.Last.Before(s.From) {
		return false
	}
	if !s.To.IsZero() && !r.First.Before(s.To) {
		return false
	}
	if s.hasAddr() && !s.addrMatch(r.Orig) && !s.addrMatch(r.Resp) {
		return false
	}
	if len(s.Ports) > 0 && !slices.Contains(s.Ports, r.OrigPort) && !slices.Contains(s.Ports, r.RespPort) {
		return false
	}
	if len(s.Protos) > 0 && !slices.Contains(s.Protos, r.Proto) {
		return false
	}
	if len(s.VLANs) > 0 && !slices.Contains(s.VLANs, r.VLAN) {
		return false
	}
	return true
}

// Flows calls emit with the flow records of the stores that match sel,
// ordered by first time. Sealed shards are read from their flow files;
// open shards (a capture in progress) have their flows rebuilt from their
// blocks with newFlows. Damage is reported as *DamageError after the rest.
func Flows(stores []*Store, sel Selector, newFlows func() FlowTable, emit func(*flow.Record) error) error {
	dec := newMetaDecoder()
	defer dec.Close()
	var dmg []Damage
	var sealed, open []storeShard
	for _, st := range stores {
		l, err := st.List()
		if err != nil {
			return err
		}
		dmg = append(dmg, l.Skipped...)
		for _, sf := range l.Shards {
			switch {
			case !sf.Overlaps(sel.From, sel.To):
			case sf.Sealed:
				sealed = append(sealed, storeShard{st, sf})
			default:
				open = append(open, storeShard{st, sf})
			}
		}
	}
	slices.SortStableFunc(sealed, func(a, b storeShard) int { return a.sf.First.Compare(b.sf.First) })
	h := &flowHeap{}
	load := func(s storeShard) {
		recs, d := s.st.shardFlows(s.sf, newFlows, dec)
		dmg = append(dmg, d...)
		kept := recs[:0]
		for i := range recs {
			if sel.MatchFlow(&recs[i]) {
				kept = append(kept, recs[i])
			}
		}
		if len(kept) > 0 {
			heap.Push(h, &flowCursor{recs: kept})
		}
	}
	for _, sf := range open { // unknown start: the newest data, and small
		load(sf)
	}
	// A sealed shard joins once the heap's earliest record is not before
	// the shard's first second: only overlapping shards are in memory.
	next := 0
	for {
		for next < len(sealed) && (h.Len() == 0 || !(*h)[0].recs[(*h)[0].pos].First.Before(sealed[next].sf.First)) {
			load(sealed[next])
			next++
		}
		if h.Len() == 0 {
			break
		}
		c := (*h)[0]
		if err := emit(&c.recs[c.pos]); err != nil {
			return err
		}
		c.pos++
		if c.pos == len(c.recs) {
			heap.Pop(h)
		} else {
			heap.Fix(h, 0)
		}
	}
	if len(dmg) > 0 {
		return &DamageError{Damage: dmg}
	}
	return nil
}

// storeShard is a shard and the store it is in.
type storeShard struct {
	st *Store
	sf ShardFile
}

func (s *Store) shardFlows(sf ShardFile, newFlows func() FlowTable, dec *zstd.Decoder) ([]flow.Record, []Damage) {
	if sf.Sealed {
		b, err := s.readShardFile(sf.flowsName(), maxFlowFile)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && !s.shardFileExists(sf.Name()) {
				return nil, nil // removed by retention meanwhile
			}
			return nil, []Damage{{Shard: sf.Name(), Block: -1, Reason: "flows: " + err.Error()}}
		}
		recs, _, err := flow.DecodeFile(b, dec)
		if err != nil {
			return recs, []Damage{{Shard: sf.Name(), Block: -1, Reason: "flows: " + err.Error()}}
		}
		return recs, nil
	}
	if newFlows == nil {
		return nil, nil
	}
	// An open shard: rebuild its flows from the blocks written so far.
	f, err := s.openShardFile(sf.Name(), false)
	if err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			return nil, []Damage{{Shard: sf.Name(), Block: -1, Reason: fe.Reason}}
		}
		return nil, nil // sealed meanwhile: the next listing has it
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil
	}
	sh, err := pcapio.OpenShard(f, fi.Size())
	if err != nil {
		return nil, nil
	}
	br := pcapio.NewBlockReader()
	defer br.Close()
	ft := newFlows()
	var p pkthdr.Packet
	var dmg []Damage
	for i := range sh.Blocks {
		raw, _, err := br.Read(sh, i)
		if err != nil {
			continue // the block being written, or damage a repair will handle
		}
		pcapio.Records(raw, sh.Header.LinkType, sh.Header.Nanos, func(pk pcapio.Packet) bool {
			if pkthdr.Parse(pk.LinkType, pk.Data, &p) {
				ft.AddParsedNanos(pk.Timestamp.UnixNano(), &p, pk.Data, pk.OrigLen)
			}
			return true
		})
	}
	var fw flow.FileWriter
	ft.FlushInto(&fw)
	recs := fw.Records()
	slices.SortStableFunc(recs, func(a, b flow.Record) int { return a.First.Compare(b.First) })
	return recs, dmg
}

type flowCursor struct {
	recs []flow.Record
	pos  int
}

type flowHeap []*flowCursor

func (h flowHeap) Len() int { return len(h) }
func (h flowHeap) Less(i, j int) bool {
	return h[i].recs[h[i].pos].First.Before(h[j].recs[h[j].pos].First)
}
func (h flowHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *flowHeap) Push(x any)   { *h = append(*h, x.(*flowCursor)) }
func (h *flowHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
