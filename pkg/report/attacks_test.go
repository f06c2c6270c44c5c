package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
	"github.com/nwhealth/nwhealth/pkg/replay"
	"github.com/nwhealth/nwhealth/pkg/report/stix/stixtest"
)

// zerologonInput is the fixture with a Zerologon run against the domain
// controller 10.0.0.1: zero-credential authentications, one accepted, and
// the machine password reset.
func zerologonInput(t *testing.T) Input {
	in := fixtureInput(t)
	nl := func(m int, op string, status uint32) replay.Operation {
		return replay.Operation{Time: at(15, m), End: at(15, m).Add(time.Millisecond), Src: ip("10.0.0.5"), Dst: ip("10.0.0.1"),
			Kind: "rpc", Interface: "netlogon", Operation: op, Target: "DC1$", Status: status, HasStatus: true,
			Technique: "T1210", Phase: "credential-access", Fields: []replay.Field{{Name: "zerologon", Value: "client credential is all zeros (CVE-2020-1472 pattern)"}}}
	}
	in.Operations = append(in.Operations, nl(30, "NetrServerAuthenticate3", 0xc0000022), nl(31, "NetrServerAuthenticate3", 0),
		nl(32, "NetrServerPasswordSet2", 0))
	in.DomainControllers = addrs("10.0.0.1")
	return in
}

func TestAttacksRendered(t *testing.T) {
	inc := Build(zerologonInput(t))
	var zl *replay.Attack
	for i := range inc.Attacks {
		if inc.Attacks[i].Name == "Zerologon" {
			zl = &inc.Attacks[i]
		}
	}
	if zl == nil || zl.Verdict != "exploited" || zl.Severity != "critical" || zl.CVE != "CVE-2020-1472" {
		t.Fatalf("attacks %+v", inc.Attacks)
	}
	remediate := false
	for _, a := range inc.Actions {
		if a.Kind == Remediate && a.Host == ip("10.0.0.1") && strings.Contains(a.Target, "reset the DC1$ machine account password twice") {
			remediate = len(a.Evidence) > 0 && a.Urgency == 4
		}
	}
	if !remediate {
		t.Errorf("no urgent remediation of the Zerologon with its evidence: %+v", inc.Actions)
	}
	found := false
	for _, e := range inc.Timeline {
		found = found || e.Kind == "attack" && strings.HasPrefix(e.Summary, "Zerologon exploited")
	}
	if !found {
		t.Error("no Zerologon event in the timeline")
	}

	var j bytes.Buffer
	if err := WriteJSONL(&j, inc); err != nil {
		t.Fatal(err)
	}
	recs := jsonltest.Check(t, j.Bytes())[jsonl.TypeAttack]
	if len(recs) != len(inc.Attacks) {
		t.Errorf("%d attack records for %d attacks", len(recs), len(inc.Attacks))
	}
	var rec jsonl.Attack
	for _, m := range recs {
		raw, _ := json.Marshal(m)
		var a jsonl.Attack
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatal(err)
		}
		if a.Name == "Zerologon" {
			rec = a
		}
	}
	if rec.Verdict != "exploited" || rec.CVE != "CVE-2020-1472" || rec.Src != "10.0.0.5" || rec.Dst != "10.0.0.1" ||
		rec.Operations != 3 || len(rec.EvidenceRows) != 3 || rec.EvidenceRows[2].Operation != "NetrServerPasswordSet2" {
		t.Errorf("Zerologon record %+v", rec)
	}

	var h bytes.Buffer
	if err := WriteHTML(&h, inc, fixedMeta); err != nil {
		t.Fatal(err)
	}
	checkPage(t, h.Bytes())
	if !strings.Contains(h.String(), `<section id="attacks">`) || !strings.Contains(h.String(), "CVE-2020-1472") {
		t.Error("no attacks section in the page")
	}

	var s bytes.Buffer
	if err := WriteSTIX(&s, inc, fixedMeta); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bundle.json")
	if err := os.WriteFile(path, s.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	stixtest.Validate(t, path)
	var bundle struct {
		Objects []map[string]any `json:"objects"`
	}
	if err := json.Unmarshal(s.Bytes(), &bundle); err != nil {
		t.Fatal(err)
	}
	var vuln, sighted string
	for _, o := range bundle.Objects {
		if o["type"] == "vulnerability" && o["name"] == "CVE-2020-1472" {
			vuln = o["id"].(string)
		}
		if d, _ := o["description"].(string); o["type"] == "sighting" && strings.HasPrefix(d, "Zerologon (exploited, critical)") {
			sighted = o["sighting_of_ref"].(string)
		}
	}
	if vuln == "" || sighted == "" {
		t.Fatalf("no vulnerability (%q) or sighting (%q)", vuln, sighted)
	}
	targets := false
	for _, o := range bundle.Objects {
		targets = targets || o["type"] == "relationship" && o["relationship_type"] == "targets" && o["source_ref"] == sighted && o["target_ref"] == vuln
	}
	if !targets {
		t.Error("the attack pattern does not target the vulnerability")
	}
}
