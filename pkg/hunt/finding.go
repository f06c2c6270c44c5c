package hunt

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Severity grades a finding.
type Severity int

// Severities, from a score: info < 0.2 <= low < 0.4 <= medium < 0.6 <= high < 0.8 <= critical.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return "unknown"
	}
	return severityNames[s]
}

// ParseSeverity reads a severity name.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want info, low, medium, high or critical)", s)
}

// SeverityOf maps a score to its severity.
func SeverityOf(score float64) Severity {
	switch {
	case score >= 0.8:
		return Critical
	case score >= 0.6:
		return High
	case score >= 0.4:
		return Medium
	case score >= 0.2:
		return Low
	}
	return Info
}

// Kind says what a finding is about.
type Kind string

// Finding kinds.
const (
	KindChannel Kind = "channel"
	KindHost    Kind = "host"
)

// Finding is one ranked result: a channel (source to destination) or a host.
type Finding struct {
	Kind     Kind
	Src      netip.Addr
	Dst      netip.Addr // zero for hosts
	DstName  string
	DstPort  uint16
	Proto    uint8
	Score    float64 // 0-1, higher is worse
	Severity Severity

	PeriodSec   float64 // 0 when no period was found
	Jitter      float64 // ±fraction of the period
	Regularity  float64
	Connections int
	FirstSeen   time.Time
	LastSeen    time.Time
	Popularity  int // internal hosts that reach the destination (by IP, name or network, whichever is most)
	Hosts       int // internal hosts in the population
	Fanout      int // internal peers (hosts) or destinations of the source (channels)
	AdminPeers  int // internal peers on admin ports (hosts)

	Reasons []string
	Attack  []string // ATT&CK technique ids
	Beacon  bool     // the finding rests on periodic check-ins
	Lateral bool     // the finding rests on internal fan-out to admin ports
	Scan    bool     // the finding rests on wide fan-out with failed connections

	// For channels: which side is inside (Src opened the channel; for an
	// inbound channel Src is the outside address), and the forward proxy
	// the channel went through (zero when direct; Dst is then the address
	// of the destination asked for, zero when only its name is known).
	Direction Direction
	Via       netip.Addr
	// Own is set when the population was too small to judge popularity and
	// the score rests on the channel's own evidence.
	Own bool

	// For hosts: the peer of their strongest command-and-control evidence
	// of low or above, if any, and the kind of finding it is (channel, dns
	// or icmp; empty when none). For DNS the peer is the server asked and
	// its name the registered domain; for an inbound channel the outside
	// address that polls the host.
	BeaconDst     netip.Addr
	BeaconDstName string
	C2Kind        Kind

	// For DNS findings: what the host's queries under the domain showed.
	DNS *DNSEvidence
	// For ICMP findings: what the host's echo traffic to Dst showed.
	ICMP *ICMPEvidence

	Action string // recommended action, filled by the caller from pkg/report
}

// ProtoName names an IP protocol number.
func ProtoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmp6"
	}
	return fmt.Sprintf("ip%d", p)
}

// Inside is the inside host a finding is about: its source, except for an
// inbound channel, whose source is the outside address polling Dst.
func (f *Finding) Inside() netip.Addr {
	if f.Kind == KindChannel && f.Direction == Inbound {
		return f.Dst
	}
	return f.Src
}

// why is one reason for a finding with its weight, so that reasons read
// strongest first.
type why struct {
	w float64
	s string
}

// strongestFirst orders reasons by weight, the heaviest first (ties keep
// their order) and returns their texts.
func strongestFirst(whys []why) []string {
	slices.SortStableFunc(whys, func(a, b why) int { return cmp.Compare(b.w, a.w) })
	out := make([]string, len(whys))
	for i, x := range whys {
		out[i] = x.s
	}
	return out
}
