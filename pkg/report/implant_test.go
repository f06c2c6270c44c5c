package report

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/replay"
)

// TestImplantAfterExecution: a schedule that begins on a host after code
// was run on it remotely is raised to high, its destination (inside here,
// as in a lab) becomes a controller, and the host is isolated. A schedule
// that was there before, one to the host that ran the code, and an
// inbound one stay as hunt gave them.
func TestImplantAfterExecution(t *testing.T) {
	var (
		admin = ip("10.0.0.46")
		dcA   = ip("10.0.0.195")
		ctl   = ip("10.0.0.161")
		old   = ip("10.0.0.50")
		out   = ip("198.51.100.7")
	)
	chanF := func(src, dst netip.Addr, port uint16, first int, dir hunt.Direction) hunt.Finding {
		return hunt.Finding{Kind: hunt.KindChannel, Src: src, Dst: dst, DstPort: port, Proto: 6, Score: 0.21, Severity: hunt.Low,
			PeriodSec: 5, Connections: 30, FirstSeen: at(10, first), LastSeen: at(11, 0), Beacon: true, Direction: dir,
			Attack: []string{"T1071.001"}}
	}
	slow := chanF(dcA, ip("10.0.0.77"), 8443, 5, hunt.Internal)
	slow.PeriodSec = 900
	findings := []hunt.Finding{
		chanF(dcA, ctl, 80, 5, hunt.Internal),     // after the execution at 10:02
		chanF(dcA, old, 8080, 0, hunt.Internal),   // before it
		chanF(dcA, admin, 9999, 6, hunt.Internal), // to the host that ran the code
		chanF(out, dcA, 443, 7, hunt.Inbound),     // polled from outside
		slow,                                      // a period longer than the data before the execution
		{Kind: hunt.KindHost, Src: dcA, Score: 0.21, Severity: hunt.Low, FirstSeen: at(10, 0), LastSeen: at(11, 0), Beacon: true},
	}
	ops := []replay.Operation{{Time: at(10, 2), End: at(10, 2), Src: admin, Dst: dcA, Interface: "IWbemServices", Operation: "ExecMethod",
		Target: `\\dc\ROOT\CIMV2`, Technique: "T1047", Phase: "execution", User: "adm", Domain: "CORP"}}
	in := Input{Hunt: hunt.Result{Findings: findings, Records: 500, Hosts: 3, First: at(10, 0), Last: at(11, 0)}, Operations: ops, MinSeverity: hunt.Low}
	inc := Build(in)

	sev := map[netip.Addr]hunt.Severity{}
	for _, f := range inc.Findings {
		if f.Kind == hunt.KindChannel {
			sev[f.Dst] = f.Severity
			if f.Dst == ctl && !strings.Contains(strings.Join(f.Reasons, ";"), "after 10.0.0.46 ran code on this host") {
				t.Errorf("raised channel's reasons: %q", f.Reasons)
			}
		}
	}
	want := map[netip.Addr]hunt.Severity{ctl: hunt.High, old: hunt.Low, admin: hunt.Low, dcA: hunt.Low, ip("10.0.0.77"): hunt.Low}
	for a, w := range want {
		if sev[a] != w {
			t.Errorf("channel to %v: %v, want %v", a, sev[a], w)
		}
	}
	if findings[0].Severity != hunt.Low {
		t.Error("the caller's findings were changed")
	}
	if !slices.ContainsFunc(inc.Controllers, func(c Controller) bool { return c.Addr == ctl }) {
		t.Errorf("controllers %+v lack the inside controller", inc.Controllers)
	}
	if slices.ContainsFunc(inc.Controllers, func(c Controller) bool { return c.Addr == old }) {
		t.Error("the schedule from before the execution made a controller")
	}
	var kinds []ActionKind
	for _, a := range inc.Actions {
		if a.Host == dcA {
			kinds = append(kinds, a.Kind)
		}
	}
	for _, k := range []ActionKind{Isolate, Block, Collect} {
		if !slices.Contains(kinds, k) {
			t.Errorf("actions for the host %v lack %q", kinds, k)
		}
	}
}
