package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"time"

	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/replay"
)

// JSON Lines: one object a line with a "type" (summary, host, controller,
// action, finding, indicator-match, operation), times in RFC 3339 UTC. docs/report.md
// lists every field.

type jsonSummary struct {
	Type        string   `json:"type"`
	First       string   `json:"first"`
	Last        string   `json:"last"`
	Severity    string   `json:"severity"`
	Hosts       int      `json:"hosts"`
	Compromised []string `json:"compromised"`
	Controllers []string `json:"controllers"`
	Operations  int      `json:"operations"`
	AllOps      int      `json:"operations_all"`
	Findings    int      `json:"findings"`
	Intel       int      `json:"indicator_matches"`
	Actions     int      `json:"actions"`
	Records     int      `json:"records"`
	Population  int      `json:"population"`
	First3      []string `json:"first_actions"`
}

type jsonStep struct {
	Phase      string   `json:"phase"`
	First      string   `json:"first"`
	Last       string   `json:"last"`
	Severity   string   `json:"severity"`
	Source     []string `json:"source"`
	Techniques []string `json:"techniques"`
	Peers      []string `json:"peers"`
	Evidence   []string `json:"evidence"`
	Examples   []string `json:"examples"`
}

type jsonReach struct {
	Host       string   `json:"host"`
	Phase      string   `json:"phase"`
	First      string   `json:"first"`
	Last       string   `json:"last"`
	Techniques []string `json:"techniques"`
	Evidence   []string `json:"evidence"`
}

type jsonWindow struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Hosts    []string `json:"hosts"`
	Port     uint16   `json:"port,omitempty"`
	Filter   string   `json:"filter"`
	Query    string   `json:"query"`
	Evidence []string `json:"evidence"`
}

type jsonHost struct {
	Type         string       `json:"type"`
	Host         string       `json:"host"`
	Name         string       `json:"name,omitempty"`
	Criticality  string       `json:"criticality"`
	Owner        string       `json:"owner,omitempty"`
	AssetRole    string       `json:"asset_role,omitempty"`
	Role         string       `json:"role"`
	Phase        string       `json:"phase"`
	Compromised  bool         `json:"compromised"`
	Severity     string       `json:"severity"`
	Score        float64      `json:"score"`
	First        string       `json:"first"`
	Last         string       `json:"last"`
	Summary      string       `json:"summary"`
	Steps        []jsonStep   `json:"steps"`
	Reached      []jsonReach  `json:"reached"`
	ReachedBy    []string     `json:"reached_by"`
	Controllers  []string     `json:"controllers"`
	AccountsUsed []string     `json:"accounts_used"`
	AccountsSeen []string     `json:"accounts_seen"`
	Techniques   []string     `json:"techniques"`
	DCSync       bool         `json:"dcsync"`
	Findings     []string     `json:"findings"`
	Operations   []string     `json:"operations"`
	Windows      []jsonWindow `json:"windows"`
}

type jsonCtlHost struct {
	Host        string `json:"host"`
	Port        uint16 `json:"port"`
	Proto       string `json:"proto"`
	Connections int    `json:"connections"`
	First       string `json:"first"`
	Last        string `json:"last"`
	Finding     string `json:"finding,omitempty"`
}

type jsonController struct {
	Type     string        `json:"type"`
	Addr     string        `json:"addr"`
	Names    []string      `json:"names"`
	Ports    []uint16      `json:"ports"`
	Severity string        `json:"severity"`
	Score    float64       `json:"score"`
	PeriodS  float64       `json:"period_s"`
	First    string        `json:"first"`
	Last     string        `json:"last"`
	Hosts    []jsonCtlHost `json:"hosts"`
	Findings []string      `json:"findings"`
	Attack   []string      `json:"attack"`
}

// ActionRecord is a recommended action as a JSON Lines record, shared by
// the report and the hunt command's output.
type ActionRecord struct {
	Type        string `json:"type"`
	Action      string `json:"action"`
	Host        string `json:"host"`
	HostName    string `json:"host_name,omitempty"`
	Target      string `json:"target"`
	Urgency     int    `json:"urgency"`
	Criticality string `json:"criticality"`
	Priority    int    `json:"priority"`
	Escalation  string `json:"escalation"`
	Why         string `json:"why"`
}

