// Package demogen generates nwhealth's built-in demo sample: a few hours of
// a small Windows enterprise network with an intrusion in it, as a pcap
// stream, and the ground truth (Labels) to check replay and hunt against.
//
// The background is ~40 workstations browsing (DNS lookups, TLS
// ClientHellos with SNI, some plain HTTP), NTP, a monitoring agent,
// update and telemetry checks shared by every host, mail polling and SMB
// to the domain controller and file server. In it, one workstation
// beacons to an outside controller (jittered, with missed check-ins) and
// moves laterally, a second beacons slowly, and one benign workstation
// polls a widget on a clock (the hard negative).
//
// The lateral movement is real protocol: SMB2 sessions authenticated with
// NTLMSSP, DCE/RPC over named pipes and TCP, NDR stubs for MS-SCMR,
// MS-TSCH, MS-SRVS, MS-SAMR, the endpoint mapper and MS-DRSR, in TCP
// connections with correct sequence numbers and checksums. The encoders
// here are the inverse of pkg/smbrpc's decoders and are tested against
// them and against tshark.
//
// Output is deterministic: the same Config gives the same bytes. Memory is
// bounded by the conversations open at one time, not by the sample's
// length: conversations are planned first (small closures), then built one
// by one as the writer reaches their start, and merged by time.
package demogen

import (
	"bufio"
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Config sets the sample's size. Zero fields take the defaults.
type Config struct {
	Seed         uint64        // default 1
	Start        time.Time     // default Monday 2026-03-02 08:00 UTC
	Duration     time.Duration // default 4h; at least 1h
	Workstations int           // default 40; 8 to 200
	Shapes       Shapes        // more command-and-control shapes (none by default)
}

// Defaults.
const (
	DefaultDuration     = 4 * time.Hour
	DefaultWorkstations = 40
)

// DefaultStart is the start of the default sample: a working morning.
var DefaultStart = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

func (c *Config) defaults() error {
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	c.Start = c.Start.UTC().Truncate(time.Microsecond)
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Workstations == 0 {
		c.Workstations = DefaultWorkstations
	}
	switch {
	case c.Duration < time.Hour:
		return fmt.Errorf("duration %v: the intrusion needs at least an hour", c.Duration)
	case c.Duration > 7*24*time.Hour:
		return fmt.Errorf("duration %v: at most a week", c.Duration)
	case c.Workstations < 8 || c.Workstations > 200:
		return fmt.Errorf("%d workstations: want 8 to 200", c.Workstations)
	}
	return nil
}

// job is one conversation (or a few that belong together, such as a DNS
// lookup and the connection it resolves for), built when the writer
// reaches its start. build must not emit packets before start.
type job struct {
	start time.Time
	seq   int
	seed  uint64
	build func(out *[]packet, r *rng)
}

// cursor walks the packets of a built job.
type cursor struct {
	pkts []packet
	i    int
	seq  int
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := h[i].pkts[h[i].i].t, h[j].pkts[h[j].i].t
	if !a.Equal(b) {
		return a.Before(b)
	}
	return h[i].seq < h[j].seq
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ErrOrder reports a job that emitted a packet before its start: a bug in
// a builder, caught rather than written out of order.
var ErrOrder = errors.New("demogen: packet before its conversation's start")

// Generate writes the sample as a little-endian microsecond pcap
// (Ethernet) to w and returns its labels.
func Generate(w io.Writer, cfg Config) (*Labels, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	p := newPlan(cfg)
	p.background()
	p.attack()
	if cfg.Shapes.any() {
		p.shapes()
	}
	jobs := p.jobs
	slices.SortStableFunc(jobs, func(a, b job) int {
		return cmp.Or(a.start.Compare(b.start), cmp.Compare(a.seq, b.seq))
	})

	bw := bufio.NewWriterSize(w, 1<<20)
	pw, err := pcapio.NewWriter(bw, pkthdr.LinkEthernet, 65535, false)
	if err != nil {
		return nil, err
	}
	var h cursorHeap
	var buf []packet
	var last time.Time
	packets := 0
	for i := 0; i < len(jobs) || h.Len() > 0; {
		if i < len(jobs) && (h.Len() == 0 || !jobs[i].start.After(h[0].pkts[h[0].i].t)) {
			j := &jobs[i]
			i++
			buf = nil
			j.build(&buf, newRNG(j.seed))
			if len(buf) == 0 {
				continue
			}
			slices.SortStableFunc(buf, func(a, b packet) int { return a.t.Compare(b.t) })
			if buf[0].t.Before(j.start) {
				return nil, fmt.Errorf("%w: job %d at %s", ErrOrder, j.seq, j.start.Format(time.RFC3339Nano))
			}
			heap.Push(&h, &cursor{pkts: buf, seq: j.seq})
			j.build = nil // let the closure's captures go
			continue
		}
		c := h[0]
		pk := c.pkts[c.i]
		if pk.t.Before(last) {
			return nil, fmt.Errorf("%w: %s after %s", ErrOrder, pk.t.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
		}
		last = pk.t
		if err := pw.WritePacket(pk.t, pk.data, len(pk.data)); err != nil {
			return nil, fmt.Errorf("write sample: %w", err)
		}
		packets++
		c.pkts[c.i].data = nil
		c.i++
		if c.i == len(c.pkts) {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write sample: %w", err)
	}
	l := p.labels
	l.Packets, l.Connections = packets, p.conns
	slices.SortStableFunc(l.Operations, func(a, b Operation) int { return a.Time.Compare(b.Time) })
	return l, nil
}
