package report

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/jsonl"
)

// The page is one file: CSS, script and SVG inline, nothing fetched. The
// Content-Security-Policy forbids every fetch and runs only our script (by
// its hash), so even a string that escaped escaping could not run. Every
// value from packets goes through html/template's contextual escaping.

//go:embed report.html.tmpl
var pageTemplate string

//go:embed report.js
var pageScript string

// The templates are parsed on first use, not at start-up: every nwhealth
// command links this package, and parsing costs a millisecond.
var page = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"ts":         func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
		"clock":      func(t time.Time) string { return t.UTC().Format("15:04:05") },
		"rfc":        func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"phasecol":   phaseColor,
		"phaseink":   phaseInk,
		"sevclass":   func(s hunt.Severity) string { return "sev-" + s.String() },
		"matchquery": func(m IntelMatch) string { return MatchQuery(&m.Match) },
		"join":       strings.Join,
		"addrs":      jsonl.Addrs,
		"ids":        func(ids []string) string { return compressIDs(ids, 12) },
		"hostids":    func(h *Host) string { return compressIDs(append(slices.Clone(h.Findings), h.Operations...), 12) },
		"label":      func(a netip.Addr, name string) string { return label(a, name) },
		"f1":         func(x float64) string { return fmt.Sprintf("%.1f", x) },
		"period":     hunt.FormatPeriod,
		"clip":       clip,
		"inc":        func(i int) int { return i + 1 },
		"ctl":        func(inc *Incident, a netip.Addr) string { return inc.controllerLabel(a) },
		"summary":    func(inc *Incident, h *Host) string { return h.Summary(inc) },
		"opwhat":     opWhat,
		"accounts":   func(h *Host) []string { return append(slices.Clone(h.AccountsUsed), h.AccountsSeen...) },
		"hostlabel":  func(inc *Incident, a netip.Addr) string { return inc.hostLabel(a) },
	}).Parse(pageTemplate))
})

// scriptHash is the CSP source allowing our one script.
var scriptHash = sync.OnceValue(func() string {
	sum := sha256.Sum256([]byte(pageScript))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
})

// maxHTMLOperations bounds the operations table; JSON Lines has them all.
const maxHTMLOperations = 2000

type pageData struct {
	Meta
	Inc        *Incident
	CSP        string
	Script     template.JS
	Timeline   template.HTML
	Graph      template.HTML
	Operations []Operation
	MoreOps    int
	Phases     []string
}

// WriteHTML writes the incident as one self-contained page.
func WriteHTML(w io.Writer, inc *Incident, meta Meta) error {
	if meta.Title == "" {
		meta.Title = "nwhealth incident report"
	}
	d := pageData{Meta: meta, Inc: inc, Script: template.JS(pageScript), Phases: Phases,
		CSP: "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src " + scriptHash() + "; base-uri 'none'; form-action 'none'"}
	var err error
	if d.Timeline, err = timelineSVG(inc); err != nil {
		return err
	}
	if d.Graph, err = graphSVG(inc); err != nil {
		return err
	}
	d.Operations = inc.Operations
	if len(d.Operations) > maxHTMLOperations {
		d.MoreOps = len(d.Operations) - maxHTMLOperations
		d.Operations = d.Operations[:maxHTMLOperations]
	}
	return page().Execute(w, d)
}

func (inc *Incident) hostLabel(a netip.Addr) string {
	if h := inc.Host(a); h != nil {
		return h.Label()
	}
	return a.String()
}

func opWhat(op *Operation) string {
	s := op.Target
	if op.Command != "" {
		if s != "" {
			s += ": "
		}
		s += op.Command
	}
	return clip(s, 200)
}

// phaseColor fills a phase's chips, steps and nodes: pale, so text on it
// stays readable, printed too.
func phaseColor(p string) string {
	switch p {
	case PhaseTargeted:
		return "#fff3bf"
	case PhaseAccessed:
		return "#ffe8cc"
	case PhaseExecutedOn:
		return "#ffc9c9"
	case PhaseC2:
		return "#f3d9fa"
	case PhaseDiscovery:
		return "#fff9db"
	case PhaseCollection:
		return "#d0ebff"
	case PhaseCredAccess:
		return "#ffa8a8"
	case PhaseLateral:
		return "#ff8787"
	}
	return "#f1f3f5"
}

