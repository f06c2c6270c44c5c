// Package report joins hunt's findings and replay's operations into one
// incident (model.go, incident.go), recommends what to do about it
// (recommend.go, actions.go) and renders it as a table, JSON Lines, a
// self-contained HTML page and a STIX 2.1 bundle. recommend.go turns
// findings into concrete actions ordered by urgency × business
// criticality, each with the team it goes to.
package report

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/hunt"
)

// Severity levels of the findings given to Recommend (hunt's order).
const (
	SevInfo = iota
	SevLow
	SevMedium
	SevHigh
	SevCritical
)

// ActionKind names what to do.
type ActionKind string

// The actions nwhealth recommends.
const (
	Isolate    ActionKind = "isolate host"
	Block      ActionKind = "block destination at proxy/firewall"
	ResetCreds ActionKind = "reset credentials of accounts seen on the host"
	Collect    ActionKind = "collect memory and disk"
	Watch      ActionKind = "watch"
	// ResetDomain answers DCSync: every secret the directory holds may
	// be in the intruder's hands.
	ResetDomain ActionKind = "reset domain credentials (krbtgt twice, replicated accounts)"
	// Remediate answers a named attack (Zerologon, PrintNightmare,
	// coercion, AD CS abuse): the target says the step.
	Remediate ActionKind = "remediate the attack"
	// Sinkhole blocks a registered domain at the inside resolvers: DNS
	// command and control and tunnels reach their server through them,
	// so blocking an address does nothing.
	Sinkhole ActionKind = "block the domain at the resolver (sinkhole)"
	// BlockICMP blocks an outside address's ICMP at the egress firewall:
	// ICMP command and control and tunnels need nothing else to pass,
	// and nothing legitimate needs one rare outside address's echo.
	BlockICMP ActionKind = "block the destination's ICMP at the egress firewall"
)

// Escalation is who takes the action.
type Escalation int

// Escalation levels, lowest first.
const (
	SOCMonitor Escalation = iota + 1
	SOCInvestigate
	CSIRT
)

func (e Escalation) String() string {
	switch e {
	case SOCMonitor:
		return "SOC monitor"
	case SOCInvestigate:
		return "SOC investigate"
	case CSIRT:
		return "CSIRT"
	}
	return "none"
}

// Subject is one finding as Recommend needs it.
type Subject struct {
	Host     netip.Addr
	Asset    assets.Asset // zero when the inventory does not know the host
	Severity int          // SevInfo..SevCritical
	Score    float64
	// What the finding rests on.
	Beacon bool
	// DNS: the finding is DNS command and control or a tunnel under
	// DestName (a registered domain): blocked at the resolver.
	DNS bool
	// ICMP: the finding is ICMP command and control or a tunnel to Dest:
	// its ICMP is blocked at the egress firewall.
	ICMP     bool
	Lateral  bool
	Scan     bool
	Dest     netip.Addr // the beacon's destination, when Beacon; the address an indicator names
	DestName string
	DestPort uint16
	// Indicator names the shared indicator the host's traffic matched,
	// when the subject is an indicator match.
	Indicator string
	// Evidence and Windows go to every action the finding asks for.
	Evidence []string
	Windows  []Window
}

// SubjectOf is hunt finding f as Recommend needs it; a is the asset of its
// source (zero when unknown).
func SubjectOf(f *hunt.Finding, a assets.Asset) Subject {
	// The host to act on is the inside one: an inbound channel's
	// destination, whose outside source is the one to block.
	s := Subject{Host: f.Inside(), Asset: a, Severity: int(f.Severity), Score: f.Score, Beacon: f.Beacon, Lateral: f.Lateral, Scan: f.Scan}
	switch {
	case f.Kind == hunt.KindDNS:
		s.DNS, s.DestName = true, f.DstName
	case f.Kind == hunt.KindICMP:
		s.ICMP, s.Dest, s.DestName = true, f.Dst, f.DstName
	case f.Kind == hunt.KindChannel && f.Direction == hunt.Inbound && f.Beacon:
		s.Dest, s.DestPort = f.Src, f.DstPort
	case f.Kind == hunt.KindChannel && f.Beacon:
		s.Dest, s.DestName, s.DestPort = f.Dst, f.DstName, f.DstPort
	case f.Kind == hunt.KindHost && f.C2Kind == hunt.KindDNS:
		// A host whose strongest evidence is its DNS: the domain is
		// sinkholed, as for the DNS finding itself.
		s.DNS, s.DestName = true, f.BeaconDstName
	case f.Kind == hunt.KindHost && f.C2Kind == hunt.KindICMP:
		s.ICMP, s.Dest, s.DestName = true, f.BeaconDst, f.BeaconDstName
	case f.Beacon:
		s.Dest, s.DestName = f.BeaconDst, f.BeaconDstName
	}
	return s
}

