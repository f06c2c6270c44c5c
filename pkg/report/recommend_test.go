package report

import (
	"net/netip"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/hunt"
)

func TestRecommend(t *testing.T) {
	ws := assets.Asset{Name: "ws", Criticality: assets.Low}
	dc := assets.Asset{Name: "dc", Criticality: assets.Critical}
	subjects := []Subject{
		{Host: netip.MustParseAddr("10.0.0.5"), Asset: ws, Severity: SevCritical, Score: 0.95, Beacon: true, Lateral: true,
			Dest: netip.MustParseAddr("203.0.113.7"), DestName: "c2.example.net"},
		{Host: netip.MustParseAddr("10.0.0.1"), Asset: dc, Severity: SevHigh, Score: 0.7, Lateral: true},
		{Host: netip.MustParseAddr("10.0.0.9"), Severity: SevMedium, Score: 0.45, Beacon: true, Dest: netip.MustParseAddr("198.51.100.1")},
		{Host: netip.MustParseAddr("10.0.0.5"), Asset: ws, Severity: SevMedium, Score: 0.5}, // watch is moot: isolated anyway
		{Host: netip.MustParseAddr("10.0.0.8"), Severity: SevInfo, Score: 0.1},
	}
	acts := Recommend(subjects)
	type row struct {
		kind ActionKind
		host string
		prio int
		esc  Escalation
	}
	want := []row{
		{Isolate, "10.0.0.1", 12, CSIRT}, // high severity x critical asset
		{Collect, "10.0.0.1", 12, CSIRT},
		{ResetCreds, "10.0.0.1", 12, CSIRT},
		{Isolate, "10.0.0.5", 4, CSIRT}, // critical severity x low-criticality workstation
		{Block, "10.0.0.5", 4, CSIRT},
		{Collect, "10.0.0.5", 4, CSIRT},
		{Watch, "10.0.0.9", 4, SOCMonitor},
		{ResetCreds, "10.0.0.5", 3, CSIRT},
	}
	if len(acts) != len(want) {
		for _, a := range acts {
			t.Logf("%+v", a)
		}
		t.Fatalf("got %d actions, want %d", len(acts), len(want))
	}
	for i, w := range want {
		a := acts[i]
		if a.Kind != w.kind || a.Host.String() != w.host || a.Priority != w.prio || a.Escalation != w.esc {
			t.Errorf("action %d = %s %s prio %d %s, want %s %s prio %d %s", i, a.Kind, a.Host, a.Priority, a.Escalation, w.kind, w.host, w.prio, w.esc)
		}
	}
	if acts[4].Target != "c2.example.net (203.0.113.7)" {
		t.Errorf("block target %q", acts[4].Target)
	}
	if got := Primary(subjects[0]); got != "isolate host (CSIRT)" {
		t.Errorf("Primary = %q", got)
	}
	if got := Primary(subjects[4]); got != "none" {
		t.Errorf("Primary(info) = %q", got)
	}
}

func TestEscalation(t *testing.T) {
	tests := []struct {
		sev  int
		crit assets.Criticality
		want Escalation
	}{
		{SevLow, assets.Low, SOCMonitor},
		{SevLow, assets.High, SOCInvestigate},
		{SevMedium, assets.Medium, SOCMonitor},
		{SevMedium, assets.Critical, SOCInvestigate},
		{SevHigh, assets.Unknown, SOCInvestigate},
		{SevHigh, assets.High, CSIRT},
		{SevCritical, assets.Low, CSIRT},
	}
	for _, tc := range tests {
		if got := escalate(tc.sev, tc.crit); got != tc.want {
			t.Errorf("escalate(%d, %v) = %v, want %v", tc.sev, tc.crit, got, tc.want)
		}
	}
}

// TestSubjectOfHost: a host finding whose strongest evidence is DNS gets
// the domain sinkholed, one whose strongest is ICMP the address's ICMP
// blocked, one whose strongest is a beacon channel the destination
// blocked, as their own findings would.
func TestSubjectOfHost(t *testing.T) {
	host := netip.MustParseAddr("10.0.0.5")
	for _, tc := range []struct {
		name   string
		f      hunt.Finding
		action ActionKind
		target string
	}{
		{"dns", hunt.Finding{Kind: hunt.KindHost, Src: host, Score: 0.78, Severity: hunt.High, C2Kind: hunt.KindDNS,
			BeaconDst: netip.MustParseAddr("10.0.0.53"), BeaconDstName: "dnsq.org"}, Sinkhole, "dnsq.org"},
		{"icmp", hunt.Finding{Kind: hunt.KindHost, Src: host, Score: 0.78, Severity: hunt.High, C2Kind: hunt.KindICMP,
			BeaconDst: netip.MustParseAddr("203.0.113.66")}, BlockICMP, "203.0.113.66"},
		{"beacon", hunt.Finding{Kind: hunt.KindHost, Src: host, Score: 0.7, Severity: hunt.High, C2Kind: hunt.KindChannel, Beacon: true,
			BeaconDst: netip.MustParseAddr("203.0.113.77")}, Block, "203.0.113.77"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			found := false
			for _, a := range Recommend([]Subject{SubjectOf(&tc.f, assets.Asset{})}) {
				got = append(got, string(a.Kind)+" "+a.Target)
				if a.Kind == tc.action && a.Target == tc.target {
					found = true
				}
				if a.Kind == Block && tc.action != Block {
					t.Errorf("a plain block for a %s host: %+v", tc.name, a)
				}
			}
			if !found {
				t.Errorf("actions %q, want %s %s", got, tc.action, tc.target)
			}
		})
	}
}
