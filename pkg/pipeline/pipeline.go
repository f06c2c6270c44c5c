// Package pipeline wires inputs to the analyses: capture files, stores and
// Zeek logs become one time-ordered stream of packets (for replay) and one
// stream of flow records (for hunt), each input read once. Commands fill an
// Input from their flags and hand the streams to the analysis they run; they
// do not know how a capture is merged or how a store is queried.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/replay"
	"github.com/nwhealth/nwhealth/pkg/store"
	"github.com/nwhealth/nwhealth/pkg/zeek"
)

// Input names where traffic comes from. Captures and stores are packet
// inputs (a command gives one kind or the other); Zeek logs add flow records.
type Input struct {
	Pcaps    []string
	Stores   []store.Reader // local directories or object stores
	Selector store.Selector // applies to Stores
	Zeek     []string
	// ZeekDNS, when set, takes every dns.log row's question (its type
	// is in no flow record): hunt's DNS model.
	ZeekDNS func(zeek.DNSQuestion)
	// OpenCapture opens one capture file; nil means replay.OpenFile. Tests
	// replace it.
	OpenCapture func(path string) (*replay.DamagedSource, io.Closer, error)
}

// maxPlaces bounds the damaged places kept by name; the rest are counted.
const maxPlaces = 100

// Damage names input that was skipped: damaged capture records, malformed
// log rows, unreadable store blocks. Every valid packet and row around them
// was used.
type Damage struct {
	Places []string // the first places, each naming its file, shard or row
	// Counts says how many damaged places each of Places stands for: 1,
	// more for a group of rows named once, 0 for a detail of the one
	// before.
	Counts []int
	Count  int // all places, named or not
	// Unused names inputs, or parts of them, that were read but are of no
	// use to the analysis (a Zeek log of another kind, encrypted Wi-Fi
	// frames): no damage, but never ignored silently.
	Unused []string
}

func (d *Damage) add(place string) { d.addN(place, 1) }

// addN names a place that stands for n damaged places (rows).
func (d *Damage) addN(place string, n int) {
	d.Count += n
	if len(d.Places) < maxPlaces {
		d.Places = append(d.Places, place)
		d.Counts = append(d.Counts, n)
	}
}

func (d *Damage) addStore(err error) error {
	var de *store.DamageError
	if errors.As(err, &de) {
		for _, p := range de.Damage {
			d.add(p.String())
		}
		return nil
	}
	return err
}

// Empty reports whether nothing was skipped.
func (d *Damage) Empty() bool { return d.Count == 0 }

// NewFlowTable builds the flow records kept beside each shard and from
// captures: one definition, so a capture and a store give the same records.
// The records go straight into the store's flow files, encoded; when a
// table is full, evicted one-packet flows are counted instead of recorded
// (a flood of new flows: docs/capture.md).
func NewFlowTable() store.FlowTable { return flow.NewBuilder(FlowTableOptions()) }

// FlowTableOptions are the options of NewFlowTable's builders.
func FlowTableOptions() flow.Options {
	return flow.Options{Encoded: true, DropSingles: true, MaxFlows: StoreMaxFlows}
}

// StoreMaxFlows bounds the open flows of a shard's table (docs/capture.md,
// Floods): 23 MiB of entries, which a server's last-level cache mostly
// holds. A larger table costs a flood of new flows a cache miss or two
// more a packet (a fifth more CPU at 256 Ki flows) than it saves a busy
// link in flows ended early: the least recently active flow is evicted
// first, recorded as partial, its packets stored all the same.
const StoreMaxFlows = 1 << 17

// checkEvery is how many records or packets pass between looks at the
// context: often enough to stop within milliseconds, rarely enough to cost
// nothing.
const checkEvery = 4096

