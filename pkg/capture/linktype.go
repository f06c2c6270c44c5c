package capture

import "github.com/nwhealth/nwhealth/pkg/pkthdr"

// Linux hardware types (linux/if_arp.h) that capture understands.
const (
	arphrdEther     = 1
	arphrdIEEE802   = 6
	arphrdPPP       = 512
	arphrdCiscoHDLC = 513 // ARPHRD_CISCO (ARPHRD_HDLC)
	arphrdRawIP     = 519
	arphrdTunnel    = 768 // IPIP
	arphrdTunnel6   = 769
	arphrdSIT       = 776
	arphrdLoopback  = 772
	arphrdNone      = 0xfffe // tun and WireGuard devices

	arphrdIEEE80211         = 801 // 802.11 frames, no radio header
	arphrdIEEE80211Prism    = 802 // Prism header, then 802.11
	arphrdIEEE80211Radiotap = 803 // monitor-mode interfaces: radiotap, then 802.11
)

// LinkTypeForARPHRD maps an interface's hardware type to the pcap link type
// of the frames a SOCK_RAW packet socket reads from it, as libpcap does:
// Ethernet-like devices (loopback included, whose frames carry a zeroed
// Ethernet header) give Ethernet; devices without a link-layer header give
// raw IP (PPP included: libpcap reads it cooked or raw, never with PPP
// headers, since the kernel's PPP drivers do not agree on one); 802.11
// monitor interfaces give their radio header's link type, Cisco HDLC
// interfaces C_HDLC. Other types (CAN, InfiniBand, netlink...) are not
// supported and report false.
func LinkTypeForARPHRD(hatype uint16) (pkthdr.LinkType, bool) {
	switch hatype {
	case arphrdEther, arphrdIEEE802, arphrdLoopback:
		return pkthdr.LinkEthernet, true
	case arphrdNone, arphrdRawIP, arphrdTunnel, arphrdTunnel6, arphrdSIT, arphrdPPP:
		return pkthdr.LinkRaw, true
	case arphrdIEEE80211Radiotap:
		return pkthdr.LinkRadiotap, true
	case arphrdIEEE80211Prism:
		return pkthdr.LinkPrism, true
	case arphrdIEEE80211:
		return pkthdr.LinkIEEE80211, true
	case arphrdCiscoHDLC:
		return pkthdr.LinkCHDLC, true
	}
	return 0, false
}
