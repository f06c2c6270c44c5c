package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/internal/texttable"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
)

// maxTableWindows bounds the evidence windows printed per host.
const maxTableWindows = 4

// WriteTable writes the incident for a person at a terminal: a summary,
// hosts with their progression, controllers, the recommended actions and
// the evidence windows of the compromised hosts.
func WriteTable(w io.Writer, inc *Incident) error {
	fmt.Fprintf(w, "Incident %s to %s: severity %s; %d compromised host(s), %d controller(s), %d remote operations, %d findings\n",
		inc.First.UTC().Format(time.RFC3339), inc.Last.UTC().Format(time.RFC3339), inc.Severity, inc.Compromised,
		len(inc.Controllers), len(inc.Operations), len(inc.Findings))
	if len(inc.Hosts) == 0 {
		fmt.Fprintln(w, "\nNothing to report.")
		return nil
	}
	fmt.Fprintln(w, "\nHosts (most severe first):")
	t := texttable.New(w, false, "#", "host", "role", "phase", "severity", "controllers", "impact scope", "accounts", "evidence")
	for i := range inc.Hosts {
		h := &inc.Hosts[i]
		var scope []string
		for _, r := range h.Reached {
			s := r.Host.String()
			if r.Phase != "" {
				s += " " + r.Phase
			}
			scope = append(scope, s)
		}
		var ctl []string
		for _, c := range h.Controllers {
			ctl = append(ctl, inc.controllerLabel(c))
		}
		acc := h.AccountsUsed
		if len(acc) == 0 {
			acc = h.AccountsSeen
		}
		role := h.Role
		if h.Compromised {
			role += " *"
		}
		t.Append(strconv.Itoa(i+1), h.Label(), role, dash(h.Phase), h.Severity.String(), dash(strings.Join(ctl, ", ")),
			dash(strings.Join(clipList(scope, 4), ", ")), dash(strings.Join(clipList(acc, 3), ", ")),
			compressIDs(append(append([]string{}, h.Findings...), h.Operations...), 8))
	}
	t.Render()
	fmt.Fprintln(w, "* compromised")
	fmt.Fprintln(w, "\nProgression:")
	for i := range inc.Hosts {
		h := &inc.Hosts[i]
		if len(h.Steps) == 0 {
			continue
		}
		var parts []string
		for _, s := range h.Steps {
			p := fmt.Sprintf("%s %s", s.First.UTC().Format("15:04:05"), s.Phase)
			var detail []string
			if len(s.Techniques) > 0 {
				detail = append(detail, strings.Join(s.Techniques, " "))
			}
			if len(s.Peers) > 0 {
				detail = append(detail, "with "+strings.Join(clipList(jsonl.Addrs(s.Peers), 3), ", "))
			}
			detail = append(detail, compressIDs(s.Evidence, 6))
			parts = append(parts, p+" ("+strings.Join(detail, "; ")+")")
		}
		fmt.Fprintf(w, "  %s: %s\n", h.Label(), strings.Join(parts, " -> "))
	}
	if len(inc.Controllers) > 0 {
		fmt.Fprintln(w, "\nControllers:")
		t = texttable.New(w, false, "controller", "severity", "period", "ports", "inside hosts talking to it", "evidence")
		for i := range inc.Controllers {
			c := &inc.Controllers[i]
			var hosts []string
			for _, h := range c.Hosts {
				hosts = append(hosts, fmt.Sprintf("%s (%d conns)", h.Addr, h.Connections))
			}
			var ports []string
			for _, p := range c.Ports {
				ports = append(ports, strconv.Itoa(int(p)))
			}
			t.Append(c.Label(), c.Severity.String(), hunt.FormatPeriod(c.PeriodSec), strings.Join(ports, " "),
				strings.Join(clipList(hosts, 5), ", "), compressIDs(c.Findings, 6))
		}
		t.Render()
	}
	if len(inc.Actions) > 0 {
		fmt.Fprintln(w, "\nRecommended actions (urgency x business criticality):")
		t = texttable.New(w, false, "priority", "escalation", "action", "target", "host", "criticality", "evidence", "why")
		for _, a := range inc.Actions {
			t.Append(strconv.Itoa(a.Priority), a.Escalation.String(), string(a.Kind), clip(a.Target, 60), label(a.Host, a.HostName),
				a.Criticality.String(), compressIDs(a.Evidence, 6), clip(a.Why, 110))
		}
		t.Render()
	}
	fmt.Fprintln(w, "\nEvidence windows of the compromised hosts (pull the packets with nwhealth query):")
	for i := range inc.Hosts {
		h := &inc.Hosts[i]
		if !h.Compromised {
			continue
		}
		fmt.Fprintf(w, "  %s:\n", h.Label())
		for j, win := range h.Windows {
			if j == maxTableWindows {
				fmt.Fprintf(w, "    ... %d more (--format jsonl lists every window)\n", len(h.Windows)-j)
				break
			}
			fmt.Fprintf(w, "    %s  [%s]\n", win.Query(), compressIDs(win.Evidence, 4))
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// compressIDs shortens a list of ids: runs of operations become OP3-OP9,
// and past max entries the rest are counted.
func compressIDs(ids []string, maxN int) string {
	var out []string
	for i := 0; i < len(ids); {
		j := i
		p, n, ok := splitID(ids[i])
		for ok && j+1 < len(ids) {
			p2, n2, ok2 := splitID(ids[j+1])
			if !ok2 || p2 != p || n2 != n+j+1-i {
				break
			}
			j++
		}
		if j > i+1 {
			out = append(out, ids[i]+"-"+ids[j])
		} else {
			out = append(out, ids[i:j+1]...)
		}
		i = j + 1
	}
	if len(out) > maxN {
		out = append(out[:maxN], fmt.Sprintf("+%d", len(out)-maxN))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, " ")
}

func splitID(id string) (string, int, bool) {
	i := strings.IndexFunc(id, func(r rune) bool { return r >= '0' && r <= '9' })
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[i:])
	return id[:i], n, err == nil
}