// NewActionRecord makes a's record.
func NewActionRecord(a Action) ActionRecord {
	return ActionRecord{Type: "action", Action: string(a.Kind), Host: a.Host.String(), HostName: a.HostName, Target: a.Target,
		Urgency: a.Urgency, Criticality: a.Criticality.String(), Priority: a.Priority, Escalation: a.Escalation.String(), Why: a.Why}
}

// jsonAction is the report's action record: with its evidence.
type jsonAction struct {
	ActionRecord
	Evidence []string     `json:"evidence"`
	Windows  []jsonWindow `json:"windows"`
}

type jsonFinding struct {
	Type       string   `json:"type"`
	ID         string   `json:"id"`
	Kind       string   `json:"kind"`
	Src        string   `json:"src"`
	Dst        string   `json:"dst,omitempty"`
	DstName    string   `json:"dst_name,omitempty"`
	DPort      uint16   `json:"dport,omitempty"`
	Proto      string   `json:"proto,omitempty"`
	Score      float64  `json:"score"`
	Severity   string   `json:"severity"`
	PeriodS    float64  `json:"period_s,omitempty"`
	Jitter     float64  `json:"jitter,omitempty"`
	Conns      int      `json:"connections"`
	FirstSeen  string   `json:"first_seen"`
	LastSeen   string   `json:"last_seen"`
	Popularity int      `json:"popularity,omitempty"`
	AdminPeers int      `json:"admin_peers,omitempty"`
	Beacon     bool     `json:"beacon"`
	Lateral    bool     `json:"lateral"`
	Scan       bool     `json:"scan"`
	Reasons    []string `json:"reasons"`
	Attack     []string `json:"attack"`
}

