// Package livefilter compiles tcpdump filter expressions (pcap-filter(7))
// into the classic BPF programs a capture attaches to its sockets.
//
// It compiles with libpcap against the live interface, exactly as tcpdump
// does, because on Linux the kernel moves the outer VLAN tag out of the
// frame before the filter runs: only a program compiled for a live handle
// reads the tag through the kernel's BPF extensions, so "vlan 100" matches
// here as it does in tcpdump. It is kept apart from package capture so the
// ring reader stays pure Go and the compiler can be swapped.
package livefilter

import (
	"fmt"

	"github.com/nwhealth/nwhealth/internal/libpcap"
	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Compile turns expr into a kernel filter for iface whose accepting
// instructions return snaplen, so the kernel also truncates. It also returns
// the link type libpcap chose for the interface, which must match the
// capture's. It opens the interface briefly and so needs the same
// privileges and network namespace as the capture.
func Compile(iface string, snaplen int, expr string) ([]capture.Instruction, pkthdr.LinkType, error) {
	insns, dlt, err := libpcap.CompileLive(iface, snaplen, expr)
	if err != nil {
		return nil, 0, fmt.Errorf("filter %q on %s: %w", expr, iface, err)
	}
	prog := make([]capture.Instruction, len(insns))
	for i, in := range insns {
		prog[i] = capture.Instruction{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return prog, pkthdr.LinkType(dlt), nil
}
