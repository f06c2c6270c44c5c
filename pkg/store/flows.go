package store

import (
	"container/heap"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/objstore"
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
func Flows(stores []Reader, sel Selector, newFlows func() FlowTable, emit func(*flow.Record) error) error {
	dec := newMetaDecoder()
	defer dec.Close()
	var dmg []Damage
	var sealed, open []storeShard
	for _, st := range stores {
		l, err := st.listFrom(sel.From)
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
	load := func(s storeShard) error {
		recs, d, err := shardFlows(s.st, s.sf, newFlows, dec)
		if err != nil {
			return err
		}
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
		return nil
	}
	for _, sf := range open { // unknown start: the newest data, and small
		if err := load(sf); err != nil {
			return err
		}
	}
	// A sealed shard joins once the heap's earliest record is not before
	// the shard's first second: only overlapping shards are in memory.
	next := 0
	for {
		for next < len(sealed) && (h.Len() == 0 || !(*h)[0].recs[(*h)[0].pos].First.Before(sealed[next].sf.First)) {
			if err := load(sealed[next]); err != nil {
				return err
			}
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
	st Reader
	sf ShardFile
}

// shardFlows reads a shard's flow records. The error is an object store
// that cannot be reached (the whole command fails); damage is the rest.
func shardFlows(st Reader, sf ShardFile, newFlows func() FlowTable, dec *zstd.Decoder) ([]flow.Record, []Damage, error) {
	if sf.Sealed {
		recs, dmg, _, err := sealedFlows(st, sf, dec)
		return recs, dmg, err
	}
	s, ok := st.(*Store)
	if newFlows == nil || !ok {
		return nil, nil, nil
	}
	recs, dmg := s.openShardFlows(sf, newFlows)
	return recs, dmg, nil
}

// sealedFlows reads a sealed shard's flow file. The error is an object
// store that cannot be reached; gone says the shard was removed (by
// retention) since the listing, which is no damage; damage is the rest,
// with the records before it.
func sealedFlows(st Reader, sf ShardFile, dec *zstd.Decoder) (recs []flow.Record, dmg []Damage, gone bool, err error) {
	b, err := st.readFlows(sf)
	if err != nil {
		if fatal(err) {
			return nil, nil, false, fmt.Errorf("shard %s: flows: %w", sf.Label(), err)
		}
		if removed(st, sf, err) {
			return nil, nil, true, nil
		}
		return nil, []Damage{{Shard: sf.Label(), Block: -1, Reason: "flows: " + reason(err)}}, false, nil
	}
	recs, _, err = flow.DecodeFile(b, dec)
	if err != nil {
		return recs, []Damage{{Shard: sf.Label(), Block: -1, Reason: "flows: " + err.Error()}}, false, nil
	}
	return recs, nil, false, nil
}

// removed reports whether a read failed because the shard is no longer
// in the store: a local shard file gone, or an object that the listing
// had and a GET no longer finds (a day partition removed by retention).
// An object the listing lacks though its manifest names it is damage.
func removed(st Reader, sf ShardFile, err error) bool {
	if s, ok := st.(*Store); ok {
		return errors.Is(err, os.ErrNotExist) && !s.shardFileExists(sf.Name())
	}
	return errors.Is(err, objstore.ErrNotFound)
}

// openShardFlows rebuilds an open shard's flows from its blocks.
func (s *Store) openShardFlows(sf ShardFile, newFlows func() FlowTable) ([]flow.Record, []Damage) {
	// An open shard: rebuild its flows from the blocks written so far.
	f, err := s.openShardFile(sf.Name(), forRead)
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

// ShardRecords reads the flow records of one sealed shard of any store,
// for callers that take shards one by one (an export). Damage comes back
// as *DamageError naming the shard, with the records before it; a shard
// removed (by retention) since the listing as os.ErrNotExist; an object
// store that cannot be reached as its error.
func ShardRecords(st Reader, sf ShardFile) ([]flow.Record, error) {
	if !sf.Sealed {
		return nil, fmt.Errorf("shard %s: not sealed", sf.Label())
	}
	dec := newMetaDecoder()
	defer dec.Close()
	recs, dmg, gone, err := sealedFlows(st, sf, dec)
	switch {
	case err != nil:
		return nil, err
	case gone:
		return nil, fmt.Errorf("shard %s: %w", sf.Label(), os.ErrNotExist)
	case len(dmg) > 0:
		return recs, &DamageError{Damage: dmg}
	}
	return recs, nil
}
