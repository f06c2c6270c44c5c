package report

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/replay"
)

var day = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time {
	return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// Addresses of the fixture incident.
var (
	stone   = ip("10.0.0.5")     // beacons, then PsExec, WMI and DCSync
	c2      = ip("203.0.113.7")  // its controller
	psTgt   = ip("10.0.0.20")    // PsExec target
	wmiTgt  = ip("10.0.0.21")    // WMI target
	dc      = ip("10.0.0.1")     // DCSync and SAMR target
	fanTgt  = ip("10.0.0.22")    // fan-out only
	contact = ip("10.0.0.7")     // one connection to the controller
	widget  = ip("10.0.0.9")     // a medium single-host beacon
	lowBcn  = ip("10.0.0.11")    // a low beacon: left out
	recon   = ip("10.0.0.30")    // share enumeration only
	bening  = ip("198.51.100.1") // the widget's server
)

func fixtureInput(t *testing.T) Input {
	t.Helper()
	inv, err := assets.ParseInventory(strings.NewReader(`
- host: 10.0.0.1
  name: dc01
  criticality: critical
- host: 10.0.0.5
  name: ws-005
  criticality: medium
- host: 10.0.0.20
  name: app01
  criticality: high
`))
	if err != nil {
		t.Fatal(err)
	}
	findings := []hunt.Finding{
		{Kind: hunt.KindHost, Src: stone, Score: 0.97, Severity: hunt.Critical, FirstSeen: at(0, 0), LastSeen: at(23, 0),
			Beacon: true, Lateral: true, AdminPeers: 3, BeaconDst: c2, Attack: []string{"T1071.001", "T1021.002"},
			Reasons: []string{"beacons to c2.example.net"}},
		{Kind: hunt.KindChannel, Src: stone, Dst: c2, DstName: "c2.example.net", DstPort: 443, Proto: 6, Score: 0.9, Severity: hunt.Critical,
			PeriodSec: 60, Connections: 1200, FirstSeen: at(2, 0), LastSeen: at(22, 0), Beacon: true, Attack: []string{"T1071.001", "T1573"}},
		{Kind: hunt.KindChannel, Src: widget, Dst: bening, DstPort: 443, Proto: 6, Score: 0.5, Severity: hunt.Medium,
			PeriodSec: 120, Connections: 700, FirstSeen: at(0, 5), LastSeen: at(23, 50), Beacon: true, Attack: []string{"T1071.001"}},
		{Kind: hunt.KindHost, Src: widget, Score: 0.5, Severity: hunt.Medium, FirstSeen: at(0, 5), LastSeen: at(23, 50), Beacon: true, BeaconDst: bening},
		{Kind: hunt.KindChannel, Src: stone, Dst: fanTgt, DstPort: 445, Proto: 6, Score: 0.45, Severity: hunt.Medium,
			Connections: 2, FirstSeen: at(14, 30), LastSeen: at(14, 31), Lateral: true, Attack: []string{"T1021.002"}},
		{Kind: hunt.KindChannel, Src: lowBcn, Dst: ip("198.51.100.99"), DstPort: 443, Proto: 6, Score: 0.3, Severity: hunt.Low,
			PeriodSec: 900, FirstSeen: at(0, 0), LastSeen: at(23, 0), Beacon: true},
	}
	op := func(tm time.Time, dst netip.Addr, user, iface, name, target, tech, phase string) replay.Operation {
		return replay.Operation{Time: tm, End: tm.Add(200 * time.Millisecond), Src: stone, Dst: dst, SrcPort: 50000, DstPort: 445,
			User: user, Domain: "CORP", Auth: "ntlm", Transport: "smb2", Kind: "rpc", Interface: iface, Operation: name,
			Target: target, Technique: tech, Phase: phase}
	}
	ops := []replay.Operation{
		op(at(15, 5), dc, "adm", "drsuapi", "DRSGetNCChanges", "krbtgt", "T1003.006", "credential-access"),
		op(at(14, 40), psTgt, "adm", "smb", "tree connect", `\\10.0.0.20\ADMIN$`, "T1021.002", "lateral-movement"),
		op(at(14, 41), psTgt, "adm", "svcctl", "CreateServiceW", "PSEXESVC", "T1569.002", "execution"),
		op(at(14, 50), wmiTgt, "adm2", "IWbemServices", "ExecMethod", `\\10.0.0.21\ROOT\CIMV2`, "T1047", "execution"),
		op(at(15, 0), dc, "adm", "samr", "EnumerateUsersInDomain", "CORP", "T1087.002", "reconnaissance"),
		{Time: at(16, 0), End: at(16, 0), Src: recon, Dst: ip("10.0.0.31"), Interface: "srvsvc", Operation: "NetrShareEnum",
			Technique: "T1135", Phase: "reconnaissance", User: "bob", Domain: "CORP"},
	}
	noise := op(at(14, 42), psTgt, "adm", "svcctl", "CloseServiceHandle", "", "", "")
	noise.Noise = true
	ops = append(ops, noise)
	return Input{
		Hunt: hunt.Result{Findings: findings, Records: 5000, Hosts: 40, First: at(0, 0), Last: at(23, 59)},
		Contacts: func(dst netip.Addr) []hunt.Contact {
			if dst != c2 {
				return nil
			}
			return []hunt.Contact{
				{Src: stone, Port: 443, Proto: 6, Connections: 1200, First: at(2, 0), Last: at(22, 0)},
				{Src: contact, Port: 443, Proto: 6, Connections: 1, First: at(18, 0), Last: at(18, 0)},
			}
		},
		Operations:  ops,
		Inventory:   inv,
		MinSeverity: hunt.Medium,
	}
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, x := range s {
		out = append(out, ip(x))
	}
	return out
}

func TestBuildSteppingStone(t *testing.T) {
	inc := Build(fixtureInput(t))
	if len(inc.Hosts) == 0 || inc.Hosts[0].Addr != stone {
		t.Fatalf("first host %v, want the stepping stone", inc.Hosts)
	}
	h := inc.Hosts[0]
	if h.Role != RoleSteppingStone || h.Phase != PhaseLateral || h.Severity != hunt.Critical || !h.Compromised || !h.DCSync {
		t.Errorf("stepping stone: role %s phase %s severity %s compromised %v dcsync %v", h.Role, h.Phase, h.Severity, h.Compromised, h.DCSync)
	}
	if h.Asset.Name != "ws-005" || !h.Known || h.Label() != "10.0.0.5 (ws-005)" || h.Score != 0.97 {
		t.Errorf("asset %+v known %v label %q score %v", h.Asset, h.Known, h.Label(), h.Score)
	}
	if !slices.Equal(h.Controllers, []netip.Addr{c2}) {
		t.Errorf("controllers %v", h.Controllers)
	}
	if !slices.Equal(h.AccountsUsed, []string{`CORP\adm`, `CORP\adm2`}) || len(h.AccountsSeen) != 0 {
		t.Errorf("accounts used %v seen %v", h.AccountsUsed, h.AccountsSeen)
	}
	// The progression: C2 from 02:00, fan-out and lateral operations from
	// 14:30, then SAMR discovery and DCSync.
	var phases []string
	for _, s := range h.Steps {
		phases = append(phases, s.Phase)
	}
	if want := []string{PhaseC2, PhaseLateral, PhaseDiscovery, PhaseCredAccess}; !slices.Equal(phases, want) {
		t.Errorf("progression %v, want %v", phases, want)
	}
	c2s, lat := h.Steps[0], h.Steps[1]
	if !c2s.First.Equal(at(2, 0)) || !c2s.Last.Equal(at(22, 0)) || !slices.Equal(c2s.Peers, []netip.Addr{c2}) ||
		!slices.Equal(c2s.Techniques, []string{"T1071.001", "T1573"}) || !slices.Equal(c2s.Source, []string{"hunt"}) || c2s.Severity != hunt.Critical {
		t.Errorf("C2 step %+v", c2s)
	}
	if !lat.First.Equal(at(14, 30)) || !lat.Last.Equal(at(14, 50).Add(200*time.Millisecond)) || !slices.Equal(lat.Source, []string{"hunt", "replay"}) ||
		!slices.Equal(lat.Peers, addrs("10.0.0.20", "10.0.0.21", "10.0.0.22")) ||
		!slices.Equal(lat.Techniques, []string{"T1021.002", "T1047", "T1569.002"}) || len(lat.Examples) != maxExamples || lat.Severity != hunt.Critical {
		t.Errorf("lateral step %+v", lat)
	}
	// Impact scope: executed-on targets first, then the DC whose
	// directory was read, then the fan-out peer.
	var scope []string
	for _, r := range h.Reached {
		scope = append(scope, r.Host.String()+" "+r.Phase)
	}
	want := []string{"10.0.0.20 executed-on", "10.0.0.21 executed-on", "10.0.0.22 targeted", "10.0.0.1 targeted"}
	if !slices.Equal(scope, want) {
		t.Errorf("impact scope %v, want %v", scope, want)
	}
	if r := h.Reached[0]; !slices.Equal(r.Techniques, []string{"T1021.002", "T1569.002"}) || len(r.Evidence) != 2 || !r.First.Equal(at(14, 40)) {
		t.Errorf("reach of the PsExec target %+v", r)
	}
	// Evidence: every finding and operation of the host, and windows that
	// pull them.
	if len(h.Findings) != 3 || len(h.Operations) != 5 {
		t.Errorf("findings %v operations %v", h.Findings, h.Operations)
	}
	if len(h.Windows) == 0 {
		t.Fatal("no evidence windows")
	}
	for _, w := range h.Windows {
		if !w.From.Before(w.To) || len(w.Hosts) != 2 || w.Hosts[0] != stone && w.Hosts[1] != stone || len(w.Evidence) == 0 {
			t.Errorf("window %+v", w)
		}
	}
	if !strings.Contains(h.Summary(inc), "checks in with c2.example.net (203.0.113.7)") || !strings.Contains(h.Summary(inc), "DCSync") {
		t.Errorf("summary %q", h.Summary(inc))
	}
}

func TestBuildTargetsAndOthers(t *testing.T) {
	inc := Build(fixtureInput(t))
	get := func(a netip.Addr) *Host {
		h := inc.Host(a)
		if h == nil {
			t.Fatalf("host %s missing", a)
		}
		return h
	}
	ps := get(psTgt)
	if ps.Role != RoleTarget || ps.Phase != PhaseExecutedOn || !ps.Compromised || ps.Severity != hunt.High ||
		!slices.Equal(ps.ReachedBy, []netip.Addr{stone}) || !slices.Equal(ps.AccountsSeen, []string{`CORP\adm`}) {
		t.Errorf("PsExec target %+v", ps)
	}
	if len(ps.Steps) != 2 || ps.Steps[0].Phase != PhaseAccessed || ps.Steps[1].Phase != PhaseExecutedOn {
		t.Errorf("PsExec target steps %+v", ps.Steps)
	}
	d := get(dc)
	if d.Role != RoleTarget || d.Phase != PhaseTargeted || d.Compromised || d.Severity != hunt.Medium || d.Asset.Criticality != assets.Critical {
		t.Errorf("DC %+v", d)
	}
	// The fan-out peer is info on its own, but in the stepping stone's
	// impact scope: kept.
	if f := get(fanTgt); f.Role != RoleTarget || f.Phase != PhaseTargeted || f.Severity != hunt.Info {
		t.Errorf("fan-out peer %+v", f)
	}
	ct := get(contact)
	if ct.Role != RoleBeaconing || ct.Severity != hunt.High || !ct.Compromised || !slices.Equal(ct.Controllers, []netip.Addr{c2}) {
		t.Errorf("host with one connection to the controller %+v", ct)
	}
	w := get(widget)
	if w.Role != RoleBeaconing || w.Severity != hunt.Medium || w.Compromised {
		t.Errorf("widget %+v", w)
	}
	for _, a := range []netip.Addr{lowBcn, recon, ip("10.0.0.31")} {
		if inc.Host(a) != nil {
			t.Errorf("host %s below the minimum severity is listed", a)
		}
	}
	if inc.Severity != hunt.Critical || inc.Compromised != 4 || inc.Records != 5000 || inc.Population != 40 || inc.AllOps != 7 {
		t.Errorf("incident severity %s compromised %d records %d population %d ops %d", inc.Severity, inc.Compromised, inc.Records, inc.Population, inc.AllOps)
	}
	// Hosts: most severe first.
	for i := 1; i < len(inc.Hosts); i++ {
		if inc.Hosts[i].Severity > inc.Hosts[i-1].Severity {
			t.Errorf("host %d (%s) more severe than host %d", i, inc.Hosts[i].Addr, i-1)
		}
	}
}

func TestBuildControllersAndOperations(t *testing.T) {
	inc := Build(fixtureInput(t))
	if len(inc.Controllers) != 2 {
		t.Fatalf("controllers %+v", inc.Controllers)
	}
	c := inc.Controllers[0]
	if c.Addr != c2 || c.Label() != "c2.example.net (203.0.113.7)" || c.Severity != hunt.Critical || c.PeriodSec != 60 ||
		!slices.Equal(c.Ports, []uint16{443}) || !slices.Equal(c.Attack, []string{"T1071.001", "T1573"}) {
		t.Errorf("controller %+v", c)
	}
	if len(c.Hosts) != 2 || c.Hosts[0].Addr != stone || c.Hosts[0].Finding == "" || c.Hosts[1].Addr != contact || c.Hosts[1].Finding != "" || c.Hosts[1].Connections != 1 {
		t.Errorf("controller hosts %+v", c.Hosts)
	}
	if inc.Controllers[1].Addr != bening || inc.Controllers[1].Severity != hunt.Medium {
		t.Errorf("second controller %+v", inc.Controllers[1])
	}
	// Operations: plumbing left out, ids in time order, each linked to its
	// source's role, findings and controllers.
	if len(inc.Operations) != 6 {
		t.Fatalf("%d operations", len(inc.Operations))
	}
	for i, op := range inc.Operations {
		if op.ID != fmt.Sprintf("OP%d", i+1) || op.Noise || i > 0 && op.Time.Before(inc.Operations[i-1].Time) {
			t.Errorf("operation %d: %s %v at %v", i, op.ID, op.Noise, op.Time)
		}
		if op.Src == stone && (op.SrcRole != RoleSteppingStone || len(op.SrcFindings) != 3 || !slices.Equal(op.Controllers, []netip.Addr{c2})) {
			t.Errorf("operation %s not linked to its stepping stone: %s %v %v", op.ID, op.SrcRole, op.SrcFindings, op.Controllers)
		}
	}
	// Findings below the minimum severity are left out; ids follow rank.
	if len(inc.Findings) != 5 || inc.Findings[0].ID != "F1" || inc.Findings[0].Src != stone {
		t.Errorf("findings %+v", inc.Findings)
	}
	for i := 1; i < len(inc.Timeline); i++ {
		if inc.Timeline[i].Time.Before(inc.Timeline[i-1].Time) {
			t.Errorf("timeline out of order at %d", i)
		}
	}
	kinds := map[string]int{}
	for _, e := range inc.Timeline {
		kinds[e.Kind]++
		if e.Evidence == "" || e.Summary == "" {
			t.Errorf("event without evidence or summary %+v", e)
		}
	}
	if kinds["beacon"] != 2 || kinds["fan-out"] != 1 || kinds["operation"] != 6 {
		t.Errorf("timeline kinds %v", kinds)
	}
}

func TestIncidentActions(t *testing.T) {
	inc := Build(fixtureInput(t))
	if len(inc.Actions) == 0 {
		t.Fatal("no actions")
	}
	a := inc.Actions[0]
	// The stepping stone is a medium workstation, but it reached a
	// critical DC: isolating it comes first.
	if a.Kind != Isolate || a.Host != stone || a.Criticality != assets.Critical || a.Priority != 16 || a.Escalation != CSIRT {
		t.Errorf("first action %+v", a)
	}
	if !strings.Contains(a.Why, "stepping-stone") || !strings.Contains(a.Why, "dc01") {
		t.Errorf("why %q", a.Why)
	}
	kinds := map[ActionKind][]string{}
	for _, a := range inc.Actions {
		kinds[a.Kind] = append(kinds[a.Kind], a.Target)
		if a.Why == "" || len(a.Evidence) == 0 {
			t.Errorf("action without a reason: %+v", a)
		}
		for _, e := range a.Evidence {
			if inc.Finding(e) == nil && !slices.ContainsFunc(inc.Operations, func(o Operation) bool { return o.ID == e }) {
				t.Errorf("action %s %s names unknown evidence %s", a.Kind, a.Target, e)
			}
		}
	}
	if !slices.Contains(kinds[Block], "c2.example.net (203.0.113.7)") {
		t.Errorf("block targets %v", kinds[Block])
	}
	if !slices.Equal(kinds[ResetDomain], []string{"directory replicated from 10.0.0.1"}) {
		t.Errorf("domain reset %v", kinds[ResetDomain])
	}
	if !slices.Contains(kinds[ResetCreds], `CORP\adm, CORP\adm2`) {
		t.Errorf("credential resets %v", kinds[ResetCreds])
	}
	if !slices.Contains(kinds[Isolate], "10.0.0.20") || !slices.Contains(kinds[Collect], "10.0.0.20") {
		t.Errorf("the PsExec target is neither isolated nor collected: %v", kinds)
	}
	if !slices.Contains(kinds[Watch], "10.0.0.1") || !slices.Contains(kinds[Watch], "10.0.0.9") {
		t.Errorf("watch %v", kinds[Watch])
	}
	// The block action's evidence is the beacon, with its window.
	for _, a := range inc.Actions {
		if a.Kind == Block && a.Host == stone {
			// One block for the controller, with the windows of both
			// hosts that talk to it.
			if len(a.Windows) != 2 {
				t.Errorf("block windows %+v", a.Windows)
			}
			for _, w := range a.Windows {
				if w.Port != 443 || !slices.Contains(w.Hosts, c2) {
					t.Errorf("block window %+v", w)
				}
			}
		}
	}
	for i := 1; i < len(inc.Actions); i++ {
		if inc.Actions[i].Priority > inc.Actions[i-1].Priority {
			t.Errorf("action %d out of order", i)
		}
	}
}

// TestReplayTechniquesNamed: the techniques replay's newer decoders give
// (remote shutdown, DNS server plugin and ADIDNS, terminal-services
// sessions, group keys, address book, endpoint interfaces, WinRM shells
// and their commands) are named in
// the report and STIX with their tactic.
func TestReplayTechniquesNamed(t *testing.T) {
	for id, tactic := range map[string]string{"T1529": "impact", "T1543.003": "persistence", "T1557": "credential-access",
		"T1018": "discovery", "T1033": "discovery", "T1563.002": "lateral-movement", "T1057": "discovery",
		"T1555": "credential-access", "T1087.003": "discovery", "T1046": "discovery",
		"T1021.006": "lateral-movement", "T1059.001": "execution", "T1059.003": "execution",
		"T1071.002": "command-and-control", "T1090.001": "command-and-control"} {
		if techniques[id].Name == "" || techniques[id].Tactic != tactic {
			t.Errorf("%s: %+v, want tactic %s", id, techniques[id], tactic)
		}
	}
}

func TestPhaseMaps(t *testing.T) {
	tests := []struct{ replay, actor, target string }{
		{"reconnaissance", PhaseDiscovery, PhaseTargeted},
		{"credential-access", PhaseCredAccess, PhaseTargeted},
		{"lateral-movement", PhaseLateral, PhaseAccessed},
		{"execution", PhaseLateral, PhaseExecutedOn},
		{"persistence", PhaseLateral, PhaseExecutedOn},
		{"defense-evasion", PhaseLateral, PhaseExecutedOn},
		{"collection", PhaseCollection, PhaseAccessed},
		{"exfiltration", PhaseCollection, PhaseAccessed},
		{"impact", PhaseLateral, PhaseExecutedOn},
		{"command-and-control", PhaseLateral, PhaseC2},
		{"", "", ""},
	}
	for _, tc := range tests {
		if a, g := actorPhase(tc.replay), targetPhase(tc.replay); a != tc.actor || g != tc.target {
			t.Errorf("%q: actor %q target %q, want %q %q", tc.replay, a, g, tc.actor, tc.target)
		}
	}
	for _, p := range replay.PhaseOrder {
		if actorPhase(p) == "" || targetPhase(p) == "" {
			t.Errorf("replay phase %q is not mapped", p)
		}
	}
	if PhaseRank(PhaseLateral) != len(Phases)-1 || PhaseRank("") != -1 || PhaseRank(PhaseTargeted) != 0 {
		t.Errorf("ranks")
	}
}

func TestWindows(t *testing.T) {
	a, b := ip("10.0.0.1"), ip("10.0.0.2")
	ws := mergeWindows([]Window{
		{From: at(10, 0), To: at(10, 1), Hosts: []netip.Addr{a, b}, Evidence: []string{"OP1"}},
		{From: at(10, 2), To: at(10, 3), Hosts: []netip.Addr{a, b}, Evidence: []string{"OP2"}}, // within the gap: joined
		{From: at(11, 0), To: at(11, 1), Hosts: []netip.Addr{a, b}, Evidence: []string{"OP3"}}, // an hour later: apart
		{From: at(10, 0), To: at(12, 0), Hosts: []netip.Addr{a, c2}, Port: 443, Proto: 6, Evidence: []string{"F1"}},
	})
	if len(ws) != 3 {
		t.Fatalf("windows %+v", ws)
	}
	if !ws[0].To.Equal(at(10, 3)) || !slices.Equal(ws[0].Evidence, []string{"OP1", "OP2"}) || ws[1].Port != 443 || !ws[2].From.Equal(at(11, 0)) {
		t.Errorf("merged %+v", ws)
	}
	if f := ws[1].Filter(); f != "host 10.0.0.1 and host 203.0.113.7 and tcp port 443" {
		t.Errorf("filter %q", f)
	}
	if q := ws[0].Query(); q != "nwhealth query --store STORE --from 2026-03-02T10:00:00Z --to 2026-03-02T10:03:00Z --host 10.0.0.1 --filter 'host 10.0.0.1 and host 10.0.0.2' -w evidence.pcap" {
		t.Errorf("query %q", q)
	}
}

func TestBuildEmpty(t *testing.T) {
	inc := Build(Input{})
	if len(inc.Hosts)+len(inc.Controllers)+len(inc.Actions)+len(inc.Timeline) != 0 || inc.Severity != hunt.Info {
		t.Errorf("empty input gave %+v", inc)
	}
}

// TestBuildDNSFinding: a DNS finding at medium or above puts its host at
// command-and-control like a beacon channel (a C2 step with the DNS
// techniques, a timeline event, compromised from high, a stepping stone
// with operations), its domain sinkholed and no address made a
// controller; below medium it is seen only.
func TestBuildDNSFinding(t *testing.T) {
	host, resolver := ip("10.0.0.40"), ip("10.0.0.53")
	dnsF := func(sev hunt.Severity, attack ...string) hunt.Finding {
		return hunt.Finding{Kind: hunt.KindDNS, Src: host, Dst: resolver, DstName: "dnsq.org", DstPort: 53, Proto: 17, Score: 0.5,
			Severity: sev, PeriodSec: 60, Connections: 200, FirstSeen: at(1, 0), LastSeen: at(5, 0), Beacon: true, Attack: attack,
			DNS: &hunt.DNSEvidence{Queries: 240}, Reasons: []string{"encoded subdomains"}}
	}
	lateral := replay.Operation{Time: at(3, 0), End: at(3, 0), Src: host, Dst: psTgt, DstPort: 445, Interface: "svcctl", Operation: "CreateServiceW",
		Technique: "T1569.002", Phase: "execution", User: "adm", Domain: "CORP"}
	for _, tc := range []struct {
		name       string
		f          hunt.Finding
		ops        []replay.Operation
		step       bool
		role       string
		compromise bool
		summary    string
	}{
		{"high tunnel", dnsF(hunt.High, "T1071.004", "T1572"), nil, true, RoleBeaconing, true, "tunnels through DNS under dnsq.org, asking 10.0.0.53 (240 queries)"},
		{"medium beacon", dnsF(hunt.Medium, "T1071.004"), nil, true, RoleBeaconing, false, "checks in by DNS under dnsq.org, asking 10.0.0.53 every 60s (240 queries)"},
		{"medium beacon that executes on another host", dnsF(hunt.Medium, "T1071.004"), []replay.Operation{lateral}, true, RoleSteppingStone, true, ""},
		{"low: seen only", dnsF(hunt.Low, "T1071.004"), nil, false, RoleSuspect, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inc := Build(Input{Hunt: hunt.Result{Findings: []hunt.Finding{tc.f}, Records: 100, Hosts: 10, First: at(0, 0), Last: at(6, 0)},
				Operations: tc.ops, MinSeverity: hunt.Low})
			i := slices.IndexFunc(inc.Hosts, func(h Host) bool { return h.Addr == host })
			if i < 0 && !tc.step {
				// Seen only: no host of the incident.
				if len(inc.Timeline) != 0 || len(inc.Actions) != 0 {
					t.Errorf("timeline %+v, actions %+v", inc.Timeline, inc.Actions)
				}
				return
			}
			if i < 0 {
				t.Fatalf("no host %s: %+v", host, inc.Hosts)
			}
			h := inc.Hosts[i]
			si := slices.IndexFunc(h.Steps, func(s Step) bool { return s.Phase == PhaseC2 })
			if (si >= 0) != tc.step || h.Role != tc.role || h.Compromised != tc.compromise {
				t.Errorf("C2 step %v (want %v), role %s (want %s), compromised %v (want %v)", si >= 0, tc.step, h.Role, tc.role, h.Compromised, tc.compromise)
			}
			if si >= 0 {
				s := h.Steps[si]
				if !slices.Equal(s.Techniques, tc.f.Attack) || !slices.Equal(s.Peers, []netip.Addr{resolver}) || len(s.Evidence) != 1 {
					t.Errorf("step %+v", s)
				}
				if tc.summary != "" && (len(s.Examples) == 0 || s.Examples[0] != tc.summary) {
					t.Errorf("examples %q, want %q", s.Examples, tc.summary)
				}
			}
			ev := slices.IndexFunc(inc.Timeline, func(e Event) bool { return e.Kind == "dns" })
			if (ev >= 0) != tc.step {
				t.Errorf("timeline dns event %v, want %v: %+v", ev >= 0, tc.step, inc.Timeline)
			} else if ev >= 0 && (inc.Timeline[ev].Phase != PhaseC2 || inc.Timeline[ev].Src != host || tc.summary != "" && inc.Timeline[ev].Summary != tc.summary) {
				t.Errorf("timeline event %+v", inc.Timeline[ev])
			}
			if len(inc.Controllers) != 0 {
				t.Errorf("controllers %+v: a DNS finding names a domain, not an address", inc.Controllers)
			}
			sink := slices.IndexFunc(inc.Actions, func(a Action) bool { return a.Kind == Sinkhole && a.Target == "dnsq.org" })
			if (sink >= 0) != (tc.f.Severity >= hunt.Medium) {
				t.Errorf("sinkhole %v, want %v: %+v", sink >= 0, tc.f.Severity >= hunt.Medium, inc.Actions)
			} else if sink >= 0 && (!slices.Equal(inc.Actions[sink].Evidence, []string{"F1"}) || len(inc.Actions[sink].Windows) != 1) {
				t.Errorf("sinkhole evidence %v, windows %v: want the DNS finding's", inc.Actions[sink].Evidence, inc.Actions[sink].Windows)
			}
		})
	}
}

