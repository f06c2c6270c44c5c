// Package livefilter compiles tcpdump filter expressions (pcap-filter(7))
// into the classic BPF programs a capture attaches to its sockets.
//
// tcpdump compiles them against the live interface (pcapfilter.CompileLive),
// because on Linux the kernel moves the outer VLAN tag out of the frame
// before the filter runs: only a program compiled for a live handle reads
// the tag through the kernel's BPF extensions, so "vlan 100" matches here
// as it does in tcpdump. It is kept apart from package capture so the ring
// reader does not depend on the compiler.
package livefilter

import (
	"github.com/nwhealth/nwhealth/pkg/capture"
	"github.com/nwhealth/nwhealth/pkg/pcapfilter"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Compile turns expr into a kernel filter for iface whose accepting
// instructions return snaplen, so the kernel also truncates. It also returns
// the link type it compiled for: the one capture reads from the interface.
// It opens the interface briefly and so needs the same privileges and
// network namespace as the capture.
func Compile(iface string, snaplen int, expr string) ([]capture.Instruction, pkthdr.LinkType, error) {
	lt, err := capture.InterfaceLinkType(iface)
	if err != nil {
		return nil, 0, err
	}
	insns, err := pcapfilter.CompileLive(expr, iface, lt, snaplen)
	if err != nil {
		return nil, 0, err
	}
	prog := make([]capture.Instruction, len(insns))
	for i, in := range insns {
		prog[i] = capture.Instruction{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return prog, lt, nil
}
