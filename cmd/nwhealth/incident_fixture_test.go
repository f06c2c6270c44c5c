package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"github.com/nwhealth/nwhealth/pkg/replay"
)

// The acceptance incident (issue 6): a trafficsim dev.json day, and three
// public lateral-movement captures (PsExec, WMI, DCSync) rewritten so that
// their attacker is a host the day's labels name as compromised, their
// victims are other hosts of the day, and their times fall inside it.

// lateralCapture is one remote-ops capture and where it goes in the day.
type lateralCapture struct {
	name     string // for messages
	file     []string
	attacker string // address in the capture
	victim   string // address in the capture
	at       time.Duration
}

var lateralCaptures = []lateralCapture{
	{"psexec", []string{"pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng"}, "172.16.66.1", "172.16.66.36", 14*time.Hour + 36*time.Minute},
	{"wmi", []string{"pcaps", "remote-ops", "pcap-attack", "LM_WMI_ProcessCallCreate.pcapng"}, "172.16.66.1", "172.16.66.36", 14*time.Hour + 41*time.Minute},
	{"dcsync", []string{"pcaps", "remote-ops", "pcap-attack", "DCSync_krbtgt_dcerpc_smb.pcapng"}, "172.16.66.1", "172.16.66.36", 14*time.Hour + 47*time.Minute},
}

// incident is the built fixture.
type incident struct {
	dir       string
	pcap      string // the day with the lateral captures merged in
	labels    simLabels
	assets    string
	stone     netip.Addr            // the compromised host running the captures
	victims   map[string]netip.Addr // capture name -> victim in the day
	dc        netip.Addr
	start     time.Time
	c2        netip.Addr
	lateralAt []time.Time // when each capture was put
}

type simLabels struct {
	Compromised []string `json:"compromised_hosts"`
	C2Pairs     []struct {
		Src, Dst string
		Name     string
	} `json:"c2_pairs"`
	LateralPairs []struct{ Src, Dst string } `json:"lateral_pairs"`
}

// buildIncident simulates the day and merges the rewritten captures in.
func buildIncident(t *testing.T) *incident {
	t.Helper()
	if testing.Short() {
		t.Skip("simulates a day of traffic")
	}
	scenario := filepath.Join(testenv.SharedFile(t, "tools", "trafficsim"), "scenarios", "dev.json")
	for _, c := range lateralCaptures {
		testenv.SharedFile(t, c.file...) // skip early when one is absent
	}
	raw, err := os.ReadFile(scenario)
	if err != nil {
		t.Fatal(err)
	}
	var sc struct {
		Start time.Time `json:"start"`
		DNS   string    `json:"dns"`
	}
	if err := json.Unmarshal(raw, &sc); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	day, labelsPath, _ := simulate(t, scenario, dir)
	inc := &incident{dir: dir, start: sc.Start, victims: map[string]netip.Addr{}, dc: netip.MustParseAddr(sc.DNS)}
	lb, err := os.ReadFile(labelsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lb, &inc.labels); err != nil {
		t.Fatal(err)
	}
	// The stepping stone: a compromised host with a C2 pair and lateral
	// pairs; its victims: hosts its labelled fan-out reached, and the DNS
	// server as the domain controller.
	for _, h := range inc.labels.Compromised {
		var c2 string
		for _, p := range inc.labels.C2Pairs {
			if p.Src == h {
				c2 = p.Dst
			}
		}
		var dsts []string
		for _, p := range inc.labels.LateralPairs {
			if p.Src == h && !slices.Contains(dsts, p.Dst) {
				dsts = append(dsts, p.Dst)
			}
		}
		if c2 != "" && len(dsts) >= 2 {
			inc.stone, inc.c2 = netip.MustParseAddr(h), netip.MustParseAddr(c2)
			inc.victims["psexec"] = netip.MustParseAddr(dsts[0])
			inc.victims["wmi"] = netip.MustParseAddr(dsts[1])
			break
		}
	}
	if !inc.stone.IsValid() {
		t.Fatalf("no compromised host with a controller and lateral pairs in %+v", inc.labels)
	}
	inc.victims["dcsync"] = inc.dc
	inputs := []string{day}
	for _, c := range lateralCaptures {
		out := filepath.Join(dir, c.name+".pcap")
		amap := map[netip.Addr]netip.Addr{netip.MustParseAddr(c.attacker): inc.stone, netip.MustParseAddr(c.victim): inc.victims[c.name]}
		when := sc.Start.Add(c.at)
		if err := rewriteCapture(testenv.SharedFile(t, c.file...), out, amap, when); err != nil {
			t.Fatalf("rewrite %s: %v", c.name, err)
		}
		inc.lateralAt = append(inc.lateralAt, when)
		inputs = append(inputs, out)
	}
	inc.pcap = filepath.Join(dir, "incident.pcap")
	if err := mergeCaptures(inc.pcap, inputs...); err != nil {
		t.Fatal(err)
	}
	inc.assets = filepath.Join(dir, "assets.yaml")
	if err := os.WriteFile(inc.assets, []byte(`assets:
  - cidr: 10.20.1.0/24
    name: office
    criticality: medium
    role: workstation
  - host: `+inc.stone.String()+`
    name: ws-finance-07
    criticality: medium
    owner: finance
  - host: `+inc.dc.String()+`
    name: dc01
    criticality: critical
    owner: it-infra
    role: domain controller
`), 0o644); err != nil {
		t.Fatal(err)
	}
	return inc
}