// phaseInk draws a phase: timeline marks, edges, chip borders.
func phaseInk(p string) string {
	switch p {
	case PhaseTargeted:
		return "#f08c00"
	case PhaseAccessed:
		return "#e8590c"
	case PhaseExecutedOn:
		return "#e03131"
	case PhaseC2:
		return "#9c36b5"
	case PhaseDiscovery:
		return "#fab005"
	case PhaseCollection:
		return "#1c7ed6"
	case PhaseCredAccess:
		return "#c2255c"
	case PhaseLateral:
		return "#c92a2a"
	}
	return "#868e96"
}

// The SVGs are built with the same template engine, so every label is
// escaped the same way.
var svgTemplates = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("svg").Funcs(template.FuncMap{
		"f1": func(x float64) string { return fmt.Sprintf("%.1f", x) },
	}).Parse(`
{{define "timeline"}}<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {{f1 .W}} {{f1 .H}}" width="100%" role="img" aria-label="Timeline of the incident">
<rect x="0" y="0" width="{{f1 .W}}" height="{{f1 .H}}" fill="#fff"/>
{{range .Ticks}}<line x1="{{f1 .X}}" y1="18" x2="{{f1 .X}}" y2="{{f1 $.H}}" stroke="#e9ecef"/><text x="{{f1 .X}}" y="12" font-size="10" text-anchor="middle" fill="#495057">{{.Label}}</text>
{{end}}{{range .Lanes}}<g class="lane" data-host="{{.Host}}"><text x="4" y="{{f1 .TextY}}" font-size="11" fill="#212529">{{.Label}}</text><line x1="{{f1 $.X0}}" y1="{{f1 .Y}}" x2="{{f1 $.X1}}" y2="{{f1 .Y}}" stroke="#ced4da" stroke-dasharray="2 3"/></g>
{{end}}{{range .Spans}}<line class="mark" data-host="{{.Host}}" x1="{{f1 .X}}" y1="{{f1 .Y}}" x2="{{f1 .X2}}" y2="{{f1 .Y}}" stroke="{{.Color}}" stroke-width="5" stroke-linecap="round" opacity="0.7"><title>{{.Title}}</title></line>
{{end}}{{range .Marks}}{{if .Hollow}}<circle class="mark" data-host="{{.Host}}" cx="{{f1 .X}}" cy="{{f1 .Y}}" r="4" fill="#fff" stroke="{{.Color}}" stroke-width="2"><title>{{.Title}}</title></circle>{{else}}<circle class="mark" data-host="{{.Host}}" cx="{{f1 .X}}" cy="{{f1 .Y}}" r="5" fill="{{.Color}}" stroke="#343a40" stroke-width="0.5"><title>{{.Title}}</title></circle>{{end}}
{{end}}</svg>{{end}}
{{define "graph"}}<svg xmlns="http://www.w3.org/2000/svg" class="graph" viewBox="0 0 {{f1 .W}} {{f1 .H}}" width="100%" role="img" aria-label="Hosts, controllers and who operated on whom">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#495057"/></marker></defs>
<rect x="0" y="0" width="{{f1 .W}}" height="{{f1 .H}}" fill="#fff"/>
{{range .Columns}}<text x="{{f1 .X}}" y="16" font-size="12" font-weight="bold" text-anchor="middle" fill="#495057">{{.Title}}</text>
{{end}}{{range .Edges}}<g class="edge" data-host="{{.Host}}"><path d="{{.Path}}" fill="none" stroke="{{.Color}}" stroke-width="{{f1 .Width}}"{{if .Dashed}} stroke-dasharray="6 4"{{end}} marker-end="url(#arrow)"><title>{{.Title}}</title></path><text x="{{f1 .LX}}" y="{{f1 .LY}}" font-size="9" text-anchor="middle" fill="#343a40">{{.Label}}</text></g>
{{end}}{{range .Nodes}}<g class="node" data-host="{{.Host}}" tabindex="0"><rect x="{{f1 .X}}" y="{{f1 .Y}}" width="{{f1 .W}}" height="{{f1 .H}}" rx="6" fill="{{.Fill}}" stroke="{{.Stroke}}" stroke-width="{{f1 .StrokeW}}"><title>{{.Title}}</title></rect><text x="{{f1 .CX}}" y="{{f1 .TY}}" font-size="11" text-anchor="middle" fill="#212529">{{.Line1}}</text><text x="{{f1 .CX}}" y="{{f1 .TY2}}" font-size="9" text-anchor="middle" fill="#495057">{{.Line2}}</text></g>
{{end}}</svg>{{end}}`))
})

