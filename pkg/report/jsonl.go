package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
)

// JSON Lines: one object a line with a "type" (summary, host, controller,
// action, finding, operation), times in RFC 3339 UTC: the records of
// pkg/jsonl, which hunt and replay write too (docs/format/jsonl.md).

// NewActionRecord makes a's record: hunt's and the report's actions are
// one record.
func NewActionRecord(a Action) jsonl.Action {
	return jsonl.Action{Type: jsonl.TypeAction, Action: string(a.Kind), Host: a.Host.String(), HostName: a.HostName, Target: a.Target,
		Urgency: a.Urgency, Criticality: a.Criticality.String(), Priority: a.Priority, Escalation: a.Escalation.String(), Why: a.Why,
		Evidence: jsonl.Strings(a.Evidence), Windows: jsonWindows(a.Windows)}
}

// NewFindingRecord makes the record of f, whose source is the asset a
// (known says the inventory holds it).
func NewFindingRecord(id string, f *hunt.Finding, a assets.Asset, known bool) jsonl.Finding {
	j := jsonl.NewFinding(id, f)
	if j.Action == "" {
		j.Action = Primary(SubjectOf(f, a))
	}
	if known {
		j.Asset, j.Criticality = a.Name, a.Criticality.String()
	}
	return j
}

func jsonWindows(ws []Window) []jsonl.Window {
	out := make([]jsonl.Window, 0, len(ws))
	for i := range ws {
		w := &ws[i]
		out = append(out, jsonl.Window{From: jsonl.Time(w.From), To: jsonl.Time(w.To), Hosts: jsonl.Addrs(w.Hosts), Port: w.Port,
			Filter: w.Filter(), Query: w.Query(), Evidence: jsonl.Strings(w.Evidence)})
	}
	return out
}

// WriteJSONL writes the incident as JSON Lines: the summary, hosts,
// controllers, actions, findings, then operations.
func WriteJSONL(w io.Writer, inc *Incident) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	sum := jsonl.Summary{Type: jsonl.TypeSummary, First: jsonl.Time(inc.First), Last: jsonl.Time(inc.Last), Severity: inc.Severity.String(),
		Hosts: len(inc.Hosts), Compromised: []string{}, Controllers: []string{}, Operations: len(inc.Operations), AllOps: inc.AllOps,
		Findings: len(inc.Findings), Actions: len(inc.Actions), Records: inc.Records, Population: inc.Population, FirstActions: []string{}}
	for _, h := range inc.Hosts {
		if h.Compromised {
			sum.Compromised = append(sum.Compromised, h.Addr.String())
		}
	}
	for _, c := range inc.Controllers {
		sum.Controllers = append(sum.Controllers, c.Addr.String())
	}
	for i, a := range inc.Actions {
		if i == 3 {
			break
		}
		sum.FirstActions = append(sum.FirstActions, fmt.Sprintf("%s %s", a.Kind, a.Target))
	}
	if err := enc.Encode(sum); err != nil {
		return err
	}
	for i := range inc.Hosts {
		h := &inc.Hosts[i]
		j := jsonl.Host{Type: jsonl.TypeHost, Host: h.Addr.String(), Name: h.Asset.Name, Criticality: h.Asset.Criticality.String(),
			Owner: h.Asset.Owner, AssetRole: h.Asset.Role, Role: h.Role, Phase: h.Phase, Compromised: h.Compromised,
			Severity: h.Severity.String(), Score: round(h.Score, 4), First: jsonl.Time(h.First), Last: jsonl.Time(h.Last),
			Summary: h.Summary(inc), Steps: []jsonl.HostStep{}, Reached: []jsonl.Reach{}, ReachedBy: jsonl.Addrs(h.ReachedBy),
			Controllers: jsonl.Addrs(h.Controllers), AccountsUsed: jsonl.Strings(h.AccountsUsed), AccountsSeen: jsonl.Strings(h.AccountsSeen),
			Techniques: jsonl.Strings(h.Techniques), DCSync: h.DCSync, Findings: jsonl.Strings(h.Findings),
			Operations: jsonl.Strings(h.Operations), Windows: jsonWindows(h.Windows)}
		for _, s := range h.Steps {
			j.Steps = append(j.Steps, jsonl.HostStep{Phase: s.Phase, First: jsonl.Time(s.First), Last: jsonl.Time(s.Last),
				Severity: s.Severity.String(), Source: jsonl.Strings(s.Source), Techniques: jsonl.Strings(s.Techniques),
				Peers: jsonl.Addrs(s.Peers), Evidence: jsonl.Strings(s.Evidence), Examples: jsonl.Strings(s.Examples)})
		}
		for _, r := range h.Reached {
			j.Reached = append(j.Reached, jsonl.Reach{Host: r.Host.String(), Phase: r.Phase, First: jsonl.Time(r.First), Last: jsonl.Time(r.Last),
				Techniques: jsonl.Strings(r.Techniques), Accounts: jsonl.Strings(r.Accounts), Evidence: jsonl.Strings(r.Evidence)})
		}
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	for _, c := range inc.Controllers {
		j := jsonl.Controller{Type: jsonl.TypeController, Addr: c.Addr.String(), Names: jsonl.Strings(c.Names), Ports: c.Ports,
			Severity: c.Severity.String(), Score: round(c.Score, 4), PeriodS: round(c.PeriodSec, 3), First: jsonl.Time(c.First),
			Last: jsonl.Time(c.Last), Hosts: []jsonl.ControllerHost{}, Findings: jsonl.Strings(c.Findings), Attack: jsonl.Strings(c.Attack)}
		if j.Ports == nil {
			j.Ports = []uint16{}
		}
		for _, h := range c.Hosts {
			j.Hosts = append(j.Hosts, jsonl.ControllerHost{Host: h.Addr.String(), Port: h.Port, Proto: hunt.ProtoName(h.Proto),
				Connections: h.Connections, First: jsonl.Time(h.First), Last: jsonl.Time(h.Last), Finding: h.Finding})
		}
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	for _, a := range inc.Actions {
		if err := enc.Encode(NewActionRecord(a)); err != nil {
			return err
		}
	}
	for i := range inc.Findings {
		f := &inc.Findings[i]
		if err := enc.Encode(NewFindingRecord(f.ID, &f.Finding, f.Asset, f.Known)); err != nil {
			return err
		}
	}
	for i := range inc.Operations {
		op := &inc.Operations[i]
		j := jsonl.NewOperation(&op.Operation)
		j.ID, j.SrcPhase, j.DstPhase, j.SrcRole = op.ID, actorPhase(op.Phase), targetPhase(op.Phase), op.SrcRole
		j.SrcFindings, j.Controllers = op.SrcFindings, jsonl.Addrs(op.Controllers)
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	return nil
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
