package report

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/intel"
	"github.com/nwhealth/nwhealth/pkg/replay"
)

// windowGap joins evidence windows of one host pair that are closer than
// this, so a burst of operations is one query.
const windowGap = 2 * time.Minute

// maxExamples bounds the examples kept per step.
const maxExamples = 3

// hostAcc accumulates one host's evidence.
type hostAcc struct {
	h        Host
	steps    map[string]*Step
	reached  map[netip.Addr]*Reach
	by       map[netip.Addr]bool
	ctrl     map[netip.Addr]bool
	hostF    *hunt.Finding // hunt's host finding
	windows  []Window
	findings []string
	ops      []string
}

type builder struct {
	in    Input
	hosts map[netip.Addr]*hostAcc
	inc   *Incident
	// implants: indices of the hunt findings raised because their schedule
	// began after a remote execution on their host (implant.go).
	implants map[int]bool
}

// Build joins hunt's findings and replay's operations by host and time
// into the incident: hosts with their phase, role, progression, impact
// scope, accounts and evidence windows; controllers with the hosts talking
// to them; and the recommended actions.
func Build(in Input) *Incident {
	if len(in.Internal) == 0 {
		in.Internal = hunt.DefaultInternal
	}
	b := &builder{in: in, hosts: map[netip.Addr]*hostAcc{}, inc: &Incident{
		Records: in.Hunt.Records, Population: in.Hunt.Hosts, AllOps: len(in.Operations),
		First: in.Hunt.First, Last: in.Hunt.Last,
	}}
	// Schedules that began after a remote execution on their host: raised
	// on a copy, the caller's findings stay as hunt gave them.
	b.in.Hunt.Findings = slices.Clone(b.in.Hunt.Findings)
	b.implants = b.raiseImplants(b.in.Hunt.Findings)
	raiseImplantHosts(b.in.Hunt.Findings, b.implants)
	b.findings()
	dcs := replay.DCSet(in.DomainControllers, in.Inventory.DomainControllers()...)
	replay.MarkReplication(in.Operations, dcs)
	b.inc.Attacks = replay.DetectAttacks(in.Operations, dcs)
	b.intel()
	b.operations()
	b.pipeChannels()
	b.controllerContacts()
	b.finish()
	b.inc.Actions = incidentActions(b.inc)
	b.timeline()
	return b.inc
}

