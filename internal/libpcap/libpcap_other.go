//go:build !linux || !cgo

package libpcap

import "errors"

var errUnsupported = errors.New("libpcap can only be loaded by a Linux cgo build")

// Load reports that libpcap cannot be used by this build.
func Load() error { return errUnsupported }

// Program is never made by this build.
type Program struct{}

// CompileOffline fails: this build has no libpcap.
func CompileOffline(dlt, snaplen int, expr string) (*Program, error) { return nil, errUnsupported }

// Match matches nothing.
func (p *Program) Match(sec, usec int64, data []byte, wireLen int) bool { return false }
