package report

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/replay"
)

// incidentActions recommends, host by host, what the incident asks for,
// each action carrying the findings and operations behind it.
//
// The order is urgency × business criticality, as for hunt. A host the
// intruder acts from puts at stake every host it reached, so its
// criticality is the highest among itself and its impact scope: a
// workstation used against a domain controller is dealt with first.
func incidentActions(inc *Incident) []Action {
	var all []Action
	for i := range inc.Hosts {
		all = append(all, hostActions(inc, &inc.Hosts[i])...)
	}
	for i := range inc.Attacks {
		all = append(all, attackActions(inc, &inc.Attacks[i])...)
	}
	return orderActions(all)
}

// attackActions are the steps a named attack calls for on the host it
// targeted, beside the host's own actions.
func attackActions(inc *Incident, a *replay.Attack) []Action {
	var step string
	switch {
	case a.Name == "Zerologon" && a.Verdict != "attempted":
		step = fmt.Sprintf("reset the %s machine account password twice and patch CVE-2020-1472; treat the domain as read (reset domain credentials)", firstOr([]string{a.Account}, "domain controller's"))
	case a.Name == "Zerologon":
		step = "patch CVE-2020-1472 and enforce secure RPC for Netlogon (FullSecureChannelProtection)"
	case strings.HasPrefix(a.Name, "PrintNightmare"):
		step = "stop and disable the Print Spooler where it is not needed, patch CVE-2021-34527, look for the driver DLL it loaded"
	case strings.Contains(a.Name, "coercion") || strings.HasPrefix(a.Name, "DFSCoerce") || strings.HasPrefix(a.Name, "ShadowCoerce"):
		step = "block the coercion RPC (EFSR, spooler, DFS, FSRVP filters), require EPA and disable NTLM on AD CS web enrolment and LDAP; find where the relayed authentication went"
	case strings.HasPrefix(a.Name, "Certificate for another account"):
		step = "revoke the certificates issued, remove enrollee-supplied subjects from the template (or EDITF_ATTRIBUTESUBJECTALTNAME2 from the CA)"
	default:
		return nil // DCSync and DCShadow: the hosts' own actions cover them
	}
	var crit assets.Criticality
	name := ""
	if h := inc.Host(a.Dst); h != nil {
		crit, name = h.Asset.Criticality, h.Asset.Name
	}
	urgency, sev := 3, SevHigh
	if a.Severity == replay.SevCritical {
		urgency, sev = 4, SevCritical
	}
	var ev []string
	for _, r := range a.Evidence {
		for i := range inc.Operations {
			o := &inc.Operations[i]
			if o.Time.Equal(r.Time) && o.Operation.Operation == r.Operation && o.Src.String() == r.Src {
				ev = addStr(ev, o.ID)
			}
		}
	}
	return []Action{{Kind: Remediate, Host: a.Dst, HostName: name, Target: label(a.Dst, name) + ": " + step, Urgency: urgency,
		Criticality: crit, Priority: urgency * crit.Weight(), Escalation: escalate(sev, crit),
		Why: fmt.Sprintf("%s %s: %s", a.Name, a.Verdict, a.Summary), Evidence: ev,
		Windows: []Window{{From: a.Packets.From, To: a.Packets.To, Hosts: []netip.Addr{a.Src, a.Dst}, Evidence: ev}}}}
}