type jsonOperation struct {
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	TS          string          `json:"ts"`
	End         string          `json:"end"`
	Src         string          `json:"src"`
	SrcPort     uint16          `json:"src_port"`
	Dst         string          `json:"dst"`
	DstPort     uint16          `json:"dst_port"`
	User        string          `json:"user"`
	Domain      string          `json:"domain"`
	Auth        string          `json:"auth"`
	Transport   string          `json:"transport"`
	Pipe        string          `json:"pipe,omitempty"`
	Share       string          `json:"share,omitempty"`
	Kind        string          `json:"kind"`
	Interface   string          `json:"interface"`
	Operation   string          `json:"operation"`
	Target      string          `json:"target"`
	Command     string          `json:"command"`
	Fields      []replay.Field  `json:"fields,omitempty"`
	Technique   string          `json:"technique"`
	Phase       string          `json:"phase"`
	SrcPhase    string          `json:"src_phase"`
	DstPhase    string          `json:"dst_phase"`
	Encrypted   bool            `json:"encrypted"`
	Partial     bool            `json:"partial"`
	SrcRole     string          `json:"src_role"`
	SrcFindings []string        `json:"src_findings"`
	Controllers []string        `json:"controllers"`
	Evidence    replay.Evidence `json:"evidence"`
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

func jsonWindows(ws []Window) []jsonWindow {
	out := make([]jsonWindow, 0, len(ws))
	for i := range ws {
		w := &ws[i]
		out = append(out, jsonWindow{From: ts(w.From), To: ts(w.To), Hosts: addrStrings(w.Hosts), Port: w.Port,
			Filter: w.Filter(), Query: w.Query(), Evidence: nonNil(w.Evidence)})
	}
	return out
}

// WriteJSONL writes the incident as JSON Lines: the summary, hosts,
// controllers, actions, findings, then operations.
func WriteJSONL(w io.Writer, inc *Incident) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	sum := jsonSummary{Type: "summary", First: ts(inc.First), Last: ts(inc.Last), Severity: inc.Severity.String(), Hosts: len(inc.Hosts),
		Compromised: []string{}, Controllers: []string{}, Operations: len(inc.Operations), AllOps: inc.AllOps, Findings: len(inc.Findings), Intel: len(inc.Intel),
		Actions: len(inc.Actions), Records: inc.Records, Population: inc.Population, First3: []string{}}
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
		sum.First3 = append(sum.First3, fmt.Sprintf("%s %s", a.Kind, a.Target))
	}
	if err := enc.Encode(sum); err != nil {
		return err
	}
	for i := range inc.Hosts {
		h := &inc.Hosts[i]
		j := jsonHost{Type: "host", Host: h.Addr.String(), Name: h.Asset.Name, Criticality: h.Asset.Criticality.String(), Owner: h.Asset.Owner,
			AssetRole: h.Asset.Role, Role: h.Role, Phase: h.Phase, Compromised: h.Compromised, Severity: h.Severity.String(), Score: round(h.Score, 4),
			First: ts(h.First), Last: ts(h.Last), Summary: h.Summary(inc), Steps: []jsonStep{}, Reached: []jsonReach{},
			ReachedBy: addrStrings(h.ReachedBy), Controllers: addrStrings(h.Controllers), AccountsUsed: nonNil(h.AccountsUsed),
			AccountsSeen: nonNil(h.AccountsSeen), Techniques: nonNil(h.Techniques), DCSync: h.DCSync, Findings: nonNil(h.Findings),
			Operations: nonNil(h.Operations), Windows: jsonWindows(h.Windows)}
		for _, s := range h.Steps {
			j.Steps = append(j.Steps, jsonStep{Phase: s.Phase, First: ts(s.First), Last: ts(s.Last), Severity: s.Severity.String(), Source: nonNil(s.Source),
				Techniques: nonNil(s.Techniques), Peers: addrStrings(s.Peers), Evidence: nonNil(s.Evidence), Examples: nonNil(s.Examples)})
		}
		for _, r := range h.Reached {
			j.Reached = append(j.Reached, jsonReach{Host: r.Host.String(), Phase: r.Phase, First: ts(r.First), Last: ts(r.Last),
				Techniques: nonNil(r.Techniques), Evidence: nonNil(r.Evidence)})
		}
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	for _, c := range inc.Controllers {
		j := jsonController{Type: "controller", Addr: c.Addr.String(), Names: nonNil(c.Names), Ports: c.Ports, Severity: c.Severity.String(),
			Score: round(c.Score, 4), PeriodS: round(c.PeriodSec, 3), First: ts(c.First), Last: ts(c.Last), Hosts: []jsonCtlHost{},
			Findings: nonNil(c.Findings), Attack: nonNil(c.Attack)}
		for _, h := range c.Hosts {
			j.Hosts = append(j.Hosts, jsonCtlHost{Host: h.Addr.String(), Port: h.Port, Proto: hunt.ProtoName(h.Proto), Connections: h.Connections,
				First: ts(h.First), Last: ts(h.Last), Finding: h.Finding})
		}
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	for _, a := range inc.Actions {
		if err := enc.Encode(jsonAction{NewActionRecord(a), nonNil(a.Evidence), jsonWindows(a.Windows)}); err != nil {
			return err
		}
	}
	for _, f := range inc.Findings {
		j := jsonFinding{Type: "finding", ID: f.ID, Kind: string(f.Kind), Src: f.Src.String(), Score: round(f.Score, 4), Severity: f.Severity.String(),
			Conns: f.Connections, FirstSeen: ts(f.FirstSeen), LastSeen: ts(f.LastSeen), AdminPeers: f.AdminPeers,
			Beacon: f.Beacon, Lateral: f.Lateral, Scan: f.Scan, Reasons: nonNil(f.Reasons), Attack: nonNil(f.Attack)}
		if f.Kind == hunt.KindChannel {
			j.Dst, j.DstName, j.DPort, j.Proto, j.Popularity = f.Dst.String(), f.DstName, f.DstPort, hunt.ProtoName(f.Proto), f.Popularity
			j.PeriodS, j.Jitter = round(f.PeriodSec, 3), round(f.Jitter, 3)
		}
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	for i := range inc.Intel {
		if err := enc.Encode(NewIndicatorMatchRecord(inc.Intel[i].ID, &inc.Intel[i].Match)); err != nil {
			return err
		}
	}
	for i := range inc.Operations {
		op := &inc.Operations[i]
		j := jsonOperation{Type: "operation", ID: op.ID, TS: ts(op.Time), End: ts(op.End), Src: op.Src.String(), SrcPort: op.SrcPort,
			Dst: op.Dst.String(), DstPort: op.DstPort, User: op.User, Domain: op.Domain, Auth: op.Auth, Transport: op.Transport,
			Pipe: op.Pipe, Share: op.Share, Kind: op.Kind, Interface: op.Interface, Operation: op.Operation.Operation, Target: op.Target,
			Command: op.Command, Fields: op.Fields, Technique: op.Technique, Phase: op.Phase, SrcPhase: actorPhase(op.Phase),
			DstPhase: targetPhase(op.Phase), Encrypted: op.Encrypted, Partial: op.Partial, SrcRole: op.SrcRole,
			SrcFindings: nonNil(op.SrcFindings), Controllers: addrStrings(op.Controllers), Evidence: op.Evidence()}
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	return nil
}
