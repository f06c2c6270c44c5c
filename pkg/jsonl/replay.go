package jsonl

import (
	"fmt"

	"github.com/nwhealth/nwhealth/pkg/replay"
)

// Operation is one remote operation (replay.Operation): written by replay
// and by report, which adds the incident's view of it (the fields after
// Evidence, empty from replay).
type Operation struct {
	Type        string          `json:"type"`
	ID          string          `json:"id,omitempty"` // report: its id in the incident ("O3")
	TS          string          `json:"ts"`
	End         string          `json:"end"`
	Src         string          `json:"src"`
	SrcPort     uint16          `json:"src_port"`
	Dst         string          `json:"dst"`
	DstPort     uint16          `json:"dst_port"`
	User        string          `json:"user"`
	Domain      string          `json:"domain"`
	Workstation string          `json:"workstation,omitempty"`
	Auth        string          `json:"auth"`
	Service     string          `json:"service,omitempty"`
	AccountVia  string          `json:"account_via,omitempty"` // Kerberos: how the account was found ("keytab", "ticket", "kdc")
	Transport   string          `json:"transport"`
	Pipe        string          `json:"pipe,omitempty"`
	Share       string          `json:"share,omitempty"`
	Kind        string          `json:"kind"`
	Interface   string          `json:"interface"`
	Opnum       *int            `json:"opnum,omitempty"`
	Operation   string          `json:"operation"`
	Target      string          `json:"target"`
	Command     string          `json:"command"`
	Fields      []replay.Field  `json:"fields,omitempty"`
	Technique   string          `json:"technique"`
	Phase       string          `json:"phase"`
	Status      *string         `json:"status,omitempty"`
	Encrypted   bool            `json:"encrypted"`
	Sealed      string          `json:"sealed,omitempty"`    // with --ntlm-secrets: "decrypted" or "undecryptable"
	Decrypted   string          `json:"decrypted,omitempty"` // with --ntlm-secrets: "smb3" or "winrm" when opened from an encrypted SMB3 session or WinRM message
	Partial     bool            `json:"partial"`
	Noise       bool            `json:"noise,omitempty"`
	Size        int64           `json:"size,omitempty"`
	SHA256      string          `json:"sha256,omitempty"`
	Evidence    replay.Evidence `json:"evidence"`
	SrcPhase    string          `json:"src_phase,omitempty"`    // report: what it says of the source
	DstPhase    string          `json:"dst_phase,omitempty"`    // report: what it did to the target
	SrcRole     string          `json:"src_role,omitempty"`     // report: the source host's role
	SrcFindings []string        `json:"src_findings,omitempty"` // report: hunt findings of the source
	Controllers []string        `json:"controllers,omitempty"`  // report: controllers the source checks in with
}

// NewOperation makes op's record.
func NewOperation(op *replay.Operation) Operation {
	j := Operation{
		Type: TypeOperation, TS: Time(op.Time), End: Time(op.End),
		Src: Addr(op.Src), SrcPort: op.SrcPort, Dst: Addr(op.Dst), DstPort: op.DstPort,
		User: op.User, Domain: op.Domain, Workstation: op.Workstation, Auth: op.Auth, Service: op.Service, AccountVia: op.AccountVia,
		Transport: op.Transport, Pipe: op.Pipe, Share: op.Share, Kind: op.Kind,
		Interface: op.Interface, Operation: op.Operation, Target: op.Target, Command: op.Command,
		Fields: op.Fields, Technique: op.Technique, Phase: op.Phase,
		Encrypted: op.Encrypted, Sealed: op.Sealed, Decrypted: op.Decrypted, Partial: op.Partial, Noise: op.Noise,
		Size: op.Size, SHA256: op.SHA256, Evidence: op.Evidence(),
	}
	if op.Opnum >= 0 {
		n := op.Opnum
		j.Opnum = &n
	}
	if op.HasStatus {
		s := fmt.Sprintf("0x%08x", op.Status)
		j.Status = &s
	}
	return j
}

