package report

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/replay"
	"github.com/nwhealth/nwhealth/pkg/report/stix"
)

// WriteSTIX writes the incident as a STIX 2.1 bundle (docs/report.md maps
// every part): nwhealth as the producing identity; per controller its
// addresses and names, indicators with patterns for them, the C2
// infrastructure, observed traffic and sightings; per host a system
// identity; an attack-pattern per ATT&CK technique, with the hosts each
// targeted and sightings of it; the implant of each beaconing host; a
// course-of-action per recommended action; and a report holding them all.
func WriteSTIX(w io.Writer, inc *Incident, meta Meta) error {
	s := &stixWriter{inc: inc, now: meta.Generated, b: &stix.Bundle{}}
	if s.now.IsZero() {
		s.now = time.Now()
	}
	s.producer()
	for i := range inc.Hosts {
		s.hostIdentity(&inc.Hosts[i])
	}
	for i := range inc.Controllers {
		s.controller(&inc.Controllers[i])
	}
	for i := range inc.Hosts {
		s.hostActivity(&inc.Hosts[i])
	}
	for i := range inc.Attacks {
		s.attack(&inc.Attacks[i])
	}
	for i := range inc.Findings {
		if f := &inc.Findings[i]; f.Kind == hunt.KindDNS && f.Severity >= hunt.Medium {
			s.dnsDomain(f)
		} else if f.Kind == hunt.KindICMP && f.Severity >= hunt.Medium {
			s.icmpIndicator(f)
		}
	}
	for i := range inc.Intel {
		s.sighting(&inc.Intel[i])
	}
	for i := range inc.Actions {
		s.courseOfAction(i, &inc.Actions[i])
	}
	title := meta.Title
	if title == "" {
		title = "nwhealth incident report"
	}
	rep := stix.SDO("report", stix.ID("report", title, stix.Timestamp(inc.First), stix.Timestamp(inc.Last)), s.now, s.me)
	rep["name"] = title
	rep["report_types"] = []string{"threat-report"}
	rep["published"] = stix.Timestamp(s.now)
	rep["description"] = fmt.Sprintf("Traffic %s to %s: severity %s, %d compromised host(s), %d controller(s), %d remote operations, %d hunt findings.",
		stix.Timestamp(inc.First), stix.Timestamp(inc.Last), inc.Severity, inc.Compromised, len(inc.Controllers), len(inc.Operations), len(inc.Findings))
	rep["object_refs"] = s.b.IDs()
	s.b.Add(rep)
	_, err := s.b.WriteTo(w)
	return err
}

type stixWriter struct {
	inc *Incident
	now time.Time
	b   *stix.Bundle
	me  string // the producer identity
}

func (s *stixWriter) sdo(typ string, key ...string) stix.Object {
	return stix.SDO(typ, stix.ID(typ, key...), s.now, s.me)
}

func (s *stixWriter) rel(typ, src, dst string) {
	if src == "" || dst == "" || src == dst {
		return
	}
	s.b.Add(stix.Relationship(typ, src, dst, s.now, s.me))
}

func (s *stixWriter) producer() {
	o := stix.SDO("identity", stix.ID("identity", "nwhealth"), s.now, "")
	o["name"] = "nwhealth"
	o["identity_class"] = "system"
	o["description"] = "nwhealth network forensics: hunt (flow behaviour) and replay (Windows remote operations from SMB and DCE/RPC) joined by report."
	s.me = o.ID()
	s.b.Add(o)
}

// addrSCO is the ipv4-addr or ipv6-addr observable of a.
func addrSCO(a netip.Addr) stix.Object {
	typ := "ipv4-addr"
	if a.Unmap().Is6() {
		typ = "ipv6-addr"
	}
	return stix.SCO(typ, map[string]any{"value": a.Unmap().String()})
}

func (s *stixWriter) addr(a netip.Addr) string {
	o := addrSCO(a)
	s.b.Add(o)
	return o.ID()
}

func (s *stixWriter) hostID(a netip.Addr) string {
	return stix.ID("identity", "host", a.Unmap().String())
}

func (s *stixWriter) hostIdentity(h *Host) {
	o := s.sdo("identity", "host", h.Addr.String())
	o["name"] = h.Label()
	o["identity_class"] = "system"
	desc := fmt.Sprintf("%s, %s", h.Role, h.Severity)
	if h.Phase != "" {
		desc += ", reached " + h.Phase
	}
	if h.Compromised {
		desc += ", compromised"
	}
	if sum := h.Summary(s.inc); sum != "" {
		desc += ": " + sum
	}
	o["description"] = desc
	if h.Asset.Owner != "" {
		o["contact_information"] = "owner: " + h.Asset.Owner
	}
	s.b.Add(o)
}

