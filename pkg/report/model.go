package report

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/assets"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/intel"
	"github.com/nwhealth/nwhealth/pkg/replay"
)

// Phases of the incident model, in the order a host moves through them as
// an intruder takes it over and uses it (docs/report.md). The first three
// say what was done to a host, the others what the intruder does from it;
// a host's phase is the highest one its evidence reaches.
const (
	PhaseTargeted   = "targeted"            // enumerated, or its secrets read (recon, credential reads against it)
	PhaseAccessed   = "accessed"            // admin share or remote management session on it, files written or read
	PhaseExecutedOn = "executed-on"         // code run or persisted on it remotely (service, task, WMI, DCOM)
	PhaseC2         = "command-and-control" // checks in with a controller (beacon)
	PhaseDiscovery  = "discovery"           // enumerates or scans other hosts
	PhaseCollection = "collection"          // reads data from other hosts' shares
	PhaseCredAccess = "credential-access"   // pulls credentials from other hosts (DCSync, LSA secrets, SAM hives)
	PhaseLateral    = "lateral-movement"    // operates on other hosts: admin shares, remote execution, fan-out
)

// Phases lists the incident model's phases, lowest first.
var Phases = []string{PhaseTargeted, PhaseAccessed, PhaseExecutedOn, PhaseC2, PhaseDiscovery, PhaseCollection, PhaseCredAccess, PhaseLateral}

// PhaseRank is a phase's place in Phases; -1 for none.
func PhaseRank(p string) int { return slices.Index(Phases, p) }

// actorPhase maps the phase replay gives an operation to what it says about
// the host that ran it: acting on another host's services, tasks or event
// log is, from the actor's side, moving laterally.
func actorPhase(p string) string {
	switch p {
	case "reconnaissance":
		return PhaseDiscovery
	case "credential-access":
		return PhaseCredAccess
	case "collection", "exfiltration":
		return PhaseCollection
	case "lateral-movement", "execution", "persistence", "defense-evasion", "impact":
		return PhaseLateral
	case "command-and-control":
		// Replay's named-pipe channel: the source relays a controller's
		// commands to another host over SMB.
		return PhaseLateral
	}
	return ""
}

// targetPhase maps an operation's phase to what it did to its target.
func targetPhase(p string) string {
	switch p {
	case "reconnaissance", "credential-access":
		return PhaseTargeted
	case "lateral-movement", "collection", "exfiltration":
		return PhaseAccessed
	case "execution", "persistence", "defense-evasion", "impact":
		// Impact: the target was shut down or rebooted by the actor.
		return PhaseExecutedOn
	case "command-and-control":
		// Controlled through a named-pipe channel from its source.
		return PhaseC2
	}
	return ""
}

// Roles of a host in the incident.
const (
	RoleSteppingStone = "stepping-stone" // checks in with a controller and acts on other hosts
	RoleBeaconing     = "beaconing"      // checks in with a controller; no action on other hosts seen
	RoleLateralSource = "lateral-source" // acts on other hosts; no controller seen
	RoleTarget        = "target"         // was acted on (impact scope)
	RoleSuspect       = "suspect"        // hunt findings only (deviation, fan-out below the lateral mark)
)

// Input is what an incident is built from: hunt's and replay's results
// over the same traffic.
type Input struct {
	Hunt hunt.Result
	// Contacts lists the inside hosts that reached an address (hunt's
	// Model.Contacts); optional.
	Contacts   func(dst netip.Addr) []hunt.Contact
	Operations []replay.Operation
	Inventory  *assets.Inventory
	// Internal names the inside networks (default hunt.DefaultInternal).
	Internal []netip.Prefix
	// MinSeverity leaves out findings, and hosts outside any compromised
	// host's impact scope, below it.
	MinSeverity hunt.Severity
	// Allowed names known-good hosts (the allow list): their operations
	// are listed but are no evidence against them or their targets.
	Allowed func(a netip.Addr, name string) bool
	// DomainControllers are the hosts replay saw acting as domain
	// controllers (replay.Stats); with the inventory's, their replication
	// is not DCSync.
	DomainControllers []netip.Addr
	// Intel is the shared indicators that matched the same traffic
	// (pkg/intel): each is a finding like hunt's.
	Intel []intel.Match
}

// Meta describes a rendering: its title, when it was made, from what.
type Meta struct {
	Title     string
	Generated time.Time
	Inputs    []string
}

// Incident is the joined view.
type Incident struct {
	First, Last time.Time
	Severity    hunt.Severity   // the worst host's
	Hosts       []Host          // most severe first
	Controllers []Controller    // most severe first
	Findings    []Finding       // hunt's, ranked
	Attacks     []replay.Attack // named attacks replay's operations show (Zerologon, coercion...), worst first
	Intel       []IntelMatch    // indicators that matched, most severe first
	Operations  []Operation     // replay's, in time order (plumbing left out)
	Actions     []Action        // most pressing first
	Timeline    []Event         // findings and operations in time order

	Records     int // flow records hunt measured
	Population  int // internal hosts in hunt's population
	AllOps      int // operations replay reported, plumbing included
	Compromised int // hosts marked compromised
}

