// Package pcapfilter evaluates tcpdump filter expressions (pcap-filter(7))
// on stored packets: tcpdump compiles them (compile.go), and Run executes
// the program as libpcap does, so a query's --filter selects exactly what
// `tcpdump -r FILE EXPR` would. A pure-Go compiler would drift from
// tcpdump on the corners users rely on (vlan, tcp[tcpflags],
// protochain...).
package pcapfilter

import (
	"strings"
	"sync"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// snaplen used for compiling: libpcap's maximum, as tcpdump uses for files.
const snaplen = 262144

// Filter is a compiled expression, one program per link type met.
type Filter struct {
	expr string
	mu   sync.Mutex
	byLT map[pkthdr.LinkType][]Instruction
}

// Compile checks expr by compiling it for Ethernet; programs for other
// link types are compiled when first needed.
func Compile(expr string) (*Filter, error) {
	expr = strings.TrimSpace(expr)
	f := &Filter{expr: expr, byLT: map[pkthdr.LinkType][]Instruction{}}
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

func (f *Filter) program(lt pkthdr.LinkType) ([]Instruction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.byLT[lt]; ok {
		return p, nil
	}
	p, err := CompileOffline(f.expr, lt, snaplen)
	if err != nil {
		return nil, err
	}
	f.byLT[lt] = p
	return p, nil
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
	return Run(p, data, origLen) != 0
}
