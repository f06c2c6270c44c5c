package replay

import (
	"container/heap"
	"errors"
	"io"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Packet and Source are pcapio's: the pipeline reads files, store queries
// and live captures alike.
type (
	Packet = pcapio.Packet
	Source = pcapio.Source
)

// DamagedSource passes packets through and steps over damaged input,
// keeping what it skipped: a truncated or garbled capture still yields
// every valid packet, and the command reports the damage (exit 3).
type DamagedSource struct {
	Name   string
	src    Source
	Damage []*pcapio.CorruptError
	// WiFiProtected counts 802.11 data frames with the Protected bit:
	// encrypted, so nothing in them is read. A monitor-mode capture of a
	// WPA network would otherwise give an empty replay or hunt that looks
	// like a quiet network.
	WiFiProtected uint64
}

// Next returns the next valid packet.
func (d *DamagedSource) Next() (Packet, error) {
	for {
		p, err := d.src.Next()
		var ce *pcapio.CorruptError
		if errors.As(err, &ce) {
			d.Damage = append(d.Damage, ce)
			continue
		}
		if err == nil && p.LinkType != pkthdr.LinkEthernet && pkthdr.IsWiFi(p.LinkType) &&
			pkthdr.ClassifyWiFi(p.LinkType, p.Data) == pkthdr.WiFiProtected {
			d.WiFiProtected++
		}
		return p, err
	}
}

// OpenFile opens a pcap or pcapng capture, plain or gzip/zstd compressed
// ("-" is standard input).
func OpenFile(path string) (*DamagedSource, io.Closer, error) {
	r, err := pcapio.OpenFile(path)
	if err != nil {
		return nil, nil, err
	}
	return &DamagedSource{Name: path, src: r}, r, nil
}

// Merge interleaves several sources by timestamp (a heap of their heads),
// as mergecap does. Each source must be in time order itself. Packet data
// is copied for heads that wait, since a source may reuse its buffer.
func Merge(srcs ...Source) Source {
	if len(srcs) == 1 {
		return srcs[0]
	}
	return &merger{srcs: srcs}
}

type mergeHead struct {
	p   Packet
	src int
}

type merger struct {
	srcs    []Source
	h       headHeap
	started bool
	last    int // source whose packet was returned last: refill it next
	err     error
}

type headHeap []mergeHead

func (h headHeap) Len() int { return len(h) }
func (h headHeap) Less(i, j int) bool {
	if h[i].p.Timestamp.Equal(h[j].p.Timestamp) {
		return h[i].src < h[j].src
	}
	return h[i].p.Timestamp.Before(h[j].p.Timestamp)
}
func (h headHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *headHeap) Push(x any)   { *h = append(*h, x.(mergeHead)) }
func (h *headHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (m *merger) fill(i int) error {
	p, err := m.srcs[i].Next()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	p.Data = append([]byte(nil), p.Data...)
	heap.Push(&m.h, mergeHead{p: p, src: i})
	return nil
}

func (m *merger) Next() (Packet, error) {
	if m.err != nil {
		return Packet{}, m.err
	}
	if !m.started {
		m.started = true
		for i := range m.srcs {
			if err := m.fill(i); err != nil {
				m.err = err
				return Packet{}, err
			}
		}
	} else if m.last >= 0 {
		if err := m.fill(m.last); err != nil {
			m.err = err
			return Packet{}, err
		}
	}
	if m.h.Len() == 0 {
		m.last = -1
		return Packet{}, io.EOF
	}
	top := heap.Pop(&m.h).(mergeHead)
	m.last = top.src
	return top.p, nil
}