func (b *builder) internal(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range b.in.Internal {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (b *builder) host(a netip.Addr) *hostAcc {
	a = a.Unmap()
	h := b.hosts[a]
	if h == nil {
		h = &hostAcc{steps: map[string]*Step{}, reached: map[netip.Addr]*Reach{}, by: map[netip.Addr]bool{}, ctrl: map[netip.Addr]bool{}}
		h.h.Addr = a
		h.h.Asset, h.h.Known = b.in.Inventory.Lookup(a)
		b.hosts[a] = h
	}
	return h
}

// step adds evidence to a host's phase.
func (h *hostAcc) step(phase, source string, first, last time.Time, sev hunt.Severity, tech string, peer netip.Addr, id, example string) {
	s := h.steps[phase]
	if s == nil {
		s = &Step{Phase: phase, First: first, Last: last, Severity: sev}
		h.steps[phase] = s
	}
	if first.Before(s.First) {
		s.First = first
	}
	if last.After(s.Last) {
		s.Last = last
	}
	s.Severity = max(s.Severity, sev)
	s.Source = addStr(s.Source, source)
	s.Techniques = addStr(s.Techniques, tech)
	if peer.IsValid() && !slices.Contains(s.Peers, peer) {
		s.Peers = append(s.Peers, peer)
	}
	s.Evidence = addStr(s.Evidence, id)
	if example != "" && len(s.Examples) < maxExamples {
		s.Examples = addStr(s.Examples, example)
	}
	h.seen(first, last)
}

func (h *hostAcc) seen(first, last time.Time) {
	if h.h.First.IsZero() || first.Before(h.h.First) {
		h.h.First = first
	}
	if last.After(h.h.Last) {
		h.h.Last = last
	}
}

// reach records that h acted on peer.
func (h *hostAcc) reach(peer netip.Addr, phase string, first, last time.Time, tech, id string) {
	r := h.reached[peer]
	if r == nil {
		r = &Reach{Host: peer, First: first, Last: last}
		h.reached[peer] = r
	}
	if PhaseRank(phase) > PhaseRank(r.Phase) {
		r.Phase = phase
	}
	if first.Before(r.First) {
		r.First = first
	}
	if last.After(r.Last) {
		r.Last = last
	}
	r.Techniques = addStr(r.Techniques, tech)
	r.Evidence = addStr(r.Evidence, id)
}

func addStr(list []string, s string) []string {
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// findings takes hunt's findings at or above the minimum severity.
func (b *builder) findings() {
	// A host finding kept keeps its fan-out channels: they tell when and
	// whom it reached, whatever their own severity.
	keptHost := map[netip.Addr]bool{}
	for _, f := range b.in.Hunt.Findings {
		if f.Kind == hunt.KindHost && f.Severity >= b.in.MinSeverity {
			keptHost[f.Src] = true
		}
	}
	n := 0
	for fi, f := range b.in.Hunt.Findings {
		if f.Severity < b.in.MinSeverity && !(f.Kind == hunt.KindChannel && f.Lateral && keptHost[f.Src]) {
			continue
		}
		n++
		id := fmt.Sprintf("F%d", n)
		// The inside host of a channel: its source, or for an inbound
		// channel (an outside address polling an inside host) its
		// destination, whose peer outside is the controller.
		inside, peer := f.Inside(), f.Dst.Unmap()
		if inside != f.Src {
			peer = f.Src.Unmap()
		}
		a, known := b.in.Inventory.Lookup(inside)
		b.inc.Findings = append(b.inc.Findings, Finding{ID: id, Finding: f, Asset: a, Known: known})
		src := b.host(inside)
		src.findings = append(src.findings, id)
		switch {
		case f.Kind == hunt.KindHost:
			fc := f
			src.hostF = &fc
			src.h.Score = f.Score
			// Hunt keeps no time for a scan: the step spans the host's
			// traffic. Fan-out is told, with its times, by the lateral
			// channel findings.
			if f.Severity >= hunt.Medium && f.Scan {
				src.step(PhaseDiscovery, "hunt", f.FirstSeen, f.LastSeen, f.Severity, "T1046", netip.Addr{}, id, "fails to reach many hosts on one port")
			}
			// Its beacon is told by the channel finding, which carries
			// the channel's own severity.
		case f.Kind == hunt.KindDNS:
			// Command and control through the resolver: a C2 step like a
			// beacon channel's, whose peer is the server asked (the
			// controller is a domain, no address to block at the edge:
			// the sinkhole action names it).
			src.windows = append(src.windows, FindingWindow(id, &f))
			if f.Severity < hunt.Medium {
				src.seen(f.FirstSeen, f.LastSeen)
				continue
			}
			src.step(PhaseC2, "hunt", f.FirstSeen, f.LastSeen, f.Severity, firstOr(f.Attack, "T1071.004"), f.Dst.Unmap(), id, dnsSummary(&f))
			for _, t := range f.Attack[min(1, len(f.Attack)):] {
				src.steps[PhaseC2].Techniques = addStr(src.steps[PhaseC2].Techniques, t)
			}
		case f.Kind == hunt.KindICMP:
			// Command and control or a tunnel over ICMP: a C2 step like a
			// beacon channel's, and the outside address a controller
			// (its ICMP blocked at the egress: BlockICMP).
			src.windows = append(src.windows, FindingWindow(id, &f))
			if f.Severity < hunt.Medium {
				src.seen(f.FirstSeen, f.LastSeen)
				continue
			}
			dst := f.Dst.Unmap()
			src.step(PhaseC2, "hunt", f.FirstSeen, f.LastSeen, f.Severity, firstOr(f.Attack, "T1095"), dst, id, icmpSummary(&f))
			for _, t := range f.Attack[min(1, len(f.Attack)):] {
				src.steps[PhaseC2].Techniques = addStr(src.steps[PhaseC2].Techniques, t)
			}
			src.ctrl[dst] = true
			b.controller(f, id, dst, src.h.Addr)
		case f.Beacon:
			dst := peer
			w := FindingWindow(id, &f)
			src.windows = append(src.windows, w)
			if f.Severity < hunt.Medium {
				src.seen(f.FirstSeen, f.LastSeen)
				continue
			}
			ex := fmt.Sprintf("checks in with %s every %s", peerName(dst, f.DstName), hunt.FormatPeriod(f.PeriodSec))
			switch {
			case f.Direction == hunt.Inbound:
				ex = fmt.Sprintf("is polled from outside by %s on port %d every %s", dst, f.DstPort, hunt.FormatPeriod(f.PeriodSec))
			case f.Via.IsValid():
				ex += " through the proxy " + f.Via.String()
			}
			src.step(PhaseC2, "hunt", f.FirstSeen, f.LastSeen, f.Severity, firstOr(f.Attack, "T1071"), dst, id, ex)
			for _, t := range f.Attack[min(1, len(f.Attack)):] {
				src.steps[PhaseC2].Techniques = addStr(src.steps[PhaseC2].Techniques, t)
			}
			if dst.IsValid() && (!b.internal(dst) || b.implants[fi]) {
				src.ctrl[dst] = true
				b.controller(f, id, dst, src.h.Addr)
			}
		case f.Lateral:
			dst := f.Dst.Unmap()
			w := FindingWindow(id, &f)
			src.windows = append(src.windows, w)
			tech := firstOr(f.Attack, "")
			sev := f.Severity
			if hf := b.hostFinding(f.Src); hf != nil {
				sev = max(sev, hf.Severity)
			}
			src.step(PhaseLateral, "hunt", f.FirstSeen, f.LastSeen, sev, tech, dst, id,
				fmt.Sprintf("connects to %s on admin port %d", dst, f.DstPort))
			src.reach(dst, PhaseTargeted, f.FirstSeen, f.LastSeen, tech, id)
			t := b.host(dst)
			t.by[src.h.Addr] = true
			t.findings = append(t.findings, id)
			t.windows = append(t.windows, w)
			t.step(PhaseTargeted, "hunt", f.FirstSeen, f.LastSeen, hunt.Info, tech, src.h.Addr, id,
				fmt.Sprintf("reached by %s on admin port %d", src.h.Addr, f.DstPort))
		default:
			src.seen(f.FirstSeen, f.LastSeen)
		}
	}
}

// intelPhase is the incident phase a matched indicator puts its inside
// hosts in: the ATT&CK tactic its kill chain names, when that is one of
// ours, else command-and-control (talking to a known-bad address or name
// is what shared indicators mostly tell).
func intelPhase(ind *intel.Indicator) string {
	for _, k := range ind.KillChain {
		switch k {
		case "discovery", "reconnaissance":
			return PhaseDiscovery
		case "collection", "exfiltration", "actions-on-objectives":
			return PhaseCollection
		case "credential-access":
			return PhaseCredAccess
		case "lateral-movement":
			return PhaseLateral
		}
	}
	return PhaseC2
}

// intel takes the indicators that matched at or above the minimum
// severity: each inside host gets a step of the indicator's phase and the
// windows of its matching traffic; an outside address the indicator names
// becomes a controller, so blocking it is recommended like a beacon's
// destination.
func (b *builder) intel() {
	for _, m := range b.in.Intel {
		if m.Severity < b.in.MinSeverity {
			continue
		}
		id := fmt.Sprintf("I%d", len(b.inc.Intel)+1)
		b.inc.Intel = append(b.inc.Intel, IntelMatch{ID: id, Match: m})
		phase := intelPhase(m.Indicator)
		for _, hm := range m.Hosts {
			h := b.host(hm.Host)
			h.findings = append(h.findings, id)
			ex := fmt.Sprintf("matches indicator %q (%s via %s), %d connections", clip(m.Indicator.Label(), 60),
				strings.Join(hm.Values, ", "), strings.Join(hm.Via, ", "), hm.Connections)
			var peer netip.Addr
			for _, p := range hm.Peers {
				if p.Named && !peer.IsValid() {
					peer = p.Addr
				}
				w := Window{From: p.First.Add(-time.Second).Truncate(time.Second), To: p.Last.Add(2 * time.Second).Truncate(time.Second),
					Hosts: []netip.Addr{hm.Host, p.Addr}, Port: p.Port, Proto: p.Proto, Evidence: []string{id}}
				h.windows = append(h.windows, w)
				if p.Named && !b.internal(p.Addr) && phase == PhaseC2 {
					h.ctrl[p.Addr] = true
					b.intelController(m, id, hm.Host, p)
				}
			}
			h.step(phase, "intel", hm.First, hm.Last, m.Severity, "", peer, id, ex)
		}
	}
}

// intelController adds an outside address an indicator names to the
// controllers.
func (b *builder) intelController(m intel.Match, id string, host netip.Addr, p intel.Peer) {
	i := slices.IndexFunc(b.inc.Controllers, func(c Controller) bool { return c.Addr == p.Addr })
	if i < 0 {
		b.inc.Controllers = append(b.inc.Controllers, Controller{Addr: p.Addr, First: p.First, Last: p.Last})
		i = len(b.inc.Controllers) - 1
	}
	c := &b.inc.Controllers[i]
	for _, v := range m.Values {
		if _, err := netip.ParsePrefix(v); err != nil && !strings.Contains(v, "/") {
			if _, err := netip.ParseAddr(v); err != nil {
				c.Names = addStr(c.Names, v)
			}
		}
	}
	if p.Port != 0 && !slices.Contains(c.Ports, p.Port) {
		c.Ports = append(c.Ports, p.Port)
	}
	c.Severity = max(c.Severity, m.Severity)
	if p.First.Before(c.First) {
		c.First = p.First
	}
	if p.Last.After(c.Last) {
		c.Last = p.Last
	}
	c.Findings = addStr(c.Findings, id)
	c.Hosts = append(c.Hosts, ControllerHost{Addr: host, Port: p.Port, Proto: p.Proto, Connections: p.Connections,
		First: p.First, Last: p.Last, Finding: id})
}

// hostFinding is hunt's host finding of a, if any.
func (b *builder) hostFinding(a netip.Addr) *hunt.Finding {
	for i := range b.in.Hunt.Findings {
		if f := &b.in.Hunt.Findings[i]; f.Kind == hunt.KindHost && f.Src == a {
			return f
		}
	}
	return nil
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

// peerName names a channel's peer by name and address, or by name alone
// when only the name is known (a destination asked of a proxy).
func peerName(a netip.Addr, name string) string {
	if !a.IsValid() {
		return name
	}
	return nameAddr(a, name)
}

// dnsSummary says what a DNS finding's host did under its domain.
func dnsSummary(f *hunt.Finding) string {
	via := fmt.Sprintf("asking %s", f.Dst) // the inside resolver, or the tunnel server itself
	switch {
	case slices.Contains(f.Attack, "T1572"):
		return fmt.Sprintf("tunnels through DNS under %s, %s (%d queries)", f.DstName, via, queriesOf(f))
	case f.Beacon:
		return fmt.Sprintf("checks in by DNS under %s, %s every %s (%d queries)", f.DstName, via, hunt.FormatPeriod(f.PeriodSec), queriesOf(f))
	}
	return fmt.Sprintf("talks by DNS under %s, %s (%d queries)", f.DstName, via, queriesOf(f))
}

// icmpSummary says what an ICMP finding's host did with its address.
func icmpSummary(f *hunt.Finding) string {
	dst := peerName(f.Dst, f.DstName)
	n := f.Connections
	if e := f.ICMP; e != nil {
		n = int(min(e.Requests, 1<<31))
	}
	switch {
	case slices.Contains(f.Attack, "T1572"):
		return fmt.Sprintf("tunnels through ICMP echo to %s (%d requests)", dst, n)
	case f.Beacon:
		return fmt.Sprintf("checks in by ICMP echo with %s every %s, replies carrying data (%d requests)", dst, hunt.FormatPeriod(f.PeriodSec), n)
	}
	return fmt.Sprintf("exchanges data in ICMP echo with %s (%d requests)", dst, n)
}

func queriesOf(f *hunt.Finding) int {
	if f.DNS != nil {
		return f.DNS.Queries
	}
	return f.Connections
}

// controller adds a beacon channel of inside host h to its controller dst.
func (b *builder) controller(f hunt.Finding, id string, dst, h netip.Addr) {
	i := slices.IndexFunc(b.inc.Controllers, func(c Controller) bool { return c.Addr == dst })
	if i < 0 {
		b.inc.Controllers = append(b.inc.Controllers, Controller{Addr: dst, First: f.FirstSeen, Last: f.LastSeen})
		i = len(b.inc.Controllers) - 1
	}
	c := &b.inc.Controllers[i]
	c.Names = addStr(c.Names, f.DstName)
	if !slices.Contains(c.Ports, f.DstPort) {
		c.Ports = append(c.Ports, f.DstPort)
	}
	if f.Score > c.Score {
		c.Score, c.PeriodSec = f.Score, f.PeriodSec
	}
	c.Severity = max(c.Severity, f.Severity)
	if f.FirstSeen.Before(c.First) {
		c.First = f.FirstSeen
	}
	if f.LastSeen.After(c.Last) {
		c.Last = f.LastSeen
	}
	c.Findings = append(c.Findings, id)
	for _, t := range f.Attack {
		c.Attack = addStr(c.Attack, t)
	}
	c.Hosts = append(c.Hosts, ControllerHost{Addr: h.Unmap(), Port: f.DstPort, Proto: f.Proto, Connections: f.Connections,
		First: f.FirstSeen, Last: f.LastSeen, Finding: id})
}

// Severity of an operation, as evidence against its source and its target.
func actorSeverity(op *replay.Operation) hunt.Severity {
	switch actorPhase(op.Phase) {
	case PhaseDiscovery:
		return hunt.Low
	case PhaseCollection:
		return hunt.Medium
	case PhaseCredAccess:
		if strings.HasPrefix(op.Technique, "T1003") {
			return hunt.Critical // DCSync, SAM/LSA secrets: the domain's keys
		}
		return hunt.High
	case PhaseLateral:
		if op.Phase == "command-and-control" {
			return hunt.Medium // a named-pipe channel: raised by pipeChannels
		}
		return hunt.High
	}
	return hunt.Info
}

func targetSeverity(op *replay.Operation) hunt.Severity {
	switch targetPhase(op.Phase) {
	case PhaseTargeted:
		if op.Phase == "credential-access" {
			return hunt.Medium
		}
		return hunt.Info
	case PhaseAccessed:
		return hunt.Medium
	case PhaseExecutedOn:
		return hunt.High
	case PhaseC2:
		// Replay's named-pipe channel: raised to its attack's severity
		// (pipeChannels).
		return hunt.Medium
	}
	return hunt.Info
}

// pipeChannels gives both ends of each named-pipe C2 channel replay
// named the channel's severity (high when a framework's name, length
// framing or a schedule corroborates it, medium on data both ways alone,
// as the attack says): the server end's command-and-control step, the
// client end's lateral step.
func (b *builder) pipeChannels() {
	for _, a := range b.inc.Attacks {
		if a.Technique != pipeChannelTechnique {
			continue
		}
		sev, err := hunt.ParseSeverity(a.Severity)
		if err != nil {
			continue
		}
		for _, e := range []struct {
			addr  netip.Addr
			phase string
		}{{a.Dst, PhaseC2}, {a.Src, PhaseLateral}} {
			if h, ok := b.hosts[e.addr.Unmap()]; ok {
				if s := h.steps[e.phase]; s != nil {
					s.Severity = max(s.Severity, sev)
				}
			}
		}
	}
}

// pipeChannelTechnique is the technique of replay's named-pipe C2
// channel and its attack.
const pipeChannelTechnique = "T1071.002"

// operations takes replay's operations, plumbing left out, in time order.
func (b *builder) operations() {
	ops := make([]*replay.Operation, 0, len(b.in.Operations))
	for i := range b.in.Operations {
		if op := &b.in.Operations[i]; !op.Noise && op.Src.IsValid() && op.Dst.IsValid() {
			ops = append(ops, op)
		}
	}
	slices.SortStableFunc(ops, func(x, y *replay.Operation) int {
		return cmp.Or(x.Time.Compare(y.Time), x.End.Compare(y.End), x.Src.Compare(y.Src), x.Dst.Compare(y.Dst))
	})
	for i, op := range ops {
		id := fmt.Sprintf("OP%d", i+1)
		b.inc.Operations = append(b.inc.Operations, Operation{ID: id, Operation: *op})
		srcA, dstA := op.Src.Unmap(), op.Dst.Unmap()
		src, dst := b.host(srcA), b.host(dstA)
		src.ops = append(src.ops, id)
		dst.ops = append(dst.ops, id)
		end := op.End
		if end.Before(op.Time) {
			end = op.Time
		}
		ev := op.Evidence()
		w := Window{From: ev.From, To: ev.To, Hosts: []netip.Addr{srcA, dstA}, Evidence: []string{id}}
		src.windows = append(src.windows, w)
		dst.windows = append(dst.windows, w)
		if a := op.Account(); a != "" {
			src.h.AccountsUsed = addStr(src.h.AccountsUsed, a)
			dst.h.AccountsSeen = addStr(dst.h.AccountsSeen, a)
		}
		if b.in.Allowed != nil && b.in.Allowed(srcA, "") {
			src.seen(op.Time, end)
			dst.seen(op.Time, end)
			continue
		}
		dst.by[srcA] = true
		ex := opSummary(op)
		if ap := actorPhase(op.Phase); ap != "" {
			src.step(ap, "replay", op.Time, end, actorSeverity(op), op.Technique, dstA, id, ex+" on "+dstA.String())
		} else {
			src.seen(op.Time, end)
		}
		tp := targetPhase(op.Phase)
		if tp != "" {
			dst.step(tp, "replay", op.Time, end, targetSeverity(op), op.Technique, srcA, id, ex+" from "+srcA.String())
		} else {
			dst.seen(op.Time, end)
		}
		src.reach(dstA, tp, op.Time, end, op.Technique, id)
		src.reached[dstA].Accounts = addStr(src.reached[dstA].Accounts, op.Account())
		if op.Technique == "T1003.006" {
			src.h.DCSync = true
		}
		if b.inc.First.IsZero() || op.Time.Before(b.inc.First) {
			b.inc.First = op.Time
		}
		if end.After(b.inc.Last) {
			b.inc.Last = end
		}
	}
}

// opSummary is an operation in a few words.
func opSummary(op *replay.Operation) string {
	s := op.Operation
	if op.Interface != "" && op.Interface != "smb" && op.Interface != "pipe" {
		s = op.Interface + " " + s
	}
	if op.Target != "" {
		s += " " + op.Target
	}
	return clip(s, 120)
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// controllerContacts adds the inside hosts that reached a controller
// without a beacon finding of their own: one check-in to a controller
// another host beacons to is C2 evidence too.
func (b *builder) controllerContacts() {
	if b.in.Contacts == nil {
		return
	}
	for i := range b.inc.Controllers {
		c := &b.inc.Controllers[i]
		// Only a beacon's controller draws in every host that reached it:
		// an indicator already names each host whose traffic matched, and
		// the address behind a matched name may be a shared front.
		if !slices.ContainsFunc(c.Findings, func(id string) bool { return strings.HasPrefix(id, "F") }) {
			continue
		}
		for _, ct := range b.in.Contacts(c.Addr) {
			src := ct.Src.Unmap()
			if slices.ContainsFunc(c.Hosts, func(h ControllerHost) bool { return h.Addr == src && h.Port == ct.Port && h.Proto == ct.Proto }) {
				continue
			}
			c.Hosts = append(c.Hosts, ControllerHost{Addr: src, Port: ct.Port, Proto: ct.Proto, Connections: ct.Connections, First: ct.First, Last: ct.Last})
			h := b.host(src)
			h.ctrl[c.Addr] = true
			sev := min(c.Severity, hunt.High)
			h.windows = append(h.windows, Window{From: ct.First.Add(-time.Second).Truncate(time.Second), To: ct.Last.Add(2 * time.Second).Truncate(time.Second),
				Hosts: []netip.Addr{src, c.Addr}, Port: ct.Port, Proto: ct.Proto, Evidence: c.Findings[:1]})
			h.step(PhaseC2, "hunt", ct.First, ct.Last, sev, "T1071", c.Addr, c.Findings[0],
				fmt.Sprintf("%d connections to controller %s", ct.Connections, c.Label()))
		}
		slices.SortFunc(c.Hosts, func(x, y ControllerHost) int {
			return cmp.Or(cmp.Compare(y.Connections, x.Connections), x.Addr.Compare(y.Addr), cmp.Compare(x.Port, y.Port))
		})
	}
	slices.SortStableFunc(b.inc.Controllers, func(x, y Controller) int {
		return cmp.Or(cmp.Compare(y.Severity, x.Severity), cmp.Compare(y.Score, x.Score), x.Addr.Compare(y.Addr))
	})
}

// finish settles each host's phase, role and severity, and keeps the hosts
// that matter.
func (b *builder) finish() {
	for _, h := range b.hosts {
		x := &h.h
		for _, s := range h.steps {
			slices.SortFunc(s.Techniques, strings.Compare)
			slices.SortFunc(s.Peers, netip.Addr.Compare)
			x.Steps = append(x.Steps, *s)
			if PhaseRank(s.Phase) > PhaseRank(x.Phase) {
				x.Phase = s.Phase
			}
			x.Severity = max(x.Severity, s.Severity)
			for _, t := range s.Techniques {
				x.Techniques = addStr(x.Techniques, t)
			}
		}
		slices.SortFunc(x.Steps, func(p, q Step) int {
			return cmp.Or(p.First.Compare(q.First), cmp.Compare(PhaseRank(p.Phase), PhaseRank(q.Phase)))
		})
		slices.SortFunc(x.Techniques, strings.Compare)
		if h.hostF != nil {
			x.Severity = max(x.Severity, h.hostF.Severity)
		}
		c2 := h.steps[PhaseC2] != nil
		acts := false
		for _, p := range []string{PhaseDiscovery, PhaseCollection, PhaseCredAccess, PhaseLateral} {
			acts = acts || h.steps[p] != nil
		}
		target := len(h.by) > 0 || h.steps[PhaseTargeted] != nil || h.steps[PhaseAccessed] != nil || h.steps[PhaseExecutedOn] != nil
		switch {
		case c2 && acts:
			x.Role = RoleSteppingStone
			x.Severity = hunt.Critical
		case c2:
			x.Role = RoleBeaconing
		case acts:
			x.Role = RoleLateralSource
		case target:
			x.Role = RoleTarget
		default:
			x.Role = RoleSuspect
		}
		x.Compromised = x.Role == RoleSteppingStone || (x.Role == RoleBeaconing || x.Role == RoleLateralSource) && x.Severity >= hunt.High ||
			h.steps[PhaseExecutedOn] != nil
		for a, r := range h.reached {
			if a != x.Addr {
				x.Reached = append(x.Reached, *r)
			}
		}
		slices.SortFunc(x.Reached, func(p, q Reach) int {
			return cmp.Or(cmp.Compare(PhaseRank(q.Phase), PhaseRank(p.Phase)), p.First.Compare(q.First), p.Host.Compare(q.Host))
		})
		for a := range h.by {
			if a != x.Addr {
				x.ReachedBy = append(x.ReachedBy, a)
			}
		}
		slices.SortFunc(x.ReachedBy, netip.Addr.Compare)
		for a := range h.ctrl {
			x.Controllers = append(x.Controllers, a)
		}
		slices.SortFunc(x.Controllers, netip.Addr.Compare)
		x.Findings, x.Operations = h.findings, h.ops
		x.Windows = mergeWindows(h.windows)
	}
	// Keep hosts at the minimum severity, and every host a compromised
	// host acted on: who else is touched.
	scope := map[netip.Addr]bool{}
	for _, h := range b.hosts {
		if h.h.Compromised {
			for _, r := range h.h.Reached {
				scope[r.Host] = true
			}
		}
	}
	for _, h := range b.hosts {
		if h.h.Severity >= b.in.MinSeverity || scope[h.h.Addr] {
			b.inc.Hosts = append(b.inc.Hosts, h.h)
		}
	}
	slices.SortFunc(b.inc.Hosts, func(p, q Host) int {
		return cmp.Or(cmp.Compare(q.Severity, p.Severity), cmp.Compare(PhaseRank(q.Phase), PhaseRank(p.Phase)),
			cmp.Compare(q.Score, p.Score), p.First.Compare(q.First), p.Addr.Compare(q.Addr))
	})
	for i := range b.inc.Hosts {
		h := &b.inc.Hosts[i]
		b.inc.Severity = max(b.inc.Severity, h.Severity)
		if h.Compromised {
			b.inc.Compromised++
		}
	}
	for _, c := range b.inc.Controllers {
		b.inc.Severity = max(b.inc.Severity, c.Severity)
	}
	for i := range b.inc.Operations {
		op := &b.inc.Operations[i]
		if h := b.hosts[op.Src.Unmap()]; h != nil {
			op.SrcRole, op.SrcFindings, op.Controllers = h.h.Role, h.h.Findings, h.h.Controllers
		}
		if b.in.Allowed != nil && b.in.Allowed(op.Src.Unmap(), "") {
			op.SrcRole = "allowed"
		}
	}
}

// mergeWindows joins the windows of one host pair and port that overlap or
// lie within windowGap, and orders them by time.
func mergeWindows(ws []Window) []Window {
	key := func(w *Window) string { return fmt.Sprint(w.Hosts, w.Port, w.Proto) }
	slices.SortStableFunc(ws, func(a, b Window) int { return cmp.Or(strings.Compare(key(&a), key(&b)), a.From.Compare(b.From)) })
	var out []Window
	for _, w := range ws {
		if n := len(out); n > 0 && key(&out[n-1]) == key(&w) && !w.From.After(out[n-1].To.Add(windowGap)) {
			last := &out[n-1]
			if w.To.After(last.To) {
				last.To = w.To
			}
			for _, e := range w.Evidence {
				last.Evidence = addStr(last.Evidence, e)
			}
			continue
		}
		w.Evidence = slices.Clone(w.Evidence)
		out = append(out, w)
	}
	slices.SortStableFunc(out, func(a, b Window) int { return a.From.Compare(b.From) })
	return out
}

// timeline merges findings and operations by time.
func (b *builder) timeline() {
	var ev []Event
	for _, f := range b.inc.Findings {
		if f.Kind == hunt.KindDNS {
			if f.Severity >= hunt.Medium {
				ev = append(ev, Event{Time: f.FirstSeen, End: f.LastSeen, Kind: "dns", Src: f.Src, Dst: f.Dst, Phase: PhaseC2,
					Technique: firstOr(f.Attack, "T1071.004"), Severity: f.Severity, Summary: dnsSummary(&f.Finding), Evidence: f.ID})
			}
			continue
		}
		if f.Kind == hunt.KindICMP {
			if f.Severity >= hunt.Medium {
				ev = append(ev, Event{Time: f.FirstSeen, End: f.LastSeen, Kind: "icmp", Src: f.Src, Dst: f.Dst, Phase: PhaseC2,
					Technique: firstOr(f.Attack, "T1095"), Severity: f.Severity, Summary: icmpSummary(&f.Finding), Evidence: f.ID})
			}
			continue
		}
		if f.Kind != hunt.KindChannel {
			if f.Scan && f.Severity >= hunt.Medium {
				ev = append(ev, Event{Time: f.FirstSeen, End: f.LastSeen, Kind: "scan", Src: f.Src, Phase: PhaseDiscovery, Technique: "T1046",
					Severity: f.Severity, Summary: "scans: " + firstOr(f.Reasons, ""), Evidence: f.ID})
			}
			continue
		}
		e := Event{Time: f.FirstSeen, End: f.LastSeen, Src: f.Src, Dst: f.Dst, Technique: firstOr(f.Attack, ""), Severity: f.Severity, Evidence: f.ID}
		switch {
		case f.Beacon && f.Direction == hunt.Inbound:
			e.Kind, e.Phase = "beacon", PhaseC2
			e.Summary = fmt.Sprintf("polls %s port %d from outside every %s (%d connections)", f.Dst, f.DstPort, hunt.FormatPeriod(f.PeriodSec), f.Connections)
		case f.Beacon:
			e.Kind, e.Phase = "beacon", PhaseC2
			e.Summary = fmt.Sprintf("checks in with %s port %d every %s (%d connections)", peerName(f.Dst, f.DstName), f.DstPort, hunt.FormatPeriod(f.PeriodSec), f.Connections)
			if f.Via.IsValid() {
				e.Summary += " through the proxy " + f.Via.String()
			}
		case f.Lateral:
			e.Kind, e.Phase = "fan-out", PhaseLateral
			e.Summary = fmt.Sprintf("connects to %s on admin port %d (%d connections)", f.Dst, f.DstPort, f.Connections)
		default:
			continue
		}
		ev = append(ev, e)
	}
	for _, m := range b.inc.Intel {
		for _, hm := range m.Hosts {
			var dst netip.Addr
			for _, p := range hm.Peers {
				if p.Named {
					dst = p.Addr
					break
				}
			}
			ev = append(ev, Event{Time: hm.First, End: hm.Last, Kind: "indicator", Src: hm.Host, Dst: dst, Phase: intelPhase(m.Indicator),
				Severity: m.Severity, Evidence: m.ID,
				Summary: fmt.Sprintf("matches indicator %q: %s (%d connections)", clip(m.Indicator.Label(), 60), strings.Join(hm.Values, ", "), hm.Connections)})
		}
	}
	for _, op := range b.inc.Operations {
		ev = append(ev, Event{Time: op.Time, End: op.End, Kind: "operation", Src: op.Src, Dst: op.Dst, Phase: actorPhase(op.Phase),
			Technique: op.Technique, Severity: actorSeverity(&op.Operation), Summary: opSummary(&op.Operation), Evidence: op.ID})
	}
	for _, a := range b.inc.Attacks {
		sev, _ := hunt.ParseSeverity(a.Severity)
		id := a.Technique
		if a.CVE != "" {
			id = a.CVE
		}
		ev = append(ev, Event{Time: a.Time, End: a.End, Kind: "attack", Src: a.Src, Dst: a.Dst, Phase: actorPhase(attackPhase(a.Technique)),
			Technique: a.Technique, Severity: sev, Summary: a.Name + " " + a.Verdict + ": " + a.Summary, Evidence: id})
		b.inc.Severity = max(b.inc.Severity, sev)
	}
	slices.SortStableFunc(ev, func(x, y Event) int { return x.Time.Compare(y.Time) })
	b.inc.Timeline = ev
}

// attackPhase is the replay phase of an attack's technique.
func attackPhase(technique string) string {
	switch technique {
	case "T1210":
		return "execution"
	case "T1207":
		return "defense-evasion"
	case pipeChannelTechnique:
		return "command-and-control"
	}
	return "credential-access"
}

// Host returns the incident's host with address a.
func (inc *Incident) Host(a netip.Addr) *Host {
	for i := range inc.Hosts {
		if inc.Hosts[i].Addr == a.Unmap() {
			return &inc.Hosts[i]
		}
	}
	return nil
}

// Summary tells the host's part in a sentence.
func (h *Host) Summary(inc *Incident) string {
	var parts []string
	if len(h.Controllers) > 0 {
		var cs, named []string
		for _, a := range h.Controllers {
			if inc.intelOnly(a) {
				named = append(named, inc.controllerLabel(a))
			} else {
				cs = append(cs, inc.controllerLabel(a))
			}
		}
		if len(cs) > 0 {
			parts = append(parts, "checks in with "+strings.Join(cs, ", "))
		}
		if len(named) > 0 {
			parts = append(parts, "talks to "+strings.Join(named, ", ")+", named by shared indicators")
		}
	}
	var acted []string
	for _, r := range h.Reached {
		acted = append(acted, r.Host.String())
	}
	if len(acted) > 0 {
		parts = append(parts, fmt.Sprintf("acted on %d inside host(s): %s", len(acted), strings.Join(clipList(acted, 6), ", ")))
	}
	if h.DCSync {
		parts = append(parts, "pulled directory replication (DCSync)")
	}
	if len(h.AccountsUsed) > 0 {
		parts = append(parts, "as "+strings.Join(clipList(h.AccountsUsed, 4), ", "))
	}
	if s := h.pipeStep(); s != nil {
		var by []string
		for _, a := range s.Peers {
			by = append(by, a.String())
		}
		parts = append(parts, "controlled over SMB named pipes from "+strings.Join(clipList(by, 4), ", "))
	}
	if len(h.ReachedBy) > 0 && h.Phase != "" && PhaseRank(h.Phase) <= PhaseRank(PhaseExecutedOn) {
		var by []string
		for _, a := range h.ReachedBy {
			by = append(by, a.String())
		}
		parts = append(parts, fmt.Sprintf("%s by %s", h.Phase, strings.Join(clipList(by, 4), ", ")))
	}
	if len(parts) == 0 && len(h.Findings) > 0 {
		if f := inc.Finding(h.Findings[0]); f != nil && len(f.Reasons) > 0 {
			parts = append(parts, f.Reasons[0])
		}
	}
	return strings.Join(parts, "; ")
}

// pipeStep is the host's command-and-control step when replay gave it: the
// host is at the server end of a named-pipe C2 channel, controlled from
// another inside host (the step's peers). Nil otherwise.
func (h *Host) pipeStep() *Step {
	if i := slices.IndexFunc(h.Steps, func(s Step) bool { return s.Phase == PhaseC2 && slices.Contains(s.Source, "replay") }); i >= 0 {
		return &h.Steps[i]
	}
	return nil
}

func (h *Host) pipeControlled() bool { return h.pipeStep() != nil }

func clipList(list []string, n int) []string {
	if len(list) <= n {
		return list
	}
	return append(slices.Clone(list[:n]), fmt.Sprintf("and %d more", len(list)-n))
}

// intelOnly reports whether the controller at a rests on matched
// indicators alone (no beacon).
func (inc *Incident) intelOnly(a netip.Addr) bool {
	for i := range inc.Controllers {
		if c := &inc.Controllers[i]; c.Addr == a {
			return !slices.ContainsFunc(c.Findings, func(id string) bool { return !strings.HasPrefix(id, "I") })
		}
	}
	return false
}

func (inc *Incident) controllerLabel(a netip.Addr) string {
	for i := range inc.Controllers {
		if inc.Controllers[i].Addr == a {
			return inc.Controllers[i].Label()
		}
	}
	return a.String()
}

// Finding returns the finding with an id.
func (inc *Incident) Finding(id string) *Finding {
	for i := range inc.Findings {
		if inc.Findings[i].ID == id {
			return &inc.Findings[i]
		}
	}
	return nil
}

// Criticality is the host's own, from the inventory.
func (h *Host) Criticality() assets.Criticality { return h.Asset.Criticality }