// Attack is a named attack seen across operations (replay.Attack):
// Zerologon, coercion, PrintNightmare, DCSync, DCShadow, a certificate for
// another account. Written by replay and by report.
type Attack struct {
	Type         string          `json:"type"`
	Name         string          `json:"name"`
	CVE          string          `json:"cve,omitempty"`
	Technique    string          `json:"technique"`
	Severity     string          `json:"severity"` // "critical", "high", "medium"
	Verdict      string          `json:"verdict"`  // "exploited", "succeeded", "attempted"
	TS           string          `json:"ts"`       // the first operation
	End          string          `json:"end"`      // the last operation's end
	Src          string          `json:"src"`      // the attacker's side
	Dst          string          `json:"dst"`      // the host attacked
	Account      string          `json:"account"`  // used, or targeted (Zerologon: the machine account); "" when unknown
	Summary      string          `json:"summary"`
	Operations   int             `json:"operations"` // operations that make up the pattern
	EvidenceRows []AttackRow     `json:"evidence_rows"`
	Evidence     replay.Evidence `json:"evidence"` // packet span of all of them
}

// AttackRow is one operation that shows an Attack.
type AttackRow struct {
	TS        string `json:"ts"`
	Src       string `json:"src"`
	Dst       string `json:"dst"`
	Interface string `json:"interface"`
	Operation string `json:"operation"`
	Target    string `json:"target,omitempty"`
	Status    string `json:"status,omitempty"`
}

// NewAttack makes a's record.
func NewAttack(a *replay.Attack) Attack {
	j := Attack{Type: TypeAttack, Name: a.Name, CVE: a.CVE, Technique: a.Technique, Severity: a.Severity, Verdict: a.Verdict,
		TS: Time(a.Time), End: Time(a.End), Src: Addr(a.Src), Dst: Addr(a.Dst), Account: a.Account, Summary: a.Summary,
		Operations: a.Count, EvidenceRows: []AttackRow{}, Evidence: a.Packets}
	for _, r := range a.Evidence {
		j.EvidenceRows = append(j.EvidenceRows, AttackRow{TS: Time(r.Time), Src: r.Src, Dst: r.Dst, Interface: r.Interface,
			Operation: r.Operation, Target: r.Target, Status: r.Status})
	}
	return j
}

// Story is the progression of the operations against one host
// (replay.HostStory), its phases in the order they began.
type Story struct {
	Type  string      `json:"type"`
	Host  string      `json:"host"`
	First string      `json:"first"`
	Last  string      `json:"last"`
	Steps []StoryStep `json:"steps"`
	Story string      `json:"story"` // the steps as one line of prose
}

// StoryStep is one phase of a Story.
type StoryStep struct {
	Phase      string   `json:"phase"`
	First      string   `json:"first"`
	Last       string   `json:"last"`
	Techniques []string `json:"techniques"`
	Operations int      `json:"operations"`
	Sources    []string `json:"sources"`
	Accounts   []string `json:"accounts"`
	Examples   []string `json:"examples"`
}

// NewStory makes h's record.
func NewStory(h *replay.HostStory) Story {
	s := Story{Type: TypeStory, Host: Addr(h.Host), First: Time(h.First), Last: Time(h.Last), Steps: []StoryStep{}, Story: h.Story()}
	for _, st := range h.Steps {
		s.Steps = append(s.Steps, StoryStep{Phase: st.Phase, First: Time(st.First), Last: Time(st.Last), Techniques: Strings(st.Techniques),
			Operations: st.Operations, Sources: Addrs(st.Sources), Accounts: Strings(st.Accounts), Examples: Strings(st.Examples)})
	}
	return s
}

// Stats is replay's pipeline counters (replay.Stats, whose fields it
// carries as they are).
type Stats struct {
	Type string `json:"type"`
	replay.Stats
}

// NewStats makes st's record.
func NewStats(st replay.Stats) Stats { return Stats{Type: TypeStats, Stats: st} }
