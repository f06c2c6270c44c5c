package capture

import "github.com/nwhealth/nwhealth/pkg/pkthdr"

// Linux hardware types (linux/if_arp.h) that capture understands.
const (
	arphrdEther    = 1
	arphrdIEEE802  = 6
	arphrdPPP      = 512
	arphrdRawIP    = 519
	arphrdTunnel   = 768 // IPIP
	arphrdTunnel6  = 769
	arphrdSIT      = 776
	arphrdLoopback = 772
	arphrdNone     = 0xfffe // tun and WireGuard devices
)

// LinkTypeForARPHRD maps an interface's hardware type to the pcap link type
// of the frames a SOCK_RAW packet socket reads from it, as libpcap does:
// Ethernet-like devices (loopback included, whose frames carry a zeroed
// Ethernet header) give Ethernet; devices without a link-layer header give
// raw IP. Other types (802.11 monitor, CAN, InfiniBand...) are not
// supported and report false.
func LinkTypeForARPHRD(hatype uint16) (pkthdr.LinkType, bool) {
	switch hatype {
	case arphrdEther, arphrdIEEE802, arphrdLoopback:
		return pkthdr.LinkEthernet, true
	case arphrdNone, arphrdRawIP, arphrdTunnel, arphrdTunnel6, arphrdSIT, arphrdPPP:
		return pkthdr.LinkRaw, true
	}
	return 0, false
}