func hostActions(inc *Incident, h *Host) []Action {
	crit := h.Asset.Criticality
	var stake string
	if h.Role == RoleSteppingStone || h.Role == RoleLateralSource || h.Role == RoleBeaconing {
		for _, r := range h.Reached {
			if t := inc.Host(r.Host); t != nil && t.Asset.Criticality.Weight() > crit.Weight() {
				crit = t.Asset.Criticality
				stake = fmt.Sprintf("; puts %s (%s) at stake", t.Label(), crit)
			}
		}
	}
	why := fmt.Sprintf("%s, %s", h.Label(), h.Role)
	if h.Phase != "" {
		why += " at " + h.Phase
	}
	if s := h.Summary(inc); s != "" {
		why += ": " + s
	}
	why += stake
	evidence := append(slices.Clone(h.Findings), h.Operations...)
	for _, s := range h.Steps {
		for _, e := range s.Evidence {
			evidence = addStr(evidence, e)
		}
	}
	mk := func(kind ActionKind, urgency int, target string) Action {
		return Action{Kind: kind, Host: h.Addr, HostName: h.Asset.Name, Target: target, Urgency: urgency,
			Criticality: crit, Priority: urgency * crit.Weight(), Escalation: escalate(int(h.Severity), crit),
			Why: why, Score: h.Score, Evidence: evidence, Windows: h.Windows}
	}
	host := h.Addr.String()
	var acts []Action
	block := func(urgency int) {
		for _, c := range h.Controllers {
			a := mk(inc.blockKind(c), urgency, inc.controllerLabel(c))
			a.Evidence, a.Windows = nil, nil
			for _, w := range h.Windows {
				if slices.Contains(w.Hosts, c) {
					a.Windows = append(a.Windows, w)
					for _, e := range w.Evidence {
						a.Evidence = addStr(a.Evidence, e)
					}
				}
			}
			if len(a.Evidence) == 0 {
				a.Evidence = evidence
			}
			acts = append(acts, a)
		}
	}
	// The domains the host's DNS findings (medium or above) name: its
	// controllers when it talks through the resolver.
	var dnsF []*Finding
	for _, id := range h.Findings {
		if f := inc.Finding(id); f != nil && f.Kind == hunt.KindDNS && f.Severity >= hunt.Medium && f.DstName != "" {
			dnsF = append(dnsF, f)
		}
	}
	dnsWindows := func(f *Finding) []Window {
		var ws []Window
		for _, w := range h.Windows {
			if slices.Contains(w.Evidence, f.ID) {
				ws = append(ws, w)
			}
		}
		return ws
	}
	sinkhole := func(urgency int) {
		for _, f := range dnsF {
			a := mk(Sinkhole, urgency, f.DstName)
			a.Evidence, a.Windows = []string{f.ID}, dnsWindows(f)
			acts = append(acts, a)
		}
	}
	creds := func(urgency int) {
		target := "accounts seen on " + host
		if len(h.AccountsUsed) > 0 {
			target = strings.Join(h.AccountsUsed, ", ")
		}
		acts = append(acts, mk(ResetCreds, urgency, target))
	}
	domain := func() {
		if !h.DCSync {
			return
		}
		var dcs []string
		var ev []string
		for _, r := range h.Reached {
			if slices.Contains(r.Techniques, "T1003.006") {
				dcs = append(dcs, r.Host.String())
				ev = append(ev, r.Evidence...)
			}
		}
		a := mk(ResetDomain, 4, "directory replicated from "+strings.Join(dcs, ", "))
		a.Evidence = ev
		acts = append(acts, a)
	}
	switch h.Role {
	case RoleSteppingStone:
		acts = append(acts, mk(Isolate, 4, host))
		block(4)
		sinkhole(4)
		domain()
		acts = append(acts, mk(Collect, 4, host))
		creds(3)
	case RoleLateralSource:
		u := 3
		if h.Severity >= hunt.Critical {
			u = 4
		}
		if h.Severity >= hunt.High {
			acts = append(acts, mk(Isolate, u, host), mk(Collect, u, host))
			creds(3)
		} else {
			acts = append(acts, mk(Watch, max(1, int(h.Severity)), host))
		}
		domain()
	case RoleBeaconing:
		for _, c := range h.Controllers {
			ctl := inc.controllerLabel(c)
			for _, a := range actionsFor(Subject{Host: h.Addr, Asset: assets.Asset{Name: h.Asset.Name, Criticality: crit},
				Severity: int(h.Severity), Score: h.Score, Beacon: true, Dest: c, ICMP: inc.blockKind(c) == BlockICMP}) {
				if a.Kind == Block || a.Kind == BlockICMP {
					a.Target = ctl
				}
				a.Why, a.Evidence, a.Windows = why, evidence, h.Windows
				acts = append(acts, a)
			}
		}
		for _, f := range dnsF {
			for _, a := range actionsFor(Subject{Host: h.Addr, Asset: assets.Asset{Name: h.Asset.Name, Criticality: crit},
				Severity: int(h.Severity), Score: h.Score, Beacon: f.Beacon, DNS: true, DestName: f.DstName}) {
				a.Why, a.Evidence, a.Windows = why, evidence, h.Windows
				if a.Kind == Sinkhole {
					a.Evidence, a.Windows = []string{f.ID}, dnsWindows(f)
				}
				acts = append(acts, a)
			}
		}
		// Controlled over a named pipe from another inside host (replay),
		// with no outside controller: nothing to block at the edge, and
		// the implant runs on the host itself.
		if len(h.Controllers) == 0 && len(dnsF) == 0 && h.pipeControlled() {
			if h.Severity >= hunt.High {
				u := 3
				if h.Severity >= hunt.Critical || crit >= assets.High {
					u = 4
				}
				acts = append(acts, mk(Isolate, u, host), mk(Collect, u, host))
			} else {
				acts = append(acts, mk(Watch, max(1, int(h.Severity)), host))
			}
		}
		// Code was run on it and it now reports to a controller: whatever
		// the schedule's own severity, the host is taken off the network.
		if slices.ContainsFunc(h.Steps, func(s Step) bool { return s.Phase == PhaseExecutedOn }) &&
			!slices.ContainsFunc(acts, func(a Action) bool { return a.Kind == Isolate }) {
			acts = append(acts, mk(Isolate, 4, host))
		}
	case RoleTarget:
		switch h.Phase {
		case PhaseExecutedOn:
			acts = append(acts, mk(Isolate, 3, host), mk(Collect, 3, host))
		case PhaseAccessed:
			acts = append(acts, mk(Collect, 2, host))
		default:
			acts = append(acts, mk(Watch, 1, host))
		}
	default:
		if len(h.Findings) > 0 {
			if f := inc.Finding(h.Findings[0]); f != nil {
				s := Subject{Host: h.Addr, Asset: assets.Asset{Name: h.Asset.Name, Criticality: crit}, Severity: int(h.Severity),
					Score: h.Score, Lateral: f.Lateral, Scan: f.Scan}
				for _, a := range actionsFor(s) {
					a.Why, a.Evidence, a.Windows = why, evidence, h.Windows
					acts = append(acts, a)
				}
			}
		}
	}
	return acts
}

// blockKind is how to block controller a: its ICMP at the egress when
// every inside host reached it over ICMP alone, else the address.
func (inc *Incident) blockKind(a netip.Addr) ActionKind {
	for i := range inc.Controllers {
		if c := &inc.Controllers[i]; c.Addr == a {
			if len(c.Hosts) > 0 && !slices.ContainsFunc(c.Hosts, func(h ControllerHost) bool { return h.Proto != 1 && h.Proto != 58 }) {
				return BlockICMP
			}
			break
		}
	}
	return Block
}
