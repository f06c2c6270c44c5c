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
		User: op.User, Domain: op.Domain, Workstation: op.Workstation, Auth: op.Auth, Service: op.Service,
		Transport: op.Transport, Pipe: op.Pipe, Share: op.Share, Kind: op.Kind,
		Interface: op.Interface, Operation: op.Operation, Target: op.Target, Command: op.Command,
		Fields: op.Fields, Technique: op.Technique, Phase: op.Phase,
		Encrypted: op.Encrypted, Partial: op.Partial, Noise: op.Noise,
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