// Flows hands every flow record of the input to sink: the stores' flow
// files in the selector's range, the captures' packets built into flows
// (merged by time, so a connection spanning two files is one record), and
// the Zeek logs' rows. It stops with ctx's error when ctx ends.
func Flows(ctx context.Context, in Input, sink func(*flow.Record)) (Damage, error) {
	var dmg Damage
	if err := zeekFlows(ctx, in.Zeek, in.ZeekDNS, sink, &dmg); err != nil {
		return dmg, err
	}
	if len(in.Stores) > 0 {
		if err := storeFlows(ctx, in, sink, &dmg); err != nil {
			return dmg, err
		}
	}
	if len(in.Pcaps) == 0 {
		return dmg, nil
	}
	src, err := openCaptures(in)
	if err != nil {
		return dmg, err
	}
	defer src.Close()
	tee := &flowTee{src: src.Source, b: flow.NewBuilder(flow.Options{}), sink: sink}
	for n := 1; ; n++ {
		if _, err = tee.Next(); err != nil {
			break
		}
		if n%checkEvery == 0 && ctx.Err() != nil {
			return dmg, ctx.Err()
		}
	}
	tee.b.Flush(sink)
	src.damage(&dmg)
	if err != io.EOF {
		return dmg, err
	}
	return dmg, nil
}

// storeFlows adds the stores' flow records in the selector's range.
func storeFlows(ctx context.Context, in Input, sink func(*flow.Record), dmg *Damage) error {
	n := 0
	err := store.Flows(in.Stores, in.Selector, NewFlowTable, func(r *flow.Record) error {
		if n++; n%checkEvery == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		sink(r)
		return nil
	})
	return dmg.addStore(err)
}

// HuntDNS is Input.ZeekDNS for hunt: each dns.log question's type into
// the model's DNS features.
func HuntDNS(m *hunt.Model) func(zeek.DNSQuestion) {
	return func(q zeek.DNSQuestion) { m.AddDNSQueryType(q.Client, q.Name, q.QType) }
}

// zeekFlows adds the records of Zeek logs: conn rows joined with the
// http, ssl and dns rows of the same connections (zeek.Join). Malformed
// rows, logs cut short and rows without their connection are named.
func zeekFlows(ctx context.Context, paths []string, dns func(zeek.DNSQuestion), sink func(*flow.Record), dmg *Damage) error {
	if len(paths) == 0 {
		return nil
	}
	rp, err := zeek.JoinDNS(paths, sink, dns)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	named := 0
	for _, p := range rp.Damage {
		dmg.addN(p.Place, p.Rows)
		named += p.Rows
	}
	dmg.Count += rp.Damaged - named // the ones beyond the named places
	dmg.Unused = append(dmg.Unused, rp.Unused...)
	return nil
}

// captures is the merged packet stream of several capture files.
type captures struct {
	Source  replay.Source
	files   []*replay.DamagedSource
	closers []io.Closer
}

func openCaptures(in Input) (*captures, error) {
	open := in.OpenCapture
	if open == nil {
		open = replay.OpenFile
	}
	c := &captures{}
	var srcs []replay.Source
	for _, p := range in.Pcaps {
		s, cl, err := open(p)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("open capture: %w", err)
		}
		srcs, c.files, c.closers = append(srcs, s), append(c.files, s), append(c.closers, cl)
	}
	c.Source = replay.Merge(srcs...)
	return c, nil
}

func (c *captures) damage(d *Damage) {
	for _, f := range c.files {
		for _, ce := range f.Damage {
			d.add(fmt.Sprintf("%s: %v", f.Name, ce))
		}
		if f.WiFiProtected > 0 {
			d.Unused = append(d.Unused, fmt.Sprintf("%s: %d protected 802.11 frames (encrypted Wi-Fi) not read", f.Name, f.WiFiProtected))
		}
	}
}

func (c *captures) Close() error {
	for _, cl := range c.closers {
		cl.Close()
	}
	return nil
}

// flowTee hands each packet to the flow builder on its way to the consumer,
// so flows and packets come from one read of a capture.
type flowTee struct {
	src  replay.Source
	b    *flow.Builder
	sink func(*flow.Record)
	next time.Time
}

func (t *flowTee) Next() (pcapio.Packet, error) {
	p, err := t.src.Next()
	if err != nil {
		return p, err
	}
	t.b.Add(p.Timestamp, p.LinkType, p.Data, p.OrigLen)
	if p.Timestamp.After(t.next) {
		t.b.Expire(p.Timestamp, t.sink)
		t.next = p.Timestamp.Add(time.Second)
	}
	return p, nil
}
