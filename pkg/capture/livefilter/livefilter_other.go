//go:build !(linux && cgo)

package livefilter

import (
	"errors"

	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Compile needs Linux and libpcap through cgo.
func Compile(iface string, snaplen int, expr string) ([]capture.Instruction, pkthdr.LinkType, error) {
	return nil, 0, errors.New("live filters need Linux and a cgo build with libpcap")
}