// attackPattern adds the ATT&CK technique once and returns its id.
func (s *stixWriter) attackPattern(id string) string {
	o := s.sdo("attack-pattern", "mitre-attack", id)
	if s.b.Has(o.ID()) {
		return o.ID()
	}
	t, known := techniques[id]
	o["name"] = id
	if known {
		o["name"] = t.Name
		o["kill_chain_phases"] = []map[string]string{{"kill_chain_name": "mitre-attack", "phase_name": t.Tactic}}
	}
	o["external_references"] = []map[string]string{{"source_name": "mitre-attack", "external_id": id, "url": TechniqueURL(id)}}
	s.b.Add(o)
	return o.ID()
}

// attack writes a named attack: its ATT&CK attack-pattern targeting the
// host attacked, the CVE as a vulnerability the pattern targets, and a
// sighting of the pattern with the attack's span, count and summary.
func (s *stixWriter) attack(a *replay.Attack) {
	ap := s.attackPattern(a.Technique)
	target := s.hostID(a.Dst)
	if !s.b.Has(target) {
		target = ""
	}
	s.rel("targets", ap, target)
	if a.CVE != "" {
		v := s.sdo("vulnerability", a.CVE)
		if !s.b.Has(v.ID()) {
			v["name"] = a.CVE
			v["description"] = a.Name
			v["external_references"] = []map[string]string{{"source_name": "cve", "external_id": a.CVE}}
			s.b.Add(v)
		}
		s.rel("targets", ap, v.ID())
	}
	sg := stix.SDO("sighting", stix.ID("sighting", "attack", a.Name, a.Src.String(), a.Dst.String(), stix.Timestamp(a.Time)), s.now, s.me)
	sg["sighting_of_ref"] = ap
	sg["first_seen"] = stix.Timestamp(a.Time)
	sg["last_seen"] = stix.Timestamp(a.End)
	sg["count"] = max(a.Count, 1)
	sg["description"] = fmt.Sprintf("%s (%s, %s): %s", a.Name, a.Verdict, a.Severity, a.Summary)
	sg["where_sighted_refs"] = []string{s.me}
	sg["observed_data_refs"] = []string{s.observed(a)}
	s.b.Add(sg)
}

// observed records the attack's two endpoints as observed data.
func (s *stixWriter) observed(a *replay.Attack) string {
	refs := []string{s.addr(a.Src), s.addr(a.Dst)}
	o := stix.SDO("observed-data", stix.ID("observed-data", "attack", a.Name, a.Src.String(), a.Dst.String(), stix.Timestamp(a.Time)), s.now, s.me)
	o["first_observed"] = stix.Timestamp(a.Time)
	o["last_observed"] = stix.Timestamp(a.End)
	o["number_observed"] = max(a.Count, 1)
	o["object_refs"] = refs
	s.b.Add(o)
	return o.ID()
}

