package demogen

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Labels is the ground truth of a sample: what is malicious in it and
// what replay and hunt are expected to find. The pair lists use the keys
// of the shared hunt scorer (c2_pairs, compromised_hosts, ...).
type Labels struct {
	Scenario     string      `json:"scenario"`
	Seed         uint64      `json:"seed"`
	Start        time.Time   `json:"start"`
	End          time.Time   `json:"end"`
	Domain       string      `json:"domain"`
	Internal     string      `json:"internal"`
	Hosts        []HostLabel `json:"hosts"`
	Compromised  []string    `json:"compromised_hosts"`
	C2Pairs      []Pair      `json:"c2_pairs"`
	LateralPairs []Pair      `json:"lateral_pairs"`
	HardNegative []Pair      `json:"hard_negative_pairs"`
	// Operations are the remote operations of the intrusion, each as
	// replay should report it, plumbing (handle closes, IPC$ connects)
	// included.
	Operations  []Operation `json:"operations"`
	Packets     int         `json:"packets"`
	Connections int         `json:"connections"`
}

// HostLabel names an inside machine.
type HostLabel struct {
	Addr string `json:"addr"`
	Name string `json:"name"`
	Role string `json:"role"`
	User string `json:"user,omitempty"`
}

// Pair is a channel from an inside host.
type Pair struct {
	Src      string  `json:"src"`
	Dst      string  `json:"dst"`
	Port     int     `json:"port"`
	Name     string  `json:"name,omitempty"`
	Interval float64 `json:"interval_s,omitempty"`
	Note     string  `json:"note,omitempty"`
}

// Operation is one remote operation of the intrusion.
type Operation struct {
	Time   time.Time `json:"ts"`
	Src    string    `json:"src"`
	Dst    string    `json:"dst"`
	User   string    `json:"user"`
	Domain string    `json:"domain"`
	// Workstation is the name the NTLMSSP AUTHENTICATE gave.
	Workstation string `json:"workstation,omitempty"`
	Step        string `json:"step"`      // the attack step: recon, psexec, smbexec, atexec, dcsync
	Kind        string `json:"kind"`      // rpc, tree, file
	Interface   string `json:"interface"` // svcctl, samr, smb, ...
	Operation   string `json:"operation"` // CreateServiceW, tree connect, write file, ...
	Target      string `json:"target,omitempty"`
	Command     string `json:"command,omitempty"`
	Technique   string `json:"technique,omitempty"` // ATT&CK id of the operation's purpose
	SHA256      string `json:"sha256,omitempty"`    // of a file written or read
	Plumbing    bool   `json:"plumbing,omitempty"`  // bookkeeping a timeline folds away
}

// WriteJSON writes the labels as indented JSON.
func (l *Labels) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(l)
}

// WriteAssets writes an asset inventory of the sample's inside hosts in
// the YAML that `hunt --assets` reads: names, roles and business
// criticality (the domain controller critical, servers high, workstations
// medium).
func (l *Labels) WriteAssets(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Asset inventory of the nwhealth demo sample (written by demogen).\nassets:\n")
	b.WriteString("  - cidr: " + l.Internal + "\n    name: corp\n    criticality: medium\n    owner: it-ops\n    role: office network\n")
	for _, h := range l.Hosts {
		crit, owner := "medium", "it-desk"
		switch {
		case strings.HasPrefix(h.Role, "domain controller"):
			crit, owner = "critical", "it-ops"
		case h.Role != "workstation":
			crit, owner = "high", "it-ops"
		}
		fmt.Fprintf(&b, "  - host: %s\n    name: %s\n    criticality: %s\n    owner: %s\n    role: %q\n",
			h.Addr, lowerName(h.Name), crit, owner, h.Role)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func lowerName(s string) string { return strings.ToLower(s) }