// Finding is one hunt finding with its id in the incident and the asset
// of its source (Known: the inventory holds it).
type Finding struct {
	ID string
	hunt.Finding
	Asset assets.Asset
	Known bool
}

// IntelMatch is one shared indicator that matched, with its id in the
// incident ("I1"...).
type IntelMatch struct {
	ID string
	intel.Match
}

// Operation is one replay operation with its id and what the incident
// knows of its source.
type Operation struct {
	ID string
	replay.Operation
	SrcRole     string       // the source host's role ("allowed" for an allow-listed source)
	SrcFindings []string     // hunt findings of the source host
	Controllers []netip.Addr // controllers the source checks in with
}

// Host is one host of the incident.
type Host struct {
	Addr        netip.Addr
	Asset       assets.Asset
	Known       bool // the inventory holds it
	Role        string
	Phase       string // highest phase reached ("" when only phase-less evidence)
	Compromised bool
	Severity    hunt.Severity
	Score       float64 // hunt's host score, 0 when hunt has none
	First, Last time.Time
	Steps       []Step  // the progression, in the order phases began
	Reached     []Reach // impact scope: inside hosts it acted on
	ReachedBy   []netip.Addr
	Controllers []netip.Addr
	// AccountsUsed were used from this host against others; AccountsSeen
	// were used against it.
	AccountsUsed []string
	AccountsSeen []string
	Techniques   []string
	Findings     []string
	Operations   []string
	Windows      []Window
	DCSync       bool // it pulled directory replication (T1003.006)
}

// Label is the address with the inventory's name.
func (h *Host) Label() string { return label(h.Addr, h.Asset.Name) }

// Label is the name and address.
func (c *Controller) Label() string { return nameAddr(c.Addr, firstOr(c.Names, "")) }

// nameAddr is "name (address)", or the address.
func nameAddr(a netip.Addr, name string) string {
	if name == "" {
		return a.String()
	}
	return name + " (" + a.String() + ")"
}

func label(a netip.Addr, name string) string {
	if name == "" {
		return a.String()
	}
	return a.String() + " (" + name + ")"
}

// Step is one phase of a host's progression.
type Step struct {
	Phase       string
	First, Last time.Time
	Severity    hunt.Severity
	Source      []string // "hunt", "replay"
	Techniques  []string
	Peers       []netip.Addr
	Evidence    []string
	Examples    []string // up to three short descriptions
}

// Reach is one host in another's impact scope.
type Reach struct {
	Host        netip.Addr
	Phase       string // the highest phase the actor brought it to ("" for phase-less operations)
	First, Last time.Time
	Techniques  []string
	Accounts    []string // accounts the actor used against it
	Evidence    []string
}

// Controller is an outside address inside hosts check in with.
type Controller struct {
	Addr      netip.Addr
	Names     []string
	Ports     []uint16
	Severity  hunt.Severity
	Score     float64
	PeriodSec float64 // of its strongest beacon
	First     time.Time
	Last      time.Time
	Hosts     []ControllerHost
	Findings  []string
	Attack    []string
}

// ControllerHost is one inside host talking to a controller.
type ControllerHost struct {
	Addr        netip.Addr
	Port        uint16
	Proto       uint8
	Connections int
	First, Last time.Time
	Finding     string // the beacon finding, "" when the channel did not score
}

// Event is one entry of the timeline.
type Event struct {
	Time, End time.Time
	Kind      string // "beacon", "dns", "icmp", "fan-out", "scan", "indicator", "operation"
	Src, Dst  netip.Addr
	Phase     string // what it says about the source (incident phase)
	Technique string
	Severity  hunt.Severity
	Summary   string
	Evidence  string
}

// Window is a span of packets to pull: `nwhealth query` with Query().
type Window struct {
	From, To time.Time
	Hosts    []netip.Addr // both ends
	Port     uint16       // server port, 0 for any
	Proto    uint8        // with Port
	Evidence []string
}

// Filter is the tcpdump expression selecting the window's traffic.
func (w *Window) Filter() string {
	var parts []string
	for _, h := range w.Hosts {
		parts = append(parts, "host "+h.String())
	}
	if w.Port != 0 {
		parts = append(parts, fmt.Sprintf("%s port %d", protoWord(w.Proto), w.Port))
	}
	return strings.Join(parts, " and ")
}

// Query is the command that pulls the window's packets from a store.
func (w *Window) Query() string {
	q := fmt.Sprintf("nwhealth query --store STORE --from %s --to %s", w.From.UTC().Format(time.RFC3339), w.To.UTC().Format(time.RFC3339))
	if len(w.Hosts) > 0 {
		// --host lets the index prune; the filter keeps only the pair.
		q += " --host " + w.Hosts[0].String()
	}
	return q + fmt.Sprintf(" --filter '%s' -w evidence.pcap", w.Filter())
}

func protoWord(p uint8) string {
	switch p {
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	return "tcp"
}
