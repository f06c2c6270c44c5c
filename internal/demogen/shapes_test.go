package demogen

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/hunt"
)

// TestHuntShapes: the sample with every shape (a beacon inside kept-alive
// connections, a network behind a forward proxy, a web shell polled from
// outside) hunted from its packets. Each command-and-control channel is
// high or above and ranks above every hard negative (a kept-alive ticker,
// a widget through the proxy, an uptime monitor's probes); the compromised
// hosts are the first host findings.
func TestHuntShapes(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and hunts four hours of traffic")
	}
	path := filepath.Join(t.TempDir(), "shapes.pcap")
	l, err := generateFile(path, Config{Duration: DefaultDuration, Workstations: 24, Shapes: Shapes{KeepAlive: true, Proxy: true, Inbound: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.C2Pairs) != 5 || len(l.Compromised) != 5 {
		t.Fatalf("labels: %d pairs, %d compromised", len(l.C2Pairs), len(l.Compromised))
	}
	res := huntSample(t, path)
	var channels, hosts []hunt.Finding
	for _, f := range res.Findings {
		if f.Kind == hunt.KindChannel {
			channels = append(channels, f)
		} else {
			hosts = append(hosts, f)
		}
	}
	rank := func(p Pair) (int, *hunt.Finding) {
		for i := range channels {
			if f := &channels[i]; f.Src.String() == p.Src && f.Dst.String() == p.Dst && int(f.DstPort) == p.Port {
				return i + 1, f
			}
		}
		return len(channels) + 1, nil
	}
	worst := 0
	for _, p := range l.C2Pairs {
		r, f := rank(p)
		if f == nil || f.Severity < hunt.High || !f.Beacon {
			t.Errorf("c2 %s -> %s:%d (%s): rank %d, %+v", p.Src, p.Dst, p.Port, p.Note, r, f)
			continue
		}
		worst = max(worst, r)
		switch p.Dst {
		case "192.0.2.77":
			if f.Via.String() != "10.20.0.8" || f.DstName != "update-check.example.net" || f.Direction != hunt.Outbound {
				t.Errorf("proxied beacon: via %v name %q %v", f.Via, f.DstName, f.Direction)
			}
		case "10.20.0.80":
			if f.Direction != hunt.Inbound {
				t.Errorf("web shell: %v", f.Direction)
			}
		}
	}
	for _, p := range l.HardNegative {
		if r, f := rank(p); r <= worst || f != nil && f.Severity >= hunt.High {
			t.Errorf("hard negative %s -> %s (%s) ranks %d, above the c2 at %d", p.Src, p.Dst, p.Note, r, worst)
		}
	}
	for i, h := range hosts[:len(l.Compromised)] {
		if !slices.Contains(l.Compromised, h.Src.String()) {
			t.Errorf("host %d is %s (%.2f), not a compromised one", i+1, h.Src, h.Score)
		}
	}
	// The proxy is no destination, nor a source of relayed channels.
	for _, f := range channels {
		if f.Src.String() == "10.20.0.8" || f.Dst.String() == "10.20.0.8" {
			t.Errorf("proxy in a channel finding: %v -> %v:%d %.2f", f.Src, f.Dst, f.DstPort, f.Score)
		}
	}
}
