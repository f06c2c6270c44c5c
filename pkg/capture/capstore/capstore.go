// Package capstore stores live capture in a store: one store writer per
// capture worker, with the options capture uses, behind capture.Sink. The
// command wires it to flags; the cost harness (tools/capcost) and the
// benchmarks use the same code, so what they count is what capture runs.
package capstore

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/store"
)

// Options are the per-writer settings the command takes from its flags.
type Options struct {
	Worker    int           // capture worker number: the writer id is "cNN"
	Snaplen   uint32        // of the capture
	ShardSize int64         // raw bytes per shard
	Flush     time.Duration // longest a packet waits before its block is written
	OnSeal    func(store.ShardFile)
	// MaxFlows bounds each shard's flow table (0: flow.DefaultMaxFlows).
	// The cost harness lowers it to reach a flood's steady state, a full
	// table, in fewer packets.
	MaxFlows int
}

// GCPercent is capture's GOGC (docs/capture.md, Floods).
const GCPercent = 50

// SetRuntime gives the process capture's scheduler and collector settings
// for its workers, unless the GOMAXPROCS or GOGC variable sets them. The
// cost harness applies them too: with an idle scheduler thread and the
// default GOGC, a flood stored in process cost 15-30 % more CPU than
// capture pays (docs/PERFORMANCE.md, Capture).
func SetRuntime(workers int) {
	// One scheduler thread per worker: the workers do all the heavy work
	// (ring walk, headers, index, flows and compression inline), and with
	// more, idle threads spin looking for work each time a worker hands a
	// block to its writer: 40 % more CPU per packet in the benchmark.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(workers)
	}
	// The store's heap is mostly pointer-free tables kept from shard to
	// shard (flows, index), which a collection does not scan, so
	// collecting at half the default growth costs little CPU and keeps
	// the garbage between collections (and its page faults) from growing
	// with those tables: a 3 M flood's peak memory 231 -> 191 MB, page
	// faults 54,684 -> 44,180.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}

// BlockSize is the raw size of a capture writer's blocks. 64 KiB blocks
// (Arkime's choice) halve the per-block costs of small-packet floods
// against 32 KiB, at little cost to queries.
const BlockSize = 64 << 10

// WriterOptions are the store writer options of one capture worker.
func WriterOptions(o Options) store.WriterOptions {
	return store.WriterOptions{
		ID:            writerID(o.Worker),
		Snaplen:       o.Snaplen,
		ShardSize:     o.ShardSize,
		ShardSpan:     time.Hour,
		BlockSize:     BlockSize,
		FlushInterval: o.Flush,
		// Each worker compresses its own blocks inline: handing every
		// block to another goroutine costs more than it saves.
		Compressors: 1,
		Inline:      true,
		NewFlows:    newFlows(o.MaxFlows),
		OnSeal:      o.OnSeal,
	}
}

// newFlows is the store's flow table (pipeline.NewFlowTable), with its
// bound changed when max is set.
func newFlows(max int) func() store.FlowTable {
	if max <= 0 {
		return pipeline.NewFlowTable
	}
	return func() store.FlowTable {
		fo := pipeline.FlowTableOptions()
		fo.MaxFlows = max
		return flow.NewBuilder(fo)
	}
}

func writerID(worker int) string { return fmt.Sprintf("c%02d", worker) }

// Sink feeds one worker's packets to its store writer. The writer is
// embedded so that its Frames and WriteFrames are the sink's
// (capture.FrameSink): the ring walk hands the writer a run of a block's
// packets in one call, through a wrapper the compiler makes a jump.
type Sink struct {
	*store.Writer
}

// The walk takes the run path only from a FrameSink: without it every
// packet would be a call, and without a NanoSink build a time.Time.
var (
	_ capture.FrameSink = (*Sink)(nil)
	_ capture.NanoSink  = (*Sink)(nil)
)

// NewWriter opens worker o.Worker's writer on st and returns its sink.
// The caller holds st's lock.
func NewWriter(st *store.Store, lt pkthdr.LinkType, o Options) (*Sink, error) {
	w, err := st.NewWriter(WriterOptions(o))
	if err != nil {
		return nil, err
	}
	w.SetNanos(true)
	w.SetLinkType(lt)
	return &Sink{Writer: w}, nil
}

// WritePacket stores one packet.
func (s *Sink) WritePacket(ts time.Time, data []byte, origLen int) error {
	return s.WritePacketNanos(ts.UnixNano(), data, origLen)
}

// Flush is called at most every flush interval while packets arrive
// slowly, and once when the link goes quiet: partly filled blocks go to
// disk, so every packet is queryable within the interval.
func (s *Sink) Flush() error {
	s.EndBlocks()
	return s.Err()
}