// TestPipeChannelHosts: replay's named-pipe C2 channel makes its server
// end a controlled host and its client end a lateral source, both at the
// channel's severity (high when corroborated, medium on data both ways
// alone); the controlled host is isolated and collected when high,
// watched when medium, and nothing inside is sent to a firewall.
func TestPipeChannelHosts(t *testing.T) {
	parent, child := ip("10.0.0.5"), ip("10.0.0.9")
	for _, tc := range []struct {
		name       string
		fields     []replay.Field
		sev        hunt.Severity
		compromise bool
		actions    []ActionKind // the child's
	}{
		{"framework name", []replay.Field{{Name: "framework", Value: "Cobalt Strike's default SMB beacon pipe name (msagent_##)"}}, hunt.High, true, []ActionKind{Isolate, Collect}},
		{"length framing", []replay.Field{{Name: "framing", Value: "4-byte little-endian length"}}, hunt.High, true, []ActionKind{Isolate, Collect}},
		{"data both ways alone", nil, hunt.Medium, false, []ActionKind{Watch}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := replay.Operation{Time: at(3, 0), End: at(4, 0), Src: parent, Dst: child, SrcPort: 50000, DstPort: 445,
				User: "adm", Domain: "CORP", Auth: "ntlm", Transport: "smb2", Kind: "pipe", Pipe: `\pipe\msagent_12`,
				Operation: "pipe channel", Target: `\pipe\msagent_12`, Technique: "T1071.002", Phase: "command-and-control", Fields: tc.fields}
			inc := Build(Input{Hunt: hunt.Result{Records: 100, Hosts: 10, First: at(0, 0), Last: at(6, 0)},
				Operations: []replay.Operation{op}, MinSeverity: hunt.Low})
			if len(inc.Attacks) != 1 || inc.Attacks[0].Technique != "T1071.002" {
				t.Fatalf("attacks %+v", inc.Attacks)
			}
			c, p := inc.Host(child), inc.Host(parent)
			if c == nil || p == nil {
				t.Fatalf("hosts %+v", inc.Hosts)
			}
			if c.Role != RoleBeaconing || c.Phase != PhaseC2 || c.Severity != tc.sev || c.Compromised != tc.compromise || len(c.Controllers) != 0 {
				t.Errorf("child: role %s phase %s severity %s compromised %v controllers %v", c.Role, c.Phase, c.Severity, c.Compromised, c.Controllers)
			}
			if want := "controlled over SMB named pipes from 10.0.0.5"; !strings.Contains(c.Summary(inc), want) {
				t.Errorf("child summary %q, want %q in it", c.Summary(inc), want)
			}
			if p.Role != RoleLateralSource || p.Severity != tc.sev || p.Compromised != tc.compromise {
				t.Errorf("parent: role %s severity %s compromised %v", p.Role, p.Severity, p.Compromised)
			}
			var kinds []ActionKind
			for _, a := range inc.Actions {
				if a.Kind == Block || a.Kind == BlockICMP || a.Kind == Sinkhole {
					t.Errorf("edge action %+v: the controller is inside", a)
				}
				if a.Host == child {
					kinds = append(kinds, a.Kind)
					if len(a.Evidence) == 0 {
						t.Errorf("action without evidence: %+v", a)
					}
				}
			}
			slices.Sort(kinds)
			want := slices.Clone(tc.actions)
			slices.Sort(want)
			if !slices.Equal(kinds, want) {
				t.Errorf("child's actions %v, want %v", kinds, want)
			}
			ev := slices.IndexFunc(inc.Timeline, func(e Event) bool { return e.Kind == "attack" })
			if ev < 0 || inc.Timeline[ev].Phase != PhaseLateral || inc.Timeline[ev].Severity != tc.sev {
				t.Errorf("attack event %+v", inc.Timeline)
			}
		})
	}
}
