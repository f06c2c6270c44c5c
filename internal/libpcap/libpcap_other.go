//go:build !linux || !cgo

package libpcap

import "errors"

var errUnsupported = errors.New("filter expressions need libpcap, which this build cannot load (it needs Linux and cgo)")

// Load reports that libpcap cannot be used by this build.
func Load() error { return errUnsupported }

// Instruction is one classic BPF instruction.
type Instruction struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// Program is never made by this build.
type Program struct{}

// CompileOffline fails: this build has no libpcap.
func CompileOffline(dlt, snaplen int, expr string) (*Program, error) { return nil, errUnsupported }

// Match matches nothing.
func (p *Program) Match(sec, usec int64, data []byte, wireLen int) bool { return false }

// CompileLive fails: this build has no libpcap.
func CompileLive(iface string, snaplen int, expr string) ([]Instruction, int, error) {
	return nil, 0, errUnsupported
}
