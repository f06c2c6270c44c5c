package report

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/intel"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
	"github.com/nwhealth/nwhealth/pkg/report/stix/stixtest"
)

// intelInput matches the partner bundle of pkg/intel against a few flow
// records: one host talks to the partner's C2 address (a high indicator),
// another resolves the partner's domain, a third touches the medium
// hosting range.
func intelInput(t *testing.T) (Input, *intel.Set) {
	t.Helper()
	r := intel.NewReader()
	f, err := os.Open("../intel/testdata/partner.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r.Read(f, "partner.json")
	set := r.Finish()
	c := intel.NewCollector(intel.NewMatcher(set))
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	mk := func(i int, orig, resp string, port uint16, name string, src flow.NameSource, answers ...string) *flow.Record {
		r := &flow.Record{First: t0.Add(time.Duration(i) * time.Minute), Last: t0.Add(time.Duration(i)*time.Minute + time.Second), Proto: 6,
			Orig: netip.MustParseAddr(orig), Resp: netip.MustParseAddr(resp), OrigPort: 50000, RespPort: port, OrigBytes: 500, RespBytes: 1500,
			Name: name, NameSource: src}
		if port == 53 {
			r.Proto = 17
		}
		for _, a := range answers {
			r.Answers = append(r.Answers, netip.MustParseAddr(a))
		}
		return r
	}
	for i := range 5 {
		c.Add(mk(i, "10.1.1.5", "203.0.113.77", 443, "", 0))
	}
	c.Add(mk(7, "10.1.1.6", "10.0.0.53", 53, "update.bad-cdn.example", flow.NameDNS, "192.0.2.44"))
	c.Add(mk(8, "10.1.1.7", "198.51.100.20", 8080, "", 0))
	c.Add(mk(9, "10.1.1.8", "192.0.2.1", 443, "example.org", flow.NameSNI))
	return Input{Hunt: hunt.Result{Records: c.Records, First: t0, Last: t0.Add(10 * time.Minute)}, Intel: c.Matches(), MinSeverity: hunt.Medium}, set
}

func TestIntelInIncident(t *testing.T) {
	in, _ := intelInput(t)
	inc := Build(in)
	if len(inc.Intel) != 3 {
		t.Fatalf("%d indicator matches, want 3", len(inc.Intel))
	}
	h := inc.Host(netip.MustParseAddr("10.1.1.5"))
	if h == nil || h.Role != RoleBeaconing || h.Phase != PhaseC2 || !h.Compromised || h.Severity != hunt.High ||
		!slices.Equal(h.Controllers, []netip.Addr{netip.MustParseAddr("203.0.113.77")}) {
		t.Fatalf("host 10.1.1.5: %+v", h)
	}
	if s := h.Steps[0]; !slices.Equal(s.Source, []string{"intel"}) || s.Evidence[0] != "I1" || !strings.Contains(s.Examples[0], "C2 address of the loader") {
		t.Errorf("step %+v", s)
	}
	if len(h.Windows) != 1 || h.Windows[0].Port != 443 || !strings.Contains(h.Windows[0].Query(), "--host 10.1.1.5") {
		t.Errorf("windows %+v", h.Windows)
	}
	if sum := h.Summary(inc); !strings.Contains(sum, "talks to 203.0.113.77, named by shared indicators") {
		t.Errorf("summary %q", sum)
	}
	// The resolver of the domain is a window, not a controller; the
	// resolved address is outside and named: a controller.
	d := inc.Host(netip.MustParseAddr("10.1.1.6"))
	if d == nil || slices.Contains(d.Controllers, netip.MustParseAddr("10.0.0.53")) || !slices.Contains(d.Controllers, netip.MustParseAddr("192.0.2.44")) {
		t.Errorf("dns host %+v", d)
	}
	var blocks []string
	for _, a := range inc.Actions {
		if a.Kind == Block {
			blocks = append(blocks, a.Target)
		}
	}
	slices.Sort(blocks)
	if !slices.Equal(blocks, []string{"203.0.113.77", "update.bad-cdn.example (192.0.2.44)"}) {
		t.Errorf("block actions %q", blocks)
	}
	// Medium: watched, no block.
	if m := inc.Host(netip.MustParseAddr("10.1.1.7")); m == nil || m.Severity != hunt.Medium || m.Compromised {
		t.Errorf("medium host %+v", m)
	}
	if inc.Host(netip.MustParseAddr("10.1.1.8")) != nil {
		t.Error("a host without a match is in the incident")
	}
	kinds := 0
	for _, e := range inc.Timeline {
		if e.Kind == "indicator" {
			kinds++
		}
	}
	if kinds != 3 {
		t.Errorf("%d indicator events in the timeline", kinds)
	}
}

func TestIntelJSONLAndTable(t *testing.T) {
	in, _ := intelInput(t)
	inc := Build(in)
	var b bytes.Buffer
	if err := WriteJSONL(&b, inc); err != nil {
		t.Fatal(err)
	}
	var recs []jsonl.IndicatorMatch
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if !strings.Contains(line, `"type":"indicator-match"`) {
			continue
		}
		var r jsonl.IndicatorMatch
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if len(recs) != 3 {
		t.Fatalf("%d indicator-match records", len(recs))
	}
	r := recs[0]
	if r.ID != "I1" || !strings.HasPrefix(r.IndicatorID, "indicator--") || r.Name != "C2 address of the loader" || r.Severity != "high" ||
		r.Connections != 5 || r.Bytes != 5*2000 || *r.Confidence != 85 || r.FirstSeen != "2026-03-02T10:00:00Z" || r.LastSeen != "2026-03-02T10:04:01Z" ||
		len(r.Hosts) != 1 || r.Hosts[0].Host != "10.1.1.5" || !r.Hosts[0].Peers[0].Named ||
		r.Query != "nwhealth query --store STORE --from 2026-03-02T09:59:59Z --to 2026-03-02T10:04:03Z --host 203.0.113.77 -w evidence.pcap" ||
		!strings.Contains(r.Hosts[0].Query, "--filter 'host 10.1.1.5 and host 203.0.113.77 and tcp port 443'") {
		t.Errorf("record %+v", r)
	}
	var page bytes.Buffer
	if err := WriteHTML(&page, inc, fixedMeta); err != nil {
		t.Fatal(err)
	}
	checkPage(t, page.Bytes())
	if !strings.Contains(page.String(), `<section id="intel">`) || !strings.Contains(page.String(), "C2 address of the loader") ||
		!strings.Contains(page.String(), "--host 203.0.113.77 -w evidence.pcap") {
		t.Error("the page does not list the matched indicators with their queries")
	}
	var tb bytes.Buffer
	if err := WriteTable(&tb, inc); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Shared indicators that matched", "C2 address of the loader", "I1: nwhealth query", "block destination"} {
		if !strings.Contains(tb.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tb.String())
		}
	}
}