type svgLane struct {
	Host, Label string
	Y, TextY    float64
}

type svgMark struct {
	Host         string
	X, X2, Y     float64
	Color, Title string
	Hollow       bool
}

type svgTick struct {
	X     float64
	Label string
}

// maxLanes bounds the timeline's rows and the graph's nodes per column.
const maxLanes = 40

// timelineSVG draws one lane per host: a controller's check-ins as a bar,
// operations a host ran as filled dots and operations against it as rings,
// coloured by the phase they stand for.
func timelineSVG(inc *Incident) (template.HTML, error) {
	hosts := inc.Hosts
	if len(hosts) > maxLanes {
		hosts = hosts[:maxLanes]
	}
	const laneH, top, x0, x1 = 22.0, 28.0, 190.0, 1180.0
	d := struct {
		W, H, X0, X1 float64
		Lanes        []svgLane
		Spans, Marks []svgMark
		Ticks        []svgTick
	}{W: 1200, H: top + laneH*float64(max(len(hosts), 1)) + 8, X0: x0, X1: x1}
	first, last := inc.First, inc.Last
	if !last.After(first) {
		last = first.Add(time.Minute)
	}
	span := last.Sub(first).Seconds()
	x := func(t time.Time) float64 {
		f := t.Sub(first).Seconds() / span
		return x0 + (x1-x0)*math.Max(0, math.Min(1, f))
	}
	lane := map[netip.Addr]float64{}
	for i := range hosts {
		h := &hosts[i]
		y := top + laneH*float64(i) + laneH/2
		lane[h.Addr] = y
		d.Lanes = append(d.Lanes, svgLane{Host: h.Addr.String(), Label: clip(h.Label(), 30), Y: y, TextY: y + 4})
	}
	seen := map[string]bool{}
	mark := func(m svgMark) {
		// One mark per lane, phase and 2 pixels: a burst of operations
		// is one dot, and the page stays small.
		k := fmt.Sprintf("%.0f|%.0f|%s|%v", m.Y, m.X/2, m.Color, m.Hollow)
		if !seen[k] {
			seen[k] = true
			d.Marks = append(d.Marks, m)
		}
	}
	for _, e := range inc.Timeline {
		title := fmt.Sprintf("%s %s %s -> %s: %s [%s]", e.Time.UTC().Format("15:04:05"), e.Kind, e.Src, e.Dst, e.Summary, e.Evidence)
		if y, ok := lane[e.Src.Unmap()]; ok {
			switch e.Kind {
			case "beacon", "dns", "icmp", "scan", "indicator":
				d.Spans = append(d.Spans, svgMark{Host: e.Src.String(), X: x(e.Time), X2: math.Max(x(e.End), x(e.Time)+2), Y: y, Color: phaseInk(e.Phase), Title: title})
			default:
				mark(svgMark{Host: e.Src.String(), X: x(e.Time), Y: y, Color: phaseInk(e.Phase), Title: title})
			}
		}
		if y, ok := lane[e.Dst.Unmap()]; ok && e.Dst.IsValid() && e.Kind != "beacon" && e.Kind != "dns" && e.Kind != "icmp" && e.Kind != "indicator" {
			tp := PhaseTargeted
			if e.Kind == "operation" {
				tp = targetPhaseOfActor(e.Phase)
			}
			mark(svgMark{Host: e.Dst.String(), X: x(e.Time), Y: y, Color: phaseInk(tp), Title: title, Hollow: true})
		}
	}
	ts := ticks(first, last)
	layout := "15:04"
	switch {
	case last.Sub(first) > 48*time.Hour:
		layout = "01-02 15h"
	case len(ts) > 1 && ts[1].Sub(ts[0]) < time.Second:
		layout = "15:04:05.000"
	case len(ts) > 1 && ts[1].Sub(ts[0]) < time.Minute:
		layout = "15:04:05"
	}
	for _, t := range ts {
		d.Ticks = append(d.Ticks, svgTick{X: x(t), Label: t.UTC().Format(layout)})
	}
	var b strings.Builder
	err := svgTemplates().ExecuteTemplate(&b, "timeline", d)
	return template.HTML(b.String()), err
}