// FindingWindow is the packets behind hunt finding f, numbered id: the
// channel's traffic between its two ends, or all of a host's. Through a
// forward proxy the client's packets went to the proxy, on the proxy's
// port: the window is that leg (a filter naming the destination as well
// would match no packet, since no packet holds all three addresses).
func FindingWindow(id string, f *hunt.Finding) Window {
	w := Window{From: f.FirstSeen.Add(-time.Second).Truncate(time.Second), To: f.LastSeen.Add(2 * time.Second).Truncate(time.Second),
		Hosts: []netip.Addr{f.Src.Unmap()}, Evidence: []string{id}}
	switch {
	case f.Kind == hunt.KindICMP:
		w.Hosts, w.Proto = append(w.Hosts, f.Dst.Unmap()), f.Proto
	case f.Kind != hunt.KindChannel:
	case f.Via.IsValid():
		w.Hosts, w.Proto = append(w.Hosts, f.Via.Unmap()), f.Proto
	default:
		w.Hosts, w.Port, w.Proto = append(w.Hosts, f.Dst.Unmap()), f.DstPort, f.Proto
	}
	return w
}

// Action is one recommended step.
type Action struct {
	Kind        ActionKind
	Host        netip.Addr // the internal host concerned
	HostName    string     // from the inventory
	Target      string     // what the action applies to: the destination for Block, else the host
	Urgency     int        // 1 (this week) to 4 (now)
	Criticality assets.Criticality
	Priority    int // Urgency × criticality weight: 1-16, the order
	Escalation  Escalation
	Why         string
	Score       float64 // of the finding that asked for it
	// Evidence names the findings and operations behind the action (ids
	// of the incident), Windows the packets to pull for them.
	Evidence []string
	Windows  []Window
}

// Recommend returns the actions for the subjects, one per (kind, target)
// (the most urgent wins), ordered by priority (urgency × business
// criticality), then urgency, then score.
func Recommend(subjects []Subject) []Action {
	var all []Action
	for _, s := range subjects {
		all = append(all, actionsFor(s)...)
	}
	return orderActions(all)
}

// orderActions keeps one action per (kind, target), the most urgent,
// with the evidence of all of them; drops watching a host something
// stronger is asked for; and orders by priority (urgency × business
// criticality), then urgency, then score.
func orderActions(all []Action) []Action {
	best := map[string]Action{}
	var order []string
	for _, a := range all {
		k := string(a.Kind) + "|" + a.Target
		old, ok := best[k]
		if !ok {
			order = append(order, k)
		}
		if !ok || a.Priority > old.Priority || a.Priority == old.Priority && a.Score > old.Score {
			a.Evidence, a.Windows = mergeEvidence(a, old)
			best[k] = a
		} else {
			old.Evidence, old.Windows = mergeEvidence(old, a)
			best[k] = old
		}
	}
	// Watching a host is moot once something stronger is asked for it.
	acting := map[netip.Addr]bool{}
	for _, a := range best {
		if a.Kind != Watch {
			acting[a.Host] = true
		}
	}
	out := make([]Action, 0, len(best))
	for _, k := range order {
		if a := best[k]; a.Kind != Watch || !acting[a.Host] {
			out = append(out, a)
		}
	}
	slices.SortStableFunc(out, func(a, b Action) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(b.Urgency, a.Urgency),
			cmp.Compare(b.Score, a.Score), cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)), a.Host.Compare(b.Host))
	})
	return out
}

// mergeEvidence unites the evidence of two actions, a's first.
func mergeEvidence(a, b Action) ([]string, []Window) {
	ev := slices.Clone(a.Evidence)
	for _, e := range b.Evidence {
		ev = addStr(ev, e)
	}
	ws := slices.Clone(a.Windows)
	for _, w := range b.Windows {
		if !slices.ContainsFunc(ws, func(x Window) bool {
			return x.From.Equal(w.From) && x.To.Equal(w.To) && slices.Equal(x.Hosts, w.Hosts) && x.Port == w.Port
		}) {
			ws = append(ws, w)
		}
	}
	return ev, ws
}

