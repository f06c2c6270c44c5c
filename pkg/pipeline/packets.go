package pipeline

import (
	"context"
	"io"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/replay"
	"github.com/nwhealth/nwhealth/pkg/store"
)

// PacketOptions choose how a packet stream is read.
type PacketOptions struct {
	// Follow keeps reading the stores as a writer appends (tail -f), until
	// the context ends; FromEnd skips what is already stored.
	Follow, FromEnd bool
	// Flows, when set, receives every flow record of the input as well:
	// a capture's packets are built into flows on their way to the reader
	// (one pass over the file), a store's flow files are read before its
	// packets, and Zeek logs' rows are added. Call Packets.Close (or
	// Finish) after the last packet so the open flows are flushed.
	Flows func(*flow.Record)
}

// Packets is a time-ordered packet stream over an input's captures or
// stores. It is a replay.Source.
type Packets struct {
	src      replay.Source
	caps     *captures
	query    *store.QuerySource
	follower *store.Follower
	tee      *flowTee
	dmg      Damage
	finished bool
}

// OpenPackets opens the input's packets. An input with stores reads them
// (with Selector); otherwise its captures, merged by time as mergecap does.
func OpenPackets(ctx context.Context, in Input, opt PacketOptions) (*Packets, error) {
	pk := &Packets{}
	if opt.Flows != nil {
		if err := zeekFlows(ctx, in.Zeek, in.ZeekDNS, opt.Flows, &pk.dmg); err != nil {
			return nil, err
		}
	}
	switch {
	case len(in.Stores) > 0 && opt.Follow:
		fl, err := store.Follow(ctx, in.Stores, in.Selector, opt.FromEnd, 0)
		if err != nil {
			return nil, err
		}
		pk.follower, pk.src = fl, fl
	case len(in.Stores) > 0:
		if opt.Flows != nil {
			if err := storeFlows(ctx, in, opt.Flows, &pk.dmg); err != nil {
				return nil, err
			}
		}
		plan, err := store.PlanQuery(in.Stores, in.Selector)
		if err != nil {
			return nil, err
		}
		pk.query = plan.Source()
		pk.src = pk.query
	default:
		c, err := openCaptures(in)
		if err != nil {
			return nil, err
		}
		pk.caps, pk.src = c, c.Source
		if opt.Flows != nil {
			pk.tee = &flowTee{src: c.Source, b: flow.NewBuilder(flow.Options{}), sink: opt.Flows}
			pk.src = pk.tee
		}
	}
	return pk, nil
}

// Next returns the next packet; io.EOF at the end.
func (p *Packets) Next() (pcapio.Packet, error) { return p.src.Next() }

// Finish flushes the flows still open in a capture's flow builder and
// collects the damage met on the way. It is safe to call more than once.
func (p *Packets) Finish() {
	if p.finished {
		return
	}
	p.finished = true
	if p.tee != nil {
		p.tee.b.Flush(p.tee.sink)
	}
	if p.caps != nil {
		p.caps.damage(&p.dmg)
	}
	if p.query != nil {
		p.dmg.addStore(p.query.Err())
	}
	if p.follower != nil {
		for _, d := range p.follower.Damage {
			p.dmg.add(d.String())
		}
	}
}

// Damage is what was skipped; complete after Finish.
func (p *Packets) Damage() Damage { return p.dmg }

// Close stops reading and releases the inputs.
func (p *Packets) Close() error {
	var err error
	if p.query != nil {
		err = p.query.Close()
	}
	if p.follower != nil {
		err = p.follower.Close()
	}
	if p.caps != nil {
		p.caps.Close()
	}
	return err
}

var _ io.Closer = (*Packets)(nil)
