package replay

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Step is one phase of the attack on a host: when it was first and last
// seen, which techniques, by whom and from where.
type Step struct {
	Phase      string       `json:"phase"`
	First      time.Time    `json:"first"`
	Last       time.Time    `json:"last"`
	Techniques []string     `json:"techniques"`
	Operations int          `json:"operations"`
	Sources    []netip.Addr `json:"sources"`
	Accounts   []string     `json:"accounts"`
	Examples   []string     `json:"examples"` // up to three "operation target" summaries
}

// HostStory is the progression of operations against one host, its phases
// in the order they began.
type HostStory struct {
	Host  netip.Addr `json:"host"`
	First time.Time  `json:"first"`
	Last  time.Time  `json:"last"`
	Steps []Step     `json:"steps"`
}

// Story renders the progression as one line of prose.
func (h *HostStory) Story() string {
	var b strings.Builder
	for i, s := range h.Steps {
		if i > 0 {
			b.WriteString(" -> ")
		}
		fmt.Fprintf(&b, "%s %s (%s", s.First.UTC().Format("15:04:05"), s.Phase, strings.Join(s.Techniques, ", "))
		if len(s.Accounts) > 0 {
			fmt.Fprintf(&b, " by %s", strings.Join(s.Accounts, ", "))
		}
		if len(s.Sources) > 0 {
			src := make([]string, len(s.Sources))
			for j, a := range s.Sources {
				src[j] = a.String()
			}
			fmt.Fprintf(&b, " from %s", strings.Join(src, ", "))
		}
		if len(s.Examples) > 0 {
			fmt.Fprintf(&b, ": %s", strings.Join(s.Examples, "; "))
		}
		b.WriteString(")")
	}
	return b.String()
}

const (
	maxStoryHosts = 65536
	maxStoryList  = 8
)

// Stories accumulates operations into per-host stories with bounded
// memory (a fixed number of hosts, and of sources, accounts and examples
// per step), so live mode can keep one for days.
type Stories struct {
	hosts map[netip.Addr]*hostAcc
	edges map[edgeKey]*edgeAcc
}

type hostAcc struct {
	first, last time.Time
	steps       map[string]*Step
}

type edgeKey struct{ src, dst netip.Addr }

type edgeAcc struct {
	ops        int
	techniques map[string]bool
	accounts   map[string]bool
	phases     map[string]bool
}

// NewStories returns an empty accumulator.
func NewStories() *Stories {
	return &Stories{hosts: make(map[netip.Addr]*hostAcc), edges: make(map[edgeKey]*edgeAcc)}
}

// Add records an operation. Plumbing (no phase) counts only toward the
// graph's edges.
func (s *Stories) Add(op *Operation) {
	ek := edgeKey{op.Src, op.Dst}
	e := s.edges[ek]
	if e == nil && len(s.edges) < maxStoryHosts {
		e = &edgeAcc{techniques: map[string]bool{}, accounts: map[string]bool{}, phases: map[string]bool{}}
		s.edges[ek] = e
	}
	if e != nil {
		e.ops++
		if op.Technique != "" && len(e.techniques) < maxStoryList {
			e.techniques[op.Technique] = true
		}
		if a := op.Account(); a != "" && len(e.accounts) < maxStoryList {
			e.accounts[a] = true
		}
		if op.Phase != "" {
			e.phases[op.Phase] = true
		}
	}
	if op.Phase == "" {
		return
	}
	h := s.hosts[op.Dst]
	if h == nil {
		if len(s.hosts) >= maxStoryHosts {
			return
		}
		h = &hostAcc{first: op.Time, steps: make(map[string]*Step)}
		s.hosts[op.Dst] = h
	}
	if op.Time.Before(h.first) {
		h.first = op.Time
	}
	if op.End.After(h.last) {
		h.last = op.End
	}
	st := h.steps[op.Phase]
	if st == nil {
		st = &Step{Phase: op.Phase, First: op.Time, Last: op.End}
		h.steps[op.Phase] = st
	}
	st.Operations++
	if op.Time.Before(st.First) {
		st.First = op.Time
	}
	if op.End.After(st.Last) {
		st.Last = op.End
	}
	st.Techniques = addUnique(st.Techniques, op.Technique)
	if a := op.Account(); a != "" {
		st.Accounts = addUnique(st.Accounts, a)
	}
	if !containsAddr(st.Sources, op.Src) && len(st.Sources) < maxStoryList {
		st.Sources = append(st.Sources, op.Src)
	}
	if len(st.Examples) < 3 {
		ex := op.Operation
		if op.Target != "" {
			ex += " " + op.Target
		}
		st.Examples = addUnique(st.Examples, ex)
	}
}