// rewriteCapture maps IPv4 addresses, fixes the IP and TCP/UDP checksums
// and moves the capture so that its first packet is at start: what
// tcprewrite --srcipmap/--dstipmap and editcap -t do, in Go.
func rewriteCapture(in, out string, amap map[netip.Addr]netip.Addr, start time.Time) error {
	r, err := pcapio.OpenFile(in)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	// The link type is the first packet's: a pcapng reader knows its
	// interfaces only once it has read them.
	var w *pcapio.Writer
	var shift time.Duration
	first := true
	var hdr pkthdr.Packet
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if first {
			shift, first = start.Sub(p.Timestamp), false
			if w, err = pcapio.NewWriter(bw, p.LinkType, 262144, false); err != nil {
				return err
			}
		}
		data := append([]byte(nil), p.Data...)
		if pkthdr.Parse(p.LinkType, data, &hdr) {
			rewriteIPv4(data, &hdr, amap)
		}
		if err := w.WritePacket(p.Timestamp.Add(shift), data, p.OrigLen); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// rewriteIPv4 maps the addresses of an IPv4 packet in place and
// recomputes its checksums (the transport's when the whole datagram was
// captured and it is not a fragment).
func rewriteIPv4(data []byte, p *pkthdr.Packet, amap map[netip.Addr]netip.Addr) {
	if p.IPVersion != 4 || p.L3 < 0 || len(data) < p.L3+20 {
		return
	}
	ip := data[p.L3:]
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl {
		return
	}
	changed := false
	for _, off := range []int{12, 16} {
		if to, ok := amap[netip.AddrFrom4([4]byte(ip[off:off+4]))]; ok {
			a := to.As4()
			copy(ip[off:off+4], a[:])
			changed = true
		}
	}
	if !changed {
		return
	}
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], checksum(ip[:ihl], 0))
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if p.Fragment || total > len(ip) || total < ihl {
		return
	}
	seg := ip[ihl:total]
	var at int
	switch {
	case p.Proto == 6 && len(seg) >= 20:
		at = 16
	case p.Proto == 17 && len(seg) >= 8 && binary.BigEndian.Uint16(seg[6:]) != 0:
		at = 6
	default:
		return
	}
	seg[at], seg[at+1] = 0, 0
	pseudo := uint32(binary.BigEndian.Uint16(ip[12:])) + uint32(binary.BigEndian.Uint16(ip[14:])) +
		uint32(binary.BigEndian.Uint16(ip[16:])) + uint32(binary.BigEndian.Uint16(ip[18:])) + uint32(p.Proto) + uint32(len(seg))
	sum := checksum(seg, pseudo)
	if p.Proto == 17 && sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(seg[at:], sum)
}

func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// mergeCaptures writes the captures merged by time into one pcap, as
// mergecap does.
func mergeCaptures(out string, ins ...string) error {
	var srcs []replay.Source
	for _, in := range ins {
		r, err := pcapio.OpenFile(in)
		if err != nil {
			return err
		}
		defer r.Close()
		srcs = append(srcs, r)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := pcapio.NewWriter(bw, pkthdr.LinkEthernet, 262144, false)
	if err != nil {
		return err
	}
	m := replay.Merge(srcs...)
	for {
		p, err := m.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if p.LinkType != pkthdr.LinkEthernet {
			return errors.New("merge: every capture must be Ethernet")
		}
		if err := w.WritePacket(p.Timestamp, p.Data, p.OrigLen); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}
