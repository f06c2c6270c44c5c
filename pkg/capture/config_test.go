package capture

import (
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Interface: "eth0"}.withDefaults(4096)
	if err != nil {
		t.Fatal(err)
	}
	if c.Workers != 1 || c.SnapLen != DefaultSnapLen || c.RingSize != DefaultRingSize || c.BlockSize != DefaultBlockSize ||
		c.BlockTimeout != DefaultBlockTimeout || c.FlushInterval != DefaultFlushInterval {
		t.Errorf("defaults: %+v", c)
	}
	if got := c.blocksPerWorker(); got != 512 {
		t.Errorf("blocks per worker %d, want 512", got)
	}
	// The default block holds a whole packet at the largest snap length.
	if DefaultBlockSize < blkHeaderSize+pktMinMac+maxSnapLen {
		t.Errorf("default block %d cannot hold a %d-byte packet", DefaultBlockSize, maxSnapLen)
	}
	c, err = Config{Interface: "eth0", Workers: 3, RingSize: 64 << 20}.withDefaults(4096)
	if err != nil || c.blocksPerWorker() != 42 {
		t.Errorf("3 workers over 64 MiB: %d blocks, %v; want 42", c.blocksPerWorker(), err)
	}
}

func TestConfigRejects(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no interface"},
		{Config{Interface: "x", Workers: -1}, "workers"},
		{Config{Interface: "x", Workers: MaxWorkers + 1}, "workers"},
		{Config{Interface: "x", SnapLen: -5}, "snap length"},
		{Config{Interface: "x", SnapLen: maxSnapLen + 1}, "snap length"},
		{Config{Interface: "x", BlockSize: 1000}, "block size"},
		{Config{Interface: "x", BlockSize: 4096 + 1}, "block size"},
		{Config{Interface: "x", RingSize: 3 << 19}, "at least 4"},
		{Config{Interface: "x", Workers: 8, RingSize: 8 << 20}, "at least 4"},
		{Config{Interface: "x", BlockTimeout: time.Microsecond}, "block timeout"},
		{Config{Interface: "x", FlushInterval: -time.Second}, "flush interval"},
		{Config{Interface: "x", Filter: make([]Instruction, 4097)}, "4096"},
	} {
		if _, err := tt.cfg.withDefaults(4096); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: error %v, want one about %q", tt.cfg, err, tt.want)
		}
	}
}

func TestLinkTypeForARPHRD(t *testing.T) {
	for _, tt := range []struct {
		hatype uint16
		want   pkthdr.LinkType
		ok     bool
	}{
		{1, pkthdr.LinkEthernet, true},   // Ethernet, veth, bridges
		{772, pkthdr.LinkEthernet, true}, // loopback
		{0xfffe, pkthdr.LinkRaw, true},   // tun, WireGuard
		{519, pkthdr.LinkRaw, true},      // raw IP (cellular modems)
		{768, pkthdr.LinkRaw, true},      // IPIP
		{776, pkthdr.LinkRaw, true},      // SIT
		{512, pkthdr.LinkRaw, true},      // PPP: the kernel hands IP without PPP headers
		{803, pkthdr.LinkRadiotap, true}, // 802.11 monitor (iw ... type monitor)
		{802, pkthdr.LinkPrism, true},    // 802.11 monitor with a Prism header (old drivers)
		{801, pkthdr.LinkIEEE80211, true},
		{513, pkthdr.LinkCHDLC, true}, // Cisco HDLC serial lines
		{824, 0, false},               // netlink monitor
		{280, 0, false},               // CAN
		{32, 0, false},                // InfiniBand
	} {
		lt, ok := LinkTypeForARPHRD(tt.hatype)
		if lt != tt.want || ok != tt.ok {
			t.Errorf("ARPHRD %d: %d, %v; want %d, %v", tt.hatype, lt, ok, tt.want, tt.ok)
		}
	}
}