func (s *stixWriter) controller(c *Controller) {
	ip := s.addr(c.Addr)
	infra := s.sdo("infrastructure", "c2", c.Addr.String())
	infra["name"] = "command and control " + c.Label()
	infra["infrastructure_types"] = []string{"command-and-control"}
	infra["first_seen"] = stix.Timestamp(c.First)
	infra["last_seen"] = stix.Timestamp(c.Last)
	checks := "check in every " + hunt.FormatPeriod(c.PeriodSec)
	switch {
	case s.inc.blockKind(c.Addr) == BlockICMP:
		checks = "exchange data with it in ICMP echo"
	case c.PeriodSec == 0:
		checks = "talk to it, named by shared indicators"
	}
	infra["description"] = fmt.Sprintf("%s: %d inside host(s) %s (%s)", c.Label(), len(c.Hosts), checks, c.Severity)
	infra["kill_chain_phases"] = []map[string]string{{"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}}
	s.b.Add(infra)
	s.rel("consists-of", infra.ID(), ip)

	var inds []string
	ind := func(key, pattern, name string) {
		o := s.sdo("indicator", key)
		o["name"] = name
		o["pattern"] = pattern
		o["pattern_type"] = "stix"
		o["pattern_version"] = stix.SpecVersion
		o["valid_from"] = stix.Timestamp(c.First)
		o["indicator_types"] = []string{"malicious-activity"}
		o["kill_chain_phases"] = []map[string]string{{"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}}
		o["description"] = fmt.Sprintf("Inside hosts check in with %s every %s (%s, evidence %s)", c.Label(), hunt.FormatPeriod(c.PeriodSec), c.Severity, strings.Join(c.Findings, " "))
		if c.PeriodSec == 0 || s.inc.blockKind(c.Addr) == BlockICMP {
			o["description"] = fmt.Sprintf("Inside hosts %s %s (%s, evidence %s)", checks, c.Label(), c.Severity, strings.Join(c.Findings, " "))
		}
		s.b.Add(o)
		s.rel("indicates", o.ID(), infra.ID())
		for _, t := range c.Attack {
			s.rel("indicates", o.ID(), s.attackPattern(t))
		}
		inds = append(inds, o.ID())
	}
	ind(c.Addr.String(), fmt.Sprintf("[%s:value = %s]", addrSCO(c.Addr).Type(), stix.Quote(c.Addr.String())), "C2 address "+c.Addr.String())
	var names []string
	for _, n := range c.Names {
		d := stix.SCO("domain-name", map[string]any{"value": n})
		d["resolves_to_refs"] = []string{ip}
		s.b.Add(d)
		names = append(names, d.ID())
		s.rel("consists-of", infra.ID(), d.ID())
		ind(n, fmt.Sprintf("[domain-name:value = %s]", stix.Quote(n)), "C2 name "+n)
	}
	// Each inside host's traffic to it: observed, and a sighting of the
	// indicators at that host.
	for _, h := range c.Hosts {
		src := s.addr(h.Addr)
		nt := stix.SCO("network-traffic", map[string]any{"src_ref": src, "dst_ref": ip, "dst_port": int(h.Port),
			"protocols": []string{ipVersion(h.Addr), hunt.ProtoName(h.Proto)}, "start": stix.Timestamp(h.First)})
		s.b.Add(nt)
		od := s.sdo("observed-data", "c2", h.Addr.String(), c.Addr.String(), fmt.Sprint(h.Port))
		od["first_observed"] = stix.Timestamp(h.First)
		od["last_observed"] = stix.Timestamp(h.Last)
		od["number_observed"] = max(1, h.Connections)
		od["object_refs"] = append([]string{src, ip, nt.ID()}, names...)
		s.b.Add(od)
		for _, i := range inds {
			sg := s.sdo("sighting", i, h.Addr.String())
			sg["sighting_of_ref"] = i
			sg["observed_data_refs"] = []string{od.ID()}
			sg["where_sighted_refs"] = []string{s.hostID(h.Addr)}
			sg["first_seen"] = stix.Timestamp(h.First)
			sg["last_seen"] = stix.Timestamp(h.Last)
			sg["count"] = max(1, h.Connections)
			if !s.b.Has(s.hostID(h.Addr)) {
				// A host below the report's threshold still gets its identity.
				o := s.sdo("identity", "host", h.Addr.String())
				o["name"] = h.Addr.String()
				o["identity_class"] = "system"
				s.b.Add(o)
			}
			s.b.Add(sg)
		}
	}
}

func ipVersion(a netip.Addr) string {
	if a.Unmap().Is6() {
		return "ipv6"
	}
	return "ipv4"
}

// hostActivity adds what the host did: the implant behind its check-ins,
// and per host it reached the observed operations, the techniques that
// targeted it and their sightings.
func (s *stixWriter) hostActivity(h *Host) {
	var malware string
	if len(h.Controllers) > 0 && (h.Role == RoleSteppingStone || h.Role == RoleBeaconing) {
		m := s.sdo("malware", "implant", h.Addr.String())
		m["name"] = "implant on " + h.Label()
		m["is_family"] = false
		m["malware_types"] = []string{"backdoor", "remote-access-trojan"}
		m["description"] = "Unidentified implant inferred from periodic check-ins with a controller: " + h.Summary(s.inc)
		m["first_seen"] = stix.Timestamp(h.First)
		m["last_seen"] = stix.Timestamp(h.Last)
		s.b.Add(m)
		malware = m.ID()
		for _, c := range h.Controllers {
			s.rel("beacons-to", malware, stix.ID("infrastructure", "c2", c.String()))
		}
		for _, t := range h.Techniques {
			s.rel("uses", malware, s.attackPattern(t))
		}
	}
	src := s.addr(h.Addr)
	for _, r := range h.Reached {
		dst := s.addr(r.Host)
		ops := 0
		for _, e := range r.Evidence {
			if strings.HasPrefix(e, "OP") {
				ops++
			}
		}
		od := s.sdo("observed-data", "operations", h.Addr.String(), r.Host.String())
		od["first_observed"] = stix.Timestamp(r.First)
		od["last_observed"] = stix.Timestamp(r.Last)
		od["number_observed"] = max(1, ops)
		refs := []string{src, dst}
		for _, a := range r.Accounts {
			acct := userAccount(a)
			s.b.Add(acct)
			refs = append(refs, acct.ID())
		}
		od["object_refs"] = refs
		s.b.Add(od)
		target := s.hostID(r.Host)
		if !s.b.Has(target) {
			o := s.sdo("identity", "host", r.Host.String())
			o["name"] = s.inc.hostLabel(r.Host)
			o["identity_class"] = "system"
			s.b.Add(o)
		}
		if malware != "" {
			s.rel("targets", malware, target)
		}
		for _, t := range r.Techniques {
			ap := s.attackPattern(t)
			s.rel("targets", ap, target)
			sg := s.sdo("sighting", ap, h.Addr.String(), r.Host.String())
			sg["sighting_of_ref"] = ap
			sg["observed_data_refs"] = []string{od.ID()}
			sg["where_sighted_refs"] = []string{target}
			sg["first_seen"] = stix.Timestamp(r.First)
			sg["last_seen"] = stix.Timestamp(r.Last)
			sg["count"] = max(1, ops)
			sg["description"] = fmt.Sprintf("%s by %s against %s (%s)", t, h.Addr, r.Host, strings.Join(r.Evidence, " "))
			s.b.Add(sg)
		}
	}
}

// userAccount is the observable of a DOMAIN\user account.
func userAccount(a string) stix.Object {
	c := map[string]any{"user_id": a, "account_login": a}
	if strings.Contains(a, `\`) {
		c["account_type"] = "windows-domain"
	}
	o := stix.SCO("user-account", c)
	return o
}

func (s *stixWriter) courseOfAction(i int, a *Action) {
	o := s.sdo("course-of-action", string(a.Kind), a.Target, a.Host.String())
	o["name"] = fmt.Sprintf("%d. %s: %s", i+1, a.Kind, a.Target)
	var b strings.Builder
	fmt.Fprintf(&b, "Priority %d (urgency %d x criticality %s), escalate to %s. %s.", a.Priority, a.Urgency, a.Criticality, a.Escalation, a.Why)
	if len(a.Evidence) > 0 {
		fmt.Fprintf(&b, " Evidence: %s.", strings.Join(a.Evidence, " "))
	}
	for j, w := range a.Windows {
		if j == 5 {
			fmt.Fprintf(&b, " (%d more windows)", len(a.Windows)-j)
			break
		}
		fmt.Fprintf(&b, " Packets: %s.", w.Query())
	}
	o["description"] = b.String()
	s.b.Add(o)
	h := s.inc.Host(a.Host)
	if a.Kind == Block {
		for _, c := range s.inc.Controllers {
			if c.Label() == a.Target {
				s.rel("mitigates", o.ID(), stix.ID("indicator", c.Addr.String()))
				for _, n := range c.Names {
					s.rel("mitigates", o.ID(), stix.ID("indicator", n))
				}
			}
		}
		return
	}
	if a.Kind == BlockICMP {
		// The address's ICMP indicator (icmpIndicator) and its address
		// indicator, which the egress block enforces.
		for _, c := range s.inc.Controllers {
			if c.Label() == a.Target {
				s.rel("mitigates", o.ID(), stix.ID("indicator", c.Addr.String()))
				if id := stix.ID("indicator", "icmp", c.Addr.String()); s.b.Has(id) {
					s.rel("mitigates", o.ID(), id)
				}
			}
		}
		return
	}
	if a.Kind == Sinkhole {
		// The domain's indicator (dnsDomain), which the sinkhole enforces.
		if id := stix.ID("indicator", "dns", a.Target); s.b.Has(id) {
			s.rel("mitigates", o.ID(), id)
		}
		return
	}
	if h == nil {
		return
	}
	if a.Kind == ResetDomain {
		s.rel("mitigates", o.ID(), s.attackPattern("T1003.006"))
		return
	}
	techs := slices.Clone(h.Techniques)
	for _, t := range techs {
		s.rel("mitigates", o.ID(), s.attackPattern(t))
	}
	if len(h.Controllers) > 0 && (h.Role == RoleSteppingStone || h.Role == RoleBeaconing) && (a.Kind == Isolate || a.Kind == Collect) {
		s.rel("mitigates", o.ID(), stix.ID("malware", "implant", h.Addr.String()))
	}
}

// sighting tells the producer of a matched STIX indicator where it fired:
// a sighting of their indicator id, sighted by us, with the traffic seen
// as observed data.
func (s *stixWriter) sighting(m *IntelMatch) {
	ind := m.Indicator
	if !ind.STIX() {
		return
	}
	var refs []string
	for _, h := range m.Hosts {
		refs = append(refs, s.addr(h.Host))
		for _, p := range h.Peers {
			if p.Named {
				refs = append(refs, s.addr(p.Addr))
			}
		}
	}
	for _, v := range m.Values {
		if _, err := netip.ParseAddr(v); err == nil || strings.Contains(v, "/") {
			continue
		}
		d := stix.SCO("domain-name", map[string]any{"value": v})
		s.b.Add(d)
		refs = append(refs, d.ID())
	}
	slices.Sort(refs)
	refs = slices.Compact(refs)
	od := s.sdo("observed-data", "intel", ind.ID)
	od["first_observed"] = stix.Timestamp(m.First)
	od["last_observed"] = stix.Timestamp(m.Last)
	od["number_observed"] = max(1, m.Connections)
	od["object_refs"] = refs
	s.b.Add(od)
	sg := s.sdo("sighting", "intel", ind.ID)
	sg["sighting_of_ref"] = ind.ID
	sg["where_sighted_refs"] = []string{s.me}
	sg["observed_data_refs"] = []string{od.ID()}
	sg["first_seen"] = stix.Timestamp(m.First)
	// last_seen must not be before first_seen; milliseconds can make them
	// equal.
	sg["last_seen"] = stix.Timestamp(m.Last)
	sg["count"] = max(1, m.Connections)
	sg["description"] = fmt.Sprintf("%s fired on %d connection(s) from %d inside host(s), %d bytes, via %s (evidence %s). Packets: %s.",
		ind.Label(), m.Connections, len(m.Hosts), m.Bytes, strings.Join(m.Via, ", "), m.ID, MatchQuery(&m.Match))
	s.b.Add(sg)
}

// dnsDomain is a DNS command-and-control or tunnel finding: the registered
// domain as a domain-name indicator (what a resolver blocks), indicating
// its techniques, and the inside host that queried it.
func (s *stixWriter) dnsDomain(f *Finding) {
	d := stix.SCO("domain-name", map[string]any{"value": f.DstName})
	s.b.Add(d)
	o := s.sdo("indicator", "dns", f.DstName)
	o["name"] = "DNS C2 domain " + f.DstName
	o["pattern"] = fmt.Sprintf("[domain-name:value = %s]", stix.Quote(f.DstName))
	o["pattern_type"] = "stix"
	o["pattern_version"] = stix.SpecVersion
	o["valid_from"] = stix.Timestamp(f.FirstSeen)
	o["indicator_types"] = []string{"malicious-activity"}
	o["kill_chain_phases"] = []map[string]string{{"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}}
	o["description"] = fmt.Sprintf("%s queries names under %s (%s, evidence %s): %s", f.Src, f.DstName, f.Severity, f.ID, firstOr(f.Reasons, ""))
	s.b.Add(o)
	s.rel("related-to", o.ID(), d.ID())
	s.rel("related-to", o.ID(), s.addr(f.Src))
	for _, t := range f.Attack {
		s.rel("indicates", o.ID(), s.attackPattern(t))
	}
}

// icmpIndicator adds the indicator of an ICMP finding: ICMP to its
// outside address (command and control, or a tunnel, over echo).
func (s *stixWriter) icmpIndicator(f *Finding) {
	dst := f.Dst.Unmap()
	o := s.sdo("indicator", "icmp", dst.String())
	if s.b.Has(o.ID()) {
		return
	}
	typ := addrSCO(dst).Type()
	o["name"] = "ICMP C2 address " + dst.String()
	o["pattern"] = fmt.Sprintf("[network-traffic:dst_ref.type = %s AND network-traffic:dst_ref.value = %s AND network-traffic:protocols[*] = %s]",
		stix.Quote(typ), stix.Quote(dst.String()), stix.Quote(hunt.ProtoName(f.Proto)))
	o["pattern_type"] = "stix"
	o["pattern_version"] = stix.SpecVersion
	o["valid_from"] = stix.Timestamp(f.FirstSeen)
	o["indicator_types"] = []string{"malicious-activity"}
	o["kill_chain_phases"] = []map[string]string{{"kill_chain_name": "mitre-attack", "phase_name": "command-and-control"}}
	o["description"] = fmt.Sprintf("%s %s (%s, evidence %s): %s", f.Src, icmpSummary(&f.Finding), f.Severity, f.ID, firstOr(f.Reasons, ""))
	s.b.Add(o)
	s.rel("related-to", o.ID(), s.addr(dst))
	if id := stix.ID("infrastructure", "c2", dst.String()); s.b.Has(id) {
		s.rel("indicates", o.ID(), id)
	}
	for _, t := range f.Attack {
		s.rel("indicates", o.ID(), s.attackPattern(t))
	}
}