// Primary is the one-line action for a finding (the most urgent of its
// actions), for the finding's own row.
func Primary(s Subject) string {
	acts := actionsFor(s)
	if len(acts) == 0 {
		return "none"
	}
	a := acts[0]
	return fmt.Sprintf("%s (%s)", a.Kind, a.Escalation)
}

func kindRank(k ActionKind) int {
	return slices.Index([]ActionKind{Isolate, Block, BlockICMP, Sinkhole, ResetDomain, Remediate, Collect, ResetCreds, Watch}, k)
}

// actionsFor applies the playbook: the severity sets the urgency and the
// steps; business criticality raises the escalation.
func actionsFor(s Subject) []Action {
	crit := s.Asset.Criticality
	host := s.Host.String()
	dest := s.Dest.String()
	switch {
	case !s.Dest.IsValid():
		dest = s.DestName // asked of a proxy by name: block the name there
	case s.DestName != "":
		dest = s.DestName + " (" + s.Dest.String() + ")"
	}
	// A beacon's destination, or the address a matched indicator names.
	blockable := (s.Beacon || s.Indicator != "") && (s.Dest.IsValid() || s.DestName != "") && !s.DNS
	block := Block
	if s.DNS {
		// The domain, at the resolver: the server's address is the
		// resolver's business, and the host reaches it only through it.
		blockable, block, dest = s.DestName != "", Sinkhole, s.DestName
	}
	if s.ICMP {
		blockable, block = s.Dest.IsValid(), BlockICMP
	}
	var what string
	switch {
	case s.Indicator != "" && s.Dest.IsValid():
		what = fmt.Sprintf("talks to %s, named by indicator %q", dest, clip(s.Indicator, 60))
	case s.Indicator != "":
		what = fmt.Sprintf("matches indicator %q", clip(s.Indicator, 60))
	case s.DNS:
		what = "talks to " + s.DestName + " through DNS"
	case s.ICMP:
		what = "talks to " + dest + " over ICMP"
	case s.Beacon && s.Lateral:
		what = "beacons out and moves laterally"
	case s.Beacon:
		what = "beacons to " + dest
	case s.Lateral:
		what = "fans out to internal admin ports"
	case s.Scan:
		what = "scans"
	default:
		what = "deviates from its peers"
	}
	mk := func(kind ActionKind, urgency int, target string, why string) Action {
		a := Action{Kind: kind, Host: s.Host, HostName: s.Asset.Name, Target: target, Urgency: urgency,
			Criticality: crit, Priority: urgency * crit.Weight(), Why: why, Score: s.Score,
			Evidence: slices.Clone(s.Evidence), Windows: slices.Clone(s.Windows)}
		a.Escalation = escalate(s.Severity, crit)
		return a
	}
	why := fmt.Sprintf("%s: %s (score %.2f)", host, what, s.Score)
	var acts []Action
	switch s.Severity {
	case SevCritical:
		acts = append(acts, mk(Isolate, 4, host, why))
		if blockable {
			acts = append(acts, mk(block, 4, dest, why))
		}
		acts = append(acts, mk(Collect, 4, host, why))
		acts = append(acts, mk(ResetCreds, 3, host, why))
	case SevHigh:
		if blockable {
			acts = append(acts, mk(block, 3, dest, why))
		}
		if s.Lateral || crit >= assets.High {
			acts = append(acts, mk(Isolate, 3, host, why))
		}
		acts = append(acts, mk(Collect, 3, host, why))
		if s.Lateral {
			acts = append(acts, mk(ResetCreds, 3, host, why))
		}
	case SevMedium:
		if (s.DNS || s.ICMP) && blockable {
			// A sinkhole (an ICMP block) costs nothing a legitimate user
			// of an unpopular encoded domain (a rare outside address's
			// echo) would not report at once.
			acts = append(acts, mk(block, 2, dest, why))
		}
		acts = append(acts, mk(Watch, 2, host, why))
		if crit >= assets.High {
			acts = append(acts, mk(Collect, 2, host, why))
		}
	case SevLow:
		acts = append(acts, mk(Watch, 1, host, why))
	}
	return acts
}

// escalate: severity sets the team, a business-critical asset raises it a
// level.
func escalate(sev int, crit assets.Criticality) Escalation {
	e := SOCMonitor
	switch sev {
	case SevCritical:
		e = CSIRT
	case SevHigh:
		e = SOCInvestigate
	case SevMedium:
		e = SOCInvestigate
		if crit < assets.High {
			e = SOCMonitor
		}
		return e
	}
	if crit >= assets.High && e < CSIRT {
		e++
	}
	return e
}