// targetPhaseOfActor is the ring colour of an operation's target lane.
func targetPhaseOfActor(p string) string {
	switch p {
	case PhaseLateral:
		return PhaseExecutedOn
	case PhaseCollection:
		return PhaseAccessed
	}
	return PhaseTargeted
}

// ticks picks round times for the axis, at most a dozen.
func ticks(first, last time.Time) []time.Time {
	steps := []time.Duration{time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second, 5 * time.Second, 15 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if last.Sub(first)/s <= 12 {
			step = s
			break
		}
	}
	var out []time.Time
	for t := first.Truncate(step); !t.After(last); t = t.Add(step) {
		if !t.Before(first) {
			out = append(out, t)
		}
	}
	return out
}

type svgNode struct {
	Host                    string
	X, Y, W, H, CX, TY, TY2 float64
	Fill, Stroke, Title     string
	StrokeW                 float64
	Line1, Line2            string
}

type svgEdge struct {
	Host, Path, Color, Title, Label string
	Width, LX, LY                   float64
	Dashed                          bool
}

type svgColumn struct {
	X     float64
	Title string
}

// graphSVG lays out three columns: controllers, the hosts the intruder
// acts from, and the hosts acted on; edges are check-ins (dashed) and
// operations or fan-out (solid, labelled with the techniques).
func graphSVG(inc *Incident) (template.HTML, error) {
	const nodeW, nodeH, gapY, top = 230.0, 38.0, 16.0, 30.0
	cols := [3]float64{20, 485, 950}
	type pos struct{ x, y float64 }
	at := map[netip.Addr]pos{}
	var nodes []svgNode
	counts := [3]int{}
	place := func(col int, a netip.Addr, n svgNode) {
		if counts[col] >= maxLanes {
			return
		}
		y := top + float64(counts[col])*(nodeH+gapY)
		counts[col]++
		n.Host, n.X, n.Y, n.W, n.H = a.String(), cols[col], y, nodeW, nodeH
		n.CX, n.TY, n.TY2 = cols[col]+nodeW/2, y+16, y+30
		at[a] = pos{cols[col], y}
		nodes = append(nodes, n)
	}
	for i := range inc.Controllers {
		c := &inc.Controllers[i]
		place(0, c.Addr, svgNode{Fill: "#f3d9fa", Stroke: "#862e9c", StrokeW: 1.5, Line1: clip(c.Label(), 36),
			Line2: fmt.Sprintf("controller, %s, %d host(s)", c.Severity, len(c.Hosts)),
			Title: fmt.Sprintf("controller %s: %s, every %s", c.Label(), c.Severity, hunt.FormatPeriod(c.PeriodSec))})
	}
	for i := range inc.Hosts {
		h := &inc.Hosts[i]
		if h.Role == RoleTarget || h.Role == RoleSuspect {
			continue
		}
		place(1, h.Addr, hostNode(h))
	}
	for i := range inc.Hosts {
		h := &inc.Hosts[i]
		if h.Role == RoleTarget {
			place(2, h.Addr, hostNode(h))
		}
	}
	var edges []svgEdge
	into := map[netip.Addr]int{} // edges already drawn into a node: their labels stack
	edge := func(from, to netip.Addr, color, title, lbl string, dashed bool, width float64) {
		a, ok1 := at[from]
		b, ok2 := at[to]
		if !ok1 || !ok2 {
			return
		}
		var sx, sy, ex, ey float64
		sy, ey = a.y+nodeH/2, b.y+nodeH/2
		var path string
		switch {
		case b.x > a.x:
			sx, ex = a.x+nodeW, b.x
			path = fmt.Sprintf("M %.1f %.1f C %.1f %.1f, %.1f %.1f, %.1f %.1f", sx, sy, sx+60, sy, ex-60, ey, ex, ey)
		case b.x < a.x: // a host checking in with its controller
			sx, ex = a.x, b.x+nodeW
			path = fmt.Sprintf("M %.1f %.1f C %.1f %.1f, %.1f %.1f, %.1f %.1f", sx, sy, sx-60, sy, ex+60, ey, ex, ey)
		default: // same column: bow out to the right
			sx, ex = a.x+nodeW, b.x+nodeW
			path = fmt.Sprintf("M %.1f %.1f C %.1f %.1f, %.1f %.1f, %.1f %.1f", sx, sy, sx+90, sy, ex+90, ey, ex, ey)
		}
		// The label sits near the arrow's end, where edges to different
		// nodes are apart.
		lx := ex - 75
		if ex < sx {
			lx = ex + 75
		} else if sx == ex {
			lx = ex + 60
		}
		ly := ey - 5 - 10*float64(into[to])
		into[to]++
		edges = append(edges, svgEdge{Host: from.String(), Path: path, Color: color, Title: title, Label: clip(lbl, 40),
			Width: width, LX: lx, LY: ly, Dashed: dashed})
	}
	for i := range inc.Controllers {
		c := &inc.Controllers[i]
		for _, h := range c.Hosts {
			edge(h.Addr, c.Addr, "#862e9c", fmt.Sprintf("%s checks in with %s (%d connections)", h.Addr, c.Label(), h.Connections),
				fmt.Sprintf("%d conns", h.Connections), true, 1.5)
		}
	}
	for i := range inc.Hosts {
		h := &inc.Hosts[i]
		for _, r := range h.Reached {
			color, width := phaseInk(r.Phase), 1.0
			if PhaseRank(r.Phase) > PhaseRank(PhaseTargeted) {
				width = 2
			}
			edge(h.Addr, r.Host, color, fmt.Sprintf("%s -> %s: %s %s [%s]", h.Addr, r.Host, dash(r.Phase), strings.Join(r.Techniques, " "), compressIDs(r.Evidence, 8)),
				strings.Join(r.Techniques, " "), false, width)
		}
	}
	rows := max(counts[0], counts[1], counts[2], 1)
	d := struct {
		W, H    float64
		Columns []svgColumn
		Nodes   []svgNode
		Edges   []svgEdge
	}{W: 1200, H: top + float64(rows)*(nodeH+gapY) + 10, Nodes: nodes, Edges: edges,
		Columns: []svgColumn{{cols[0] + nodeW/2, "controllers"}, {cols[1] + nodeW/2, "hosts acted from"}, {cols[2] + nodeW/2, "hosts acted on"}}}
	var b strings.Builder
	err := svgTemplates().ExecuteTemplate(&b, "graph", d)
	return template.HTML(b.String()), err
}

func hostNode(h *Host) svgNode {
	stroke, sw := "#495057", 1.0
	if h.Compromised {
		stroke, sw = "#c92a2a", 2.5
	}
	return svgNode{Fill: phaseColor(h.Phase), Stroke: stroke, StrokeW: sw, Line1: clip(h.Label(), 36),
		Line2: fmt.Sprintf("%s, %s, %s", h.Role, dash(h.Phase), h.Severity),
		Title: fmt.Sprintf("%s: %s at %s (%s)", h.Label(), h.Role, dash(h.Phase), h.Severity)}
}
