// Package pcapfilter evaluates tcpdump filter expressions (pcap-filter(7))
// on stored packets. It compiles them with libpcap itself, so that a query's
// --filter selects exactly what `tcpdump -r FILE EXPR` would; a pure-Go
// subset would drift from tcpdump on the corners users rely on (vlan,
// tcp[tcpflags], protochain...).
package pcapfilter

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcap"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// snaplen used for compiling: libpcap's maximum, as tcpdump uses for files.
const snaplen = 262144

// Filter is a compiled expression, one program per link type met.
type Filter struct {
	expr string
	mu   sync.Mutex
	byLT map[pkthdr.LinkType]*pcap.BPF
}

// Compile checks expr by compiling it for Ethernet; programs for other
// link types are compiled when first needed.
func Compile(expr string) (*Filter, error) {
	expr = strings.TrimSpace(expr)
	f := &Filter{expr: expr, byLT: map[pkthdr.LinkType]*pcap.BPF{}}
	if expr == "" {
		return f, nil
	}
	if _, err := f.program(pkthdr.LinkEthernet); err != nil {
		return nil, err
	}
	return f, nil
}

// String is the expression.
func (f *Filter) String() string { return f.expr }

// Empty reports whether the filter accepts everything.
func (f *Filter) Empty() bool { return f == nil || f.expr == "" }

func (f *Filter) program(lt pkthdr.LinkType) (*pcap.BPF, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.byLT[lt]; ok {
		return p, nil
	}
	p, err := pcap.NewBPF(layers.LinkType(dlt(lt)), snaplen, f.expr)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", f.expr, err)
	}
	f.byLT[lt] = p
	return p, nil
}

// dlt maps a pcap file's LINKTYPE to the DLT libpcap compiles for; they
// differ only where historical DLT values clashed between systems.
func dlt(lt pkthdr.LinkType) int {
	if lt == pkthdr.LinkRaw {
		return 12 // DLT_RAW on Linux
	}
	return int(lt)
}

// Match reports whether the packet passes the filter. A link type for
// which the expression cannot compile matches nothing.
func (f *Filter) Match(lt pkthdr.LinkType, ts time.Time, data []byte, origLen int) bool {
	if f.Empty() {
		return true
	}
	p, err := f.program(lt)
	if err != nil {
		return false
	}
	return p.Matches(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: len(data), Length: origLen}, data)
}
