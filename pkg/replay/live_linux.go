//go:build linux

package replay

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// liveSource reads an interface through a TPACKET_V3 ring (gopacket's
// pure-Go afpacket), so live replay is just another Source.
type liveSource struct {
	tp     *afpacket.TPacket
	closed chan struct{}
	// mu is held across each ring read: Close must not unmap the ring
	// under a reader, so it waits for the read in progress (at most one
	// poll timeout) to return.
	mu sync.Mutex
}

// OpenLive opens iface for capture. It needs CAP_NET_RAW.
func OpenLive(iface string) (Source, io.Closer, error) {
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(iface),
		afpacket.OptFrameSize(1<<16),
		afpacket.OptBlockSize(1<<22),
		afpacket.OptNumBlocks(64), // a 256 MiB ring rides out bursts while the pipeline catches up
		afpacket.OptPollTimeout(200*time.Millisecond),
		afpacket.TPacketVersion3,
	)
	if err != nil {
		return nil, nil, err
	}
	s := &liveSource{tp: tp, closed: make(chan struct{})}
	return s, s, nil
}

func (s *liveSource) Next() (Packet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		select {
		case <-s.closed:
			return Packet{}, io.EOF
		default:
		}
		d, ci, err := s.tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			continue
		}
		if err != nil {
			return Packet{}, err
		}
		return Packet{Timestamp: ci.Timestamp, LinkType: pkthdr.LinkEthernet, Data: d, OrigLen: ci.Length, Interface: ci.InterfaceIndex}, nil
	}
}

func (s *liveSource) Close() error {
	select {
	case <-s.closed:
		return nil
	default:
		close(s.closed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tp.Close()
	return nil
}