func addUnique(list []string, s string) []string {
	if s == "" || len(list) >= maxStoryList {
		return list
	}
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

func phaseRank(p string) int {
	for i, x := range PhaseOrder {
		if x == p {
			return i
		}
	}
	return len(PhaseOrder)
}

// Hosts returns the stories, hosts ordered by when they were first
// operated on and each host's phases by when they began (PhaseOrder breaks
// ties).
func (s *Stories) Hosts() []HostStory {
	out := make([]HostStory, 0, len(s.hosts))
	for addr, h := range s.hosts {
		hs := HostStory{Host: addr, First: h.first, Last: h.last}
		for _, st := range h.steps {
			c := *st
			sort.Strings(c.Techniques)
			hs.Steps = append(hs.Steps, c)
		}
		sort.Slice(hs.Steps, func(i, j int) bool {
			a, b := hs.Steps[i], hs.Steps[j]
			if !a.First.Equal(b.First) {
				return a.First.Before(b.First)
			}
			return phaseRank(a.Phase) < phaseRank(b.Phase)
		})
		out = append(out, hs)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].First.Equal(out[j].First) {
			return out[i].First.Before(out[j].First)
		}
		return out[i].Host.Less(out[j].Host)
	})
	return out
}

// WriteDOT writes the hosts and who operated on whom as a Graphviz digraph:
// an edge per client and server, labelled with the accounts, techniques
// and operation count; hosts with a story are filled by their latest phase.
func (s *Stories) WriteDOT(w io.Writer) error {
	var b strings.Builder
	b.WriteString("digraph replay {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n")
	nodes := map[netip.Addr]bool{}
	keys := make([]edgeKey, 0, len(s.edges))
	for k := range s.edges {
		keys = append(keys, k)
		nodes[k.src], nodes[k.dst] = true, true
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].src != keys[j].src {
			return keys[i].src.Less(keys[j].src)
		}
		return keys[i].dst.Less(keys[j].dst)
	})
	addrs := make([]netip.Addr, 0, len(nodes))
	for a := range nodes {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	for _, a := range addrs {
		attr := ""
		if h := s.hosts[a]; h != nil {
			worst := ""
			for p := range h.steps {
				if phaseRank(p) >= phaseRank(worst) || worst == "" {
					worst = p
				}
			}
			attr = fmt.Sprintf(", style=\"rounded,filled\", fillcolor=%q, tooltip=%q", phaseColor(worst), worst)
		}
		fmt.Fprintf(&b, "  %q [label=%q%s];\n", a.String(), a.String(), attr)
	}
	for _, k := range keys {
		e := s.edges[k]
		label := []string{}
		if acc := sortedKeys(e.accounts); len(acc) > 0 {
			label = append(label, strings.Join(acc, ", "))
		}
		if t := sortedKeys(e.techniques); len(t) > 0 {
			label = append(label, strings.Join(t, " "))
		}
		label = append(label, fmt.Sprintf("%d ops", e.ops))
		style := ""
		if len(e.phases) == 0 {
			style = ", style=dashed, color=gray"
		}
		fmt.Fprintf(&b, "  %q -> %q [label=%q%s];\n", k.src.String(), k.dst.String(), strings.Join(label, "\n"), style)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func phaseColor(p string) string {
	switch p {
	case "reconnaissance":
		return "#fff3bf"
	case "credential-access":
		return "#ffc9c9"
	case "lateral-movement":
		return "#ffd8a8"
	case "execution", "persistence":
		return "#ff8787"
	case "defense-evasion":
		return "#d0bfff"
	case "collection", "exfiltration":
		return "#a5d8ff"
	case "command-and-control":
		return "#e599f7"
	case "impact":
		return "#868e96"
	}
	return "#e9ecef"
}
