// Package pcapfilter evaluates tcpdump filter expressions (pcap-filter(7))
// on stored packets: tcpdump compiles them (compile.go), and Run executes
// the program as libpcap does, so a query's --filter selects exactly what
// `tcpdump -r FILE EXPR` would. A pure-Go compiler would drift from
// tcpdump on the corners users rely on (vlan, tcp[tcpflags],
// protochain...).
package pcapfilter

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// snaplen used for compiling: libpcap's maximum, as tcpdump uses for files.
const snaplen = 262144

// Filter is a compiled expression, one program per link type met.
type Filter struct {
	expr string
	byLT sync.Map // pkthdr.LinkType -> compiled: read without a lock per packet

	unframed atomic.Uint64 // PPP frames without ff 03 met by Match
}

// compiled is the outcome of compiling for one link type, failures
// included: a link type the expression cannot apply to (vlan on raw IP)
// must not start the compiler again for each of its packets.
type compiled struct {
	prog []Instruction
	err  error
}

// checkTypes are the link types Compile tries an expression on: one that
// compiles for none of them is wrong whatever the store holds. Beyond
// Ethernet, they admit expressions only some link types take (wlan,
// ppp, pflog's keywords).
var checkTypes = []pkthdr.LinkType{pkthdr.LinkEthernet, pkthdr.LinkRadiotap, pkthdr.LinkPPPHDLC, pkthdr.LinkPFLOG}

// Compile checks expr by compiling it for Ethernet (or, failing that, for
// another link type of checkTypes); programs for other link types are
// compiled when first needed, and Check tells a link type it cannot
// apply to.
func Compile(expr string) (*Filter, error) {
	expr = strings.TrimSpace(expr)
	f := &Filter{expr: expr}
	if expr == "" {
		return f, nil
	}
	var first error
	for _, lt := range checkTypes {
		_, err := f.program(lt)
		if err == nil {
			return f, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// String is the expression.
func (f *Filter) String() string { return f.expr }

// Empty reports whether the filter accepts everything.
func (f *Filter) Empty() bool { return f == nil || f.expr == "" }

// UnappliedError says a filter cannot be applied to the packets of a link
// type: tcpdump cannot compile it for that type.
type UnappliedError struct {
	Expr     string
	LinkType pkthdr.LinkType
	Err      error
}

func (e *UnappliedError) Error() string {
	return fmt.Sprintf("--filter %q cannot be applied to packets of link type %s (%v): select them with --host, --net, --port or --proto", e.Expr, pkthdr.LinkName(e.LinkType), e.Err)
}

func (e *UnappliedError) Unwrap() error { return e.Err }

// Check reports, as an *UnappliedError, whether the filter cannot be
// applied to packets of link type lt (nil for an empty filter).
func (f *Filter) Check(lt pkthdr.LinkType) error {
	if f.Empty() {
		return nil
	}
	if _, err := f.program(lt); err != nil {
		return &UnappliedError{Expr: f.expr, LinkType: lt, Err: err}
	}
	return nil
}

func (f *Filter) program(lt pkthdr.LinkType) ([]Instruction, error) {
	switch lt {
	case pkthdr.LinkRawOld12, pkthdr.LinkRawOld14:
		// The same raw IP; libpcap knows 14 by no name.
		lt = pkthdr.LinkRaw
	}
	if c, ok := f.byLT.Load(lt); ok {
		return c.(*compiled).prog, c.(*compiled).err
	}
	// Two readers meeting a new link type at once may both compile; the
	// first result stored wins, and both are the same.
	p, err := CompileOffline(f.expr, lt, snaplen)
	c, _ := f.byLT.LoadOrStore(lt, &compiled{p, err})
	return c.(*compiled).prog, c.(*compiled).err
}

// Match reports whether the packet passes the filter. A link type for
// which the expression cannot compile matches nothing (Check says so
// beforehand). libpcap's programs for PPP (9) read the protocol after
// HDLC-like framing (ff 03): a frame without it would be read two bytes
// off, so it matches nothing either, and Unframed counts it.
func (f *Filter) Match(lt pkthdr.LinkType, ts time.Time, data []byte, origLen int) bool {
	if f.Empty() {
		return true
	}
	p, err := f.program(lt)
	if err != nil {
		return false
	}
	if lt == pkthdr.LinkPPP && (len(data) < 2 || data[0] != 0xff || data[1] != 0x03) {
		f.unframed.Add(1)
		return false
	}
	return Run(p, data, origLen) != 0
}

// Unframed is how many PPP frames without HDLC-like framing Match was
// given (and did not match).
func (f *Filter) Unframed() uint64 {
	if f == nil {
		return 0
	}
	return f.unframed.Load()
}
