package replay

import (
	"bufio"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Packet and Source mirror pcapio's (the project's packet reader, which the
// store and live capture also implement); they become aliases of those
// types when pcapio lands, so the pipeline never depends on where packets
// come from.
type Packet struct {
	Timestamp time.Time
	LinkType  pkthdr.LinkType
	Data      []byte // valid until the next call to Next
	OrigLen   int
	Interface int
	Offset    int64
}

// Source yields packets in time order; io.EOF at the end.
type Source interface {
	Next() (Packet, error)
}

// fileSource reads one pcap or pcapng file with gopacket's pcapgo, until
// pcapio replaces it.
type fileSource struct {
	name string
	f    *os.File
	next func() ([]byte, time.Time, int, int, error)
	lt   pkthdr.LinkType
	off  int64
}

// OpenFile opens a pcap or pcapng capture ("-" is standard input).
func OpenFile(path string) (Source, io.Closer, error) {
	f := os.Stdin
	if path != "-" {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, nil, err
		}
	}
	br := bufio.NewReaderSize(f, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	s := &fileSource{name: path, f: f}
	if magic[0] == 0x0a && magic[1] == 0x0d && magic[2] == 0x0d && magic[3] == 0x0a {
		r, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("read %s: %w", path, err)
		}
		s.lt = pkthdr.LinkType(r.LinkType())
		s.next = func() ([]byte, time.Time, int, int, error) {
			d, ci, err := r.ZeroCopyReadPacketData()
			return d, ci.Timestamp, ci.Length, ci.InterfaceIndex, err
		}
	} else {
		r, err := pcapgo.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("read %s: %w", path, err)
		}
		s.lt = pkthdr.LinkType(r.LinkType())
		s.next = func() ([]byte, time.Time, int, int, error) {
			d, ci, err := r.ZeroCopyReadPacketData()
			return d, ci.Timestamp, ci.Length, 0, err
		}
	}
	return s, f, nil
}

func (s *fileSource) Next() (Packet, error) {
	d, ts, l, ifc, err := s.next()
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Packet{}, fmt.Errorf("%s: truncated capture: %w", s.name, err)
		}
		return Packet{}, err
	}
	s.off++
	return Packet{Timestamp: ts, LinkType: s.lt, Data: d, OrigLen: l, Interface: ifc, Offset: s.off}, nil
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
