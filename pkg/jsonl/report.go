package jsonl

// The incident records of report (and the actions hunt recommends too).
// pkg/report fills them from its model.

// Action is a recommended action, with the findings and operations behind
// it and the packets to pull for them. Written by hunt and by report.
type Action struct {
	Type        string   `json:"type"`
	Action      string   `json:"action"`
	Host        string   `json:"host"`
	HostName    string   `json:"host_name,omitempty"`
	Target      string   `json:"target"`
	Urgency     int      `json:"urgency"`
	Criticality string   `json:"criticality"`
	Priority    int      `json:"priority"`
	Escalation  string   `json:"escalation"`
	Why         string   `json:"why"`
	Evidence    []string `json:"evidence"`
	Windows     []Window `json:"windows"`
}

// Window is a span of packets to pull as evidence, with the tcpdump
// filter and the nwhealth query command that select it.
type Window struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Hosts    []string `json:"hosts"`
	Port     uint16   `json:"port,omitempty"`
	Filter   string   `json:"filter"`
	Query    string   `json:"query"`
	Evidence []string `json:"evidence"`
}

// Summary is the incident in one line, first in report's output.
type Summary struct {
	Type         string   `json:"type"`
	First        string   `json:"first"`
	Last         string   `json:"last"`
	Severity     string   `json:"severity"`
	Hosts        int      `json:"hosts"`
	Compromised  []string `json:"compromised"`
	Controllers  []string `json:"controllers"`
	Operations   int      `json:"operations"`
	AllOps       int      `json:"operations_all"`
	Findings     int      `json:"findings"`
	Actions      int      `json:"actions"`
	Records      int      `json:"records"`
	Population   int      `json:"population"`
	FirstActions []string `json:"first_actions"`
}

// Host is one host of the incident: its role, how far the intrusion got
// on it, what it reached and what to pull.
type Host struct {
	Type         string     `json:"type"`
	Host         string     `json:"host"`
	Name         string     `json:"name,omitempty"`
	Criticality  string     `json:"criticality"`
	Owner        string     `json:"owner,omitempty"`
	AssetRole    string     `json:"asset_role,omitempty"`
	Role         string     `json:"role"`
	Phase        string     `json:"phase"`
	Compromised  bool       `json:"compromised"`
	Severity     string     `json:"severity"`
	Score        float64    `json:"score"`
	First        string     `json:"first"`
	Last         string     `json:"last"`
	Summary      string     `json:"summary"`
	Steps        []HostStep `json:"steps"`
	Reached      []Reach    `json:"reached"`
	ReachedBy    []string   `json:"reached_by"`
	Controllers  []string   `json:"controllers"`
	AccountsUsed []string   `json:"accounts_used"`
	AccountsSeen []string   `json:"accounts_seen"`
	Techniques   []string   `json:"techniques"`
	DCSync       bool       `json:"dcsync"`
	Findings     []string   `json:"findings"`
	Operations   []string   `json:"operations"`
	Windows      []Window   `json:"windows"`
}

// HostStep is one phase of a Host's progression.
type HostStep struct {
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

// Reach is one host in another's impact scope.
type Reach struct {
	Host       string   `json:"host"`
	Phase      string   `json:"phase"`
	First      string   `json:"first"`
	Last       string   `json:"last"`
	Techniques []string `json:"techniques"`
	Accounts   []string `json:"accounts"`
	Evidence   []string `json:"evidence"`
}

// Controller is an outside address inside hosts check in with.
type Controller struct {
	Type     string           `json:"type"`
	Addr     string           `json:"addr"`
	Names    []string         `json:"names"`
	Ports    []uint16         `json:"ports"`
	Severity string           `json:"severity"`
	Score    float64          `json:"score"`
	PeriodS  float64          `json:"period_s"`
	First    string           `json:"first"`
	Last     string           `json:"last"`
	Hosts    []ControllerHost `json:"hosts"`
	Findings []string         `json:"findings"`
	Attack   []string         `json:"attack"`
}

// ControllerHost is one inside host talking to a controller.
type ControllerHost struct {
	Host        string `json:"host"`
	Port        uint16 `json:"port"`
	Proto       string `json:"proto"`
	Connections int    `json:"connections"`
	First       string `json:"first"`
	Last        string `json:"last"`
	Finding     string `json:"finding,omitempty"`
}