// The STIX output tells the partner where their indicators fired: one
// sighting per matched indicator, of their id, sighted by us.
func TestIntelSightings(t *testing.T) {
	in, set := intelInput(t)
	inc := Build(in)
	var b bytes.Buffer
	if err := WriteSTIX(&b, inc, fixedMeta); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var partner []string
	for _, ind := range set.Indicators {
		partner = append(partner, ind.ID)
	}
	objs := stixtest.ValidateWith(t, path, partner...)
	var me string
	for _, o := range objs {
		if o["type"] == "identity" && o["name"] == "nwhealth" {
			me = o["id"].(string)
		}
	}
	n := 0
	for _, o := range objs {
		if o["type"] != "sighting" || !slices.Contains(partner, o["sighting_of_ref"].(string)) {
			continue
		}
		n++
		where, _ := o["where_sighted_refs"].([]any)
		if len(where) != 1 || where[0] != me || o["count"] == nil || o["first_seen"] == nil || o["last_seen"] == nil {
			t.Errorf("sighting %v", o)
		}
		if o["sighting_of_ref"] == inc.Intel[0].Indicator.ID && o["count"].(float64) != 5 {
			t.Errorf("sighting count %v, want 5", o["count"])
		}
	}
	if n != 3 {
		t.Errorf("%d sightings of partner indicators, want 3", n)
	}
}
