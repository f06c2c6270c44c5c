package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/demogen"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/hunt"
)

// The evaluation harness: hunt over the trafficsim scenarios under
// testdata/hunt-eval, scored with the shared huntscore.py from the pcap and
// from the conn.log, with ritabase.py's score for reference. Scenarios with
// "generator": "demogen" are internal/demogen networks with its shapes
// (kept-alive, proxy, inbound), hunted from the pcap and from a store.
//
// By default (make test) only the scenarios marked "ci" run: small ones, a
// quality gate of about two minutes. NWHEALTH_HUNT_EVAL=all runs every
// scenario and the shared dev.json (scripts/hunt-eval.sh does, without the
// race detector); NWHEALTH_HUNT_EVAL=NAME,NAME picks scenarios by file name
// (without .json). NWHEALTH_HUNT_EVAL_OUT=FILE also writes the table there.
//
// Each scenario file is a trafficsim scenario with one more object, which
// trafficsim ignores:
//
//	"eval": {"about": "...", "ci": true, "min_pair_ap": 0.9, "min_host_ap": 1,
//	         "max_severity": "medium"}
//
// min_pair_ap and min_host_ap bind hunt from both inputs; max_severity bounds
// every finding of a scenario without anything malicious.

type evalSpec struct {
	About       string  `json:"about"`
	CI          bool    `json:"ci"`
	MinPairAP   float64 `json:"min_pair_ap"`
	MinHostAP   float64 `json:"min_host_ap"`
	MaxSeverity string  `json:"max_severity"`
	// BenignBeacons names trafficsim beacons that stand for benign
	// traffic the simulator has no other shape for: with "dist": "exp" and
	// jitter 1 a beacon is a Poisson series (event traffic), with sleep
	// windows around short sessions a person's bursts. Their pairs are
	// moved from the C2 pairs to the hard negatives before scoring.
	BenignBeacons []string `json:"benign_beacons"`
}

// relabel moves the C2 pairs of the named benign beacons to the hard
// negatives; a host is compromised only by what stays malicious.
func relabel(t *testing.T, path string, benign []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lb map[string]json.RawMessage
	if err := json.Unmarshal(b, &lb); err != nil {
		t.Fatal(err)
	}
	type pair struct {
		Src  string `json:"src"`
		Dst  string `json:"dst"`
		Port int    `json:"port"`
		Name string `json:"name,omitempty"`
	}
	var c2, hard, lateral []pair
	json.Unmarshal(lb["c2_pairs"], &c2)
	json.Unmarshal(lb["hard_negative_pairs"], &hard)
	json.Unmarshal(lb["lateral_pairs"], &lateral)
	var keep []pair
	moved := 0
	for _, p := range c2 {
		if slices.Contains(benign, p.Name) {
			hard = append(hard, p)
			moved++
		} else {
			keep = append(keep, p)
		}
	}
	if moved != len(benign) {
		t.Fatalf("%s: %d of the benign beacons %v found among the C2 pairs", path, moved, benign)
	}
	comp := []string{}
	for _, p := range append(keep, lateral...) {
		if !slices.Contains(comp, p.Src) {
			comp = append(comp, p.Src)
		}
	}
	for k, v := range map[string]any{"c2_pairs": keep, "hard_negative_pairs": hard, "compromised_hosts": comp} {
		if lb[k], err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	if b, err = json.MarshalIndent(lb, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type evalScenario struct {
	Eval  evalSpec `json:"eval"`
	Hosts int      `json:"hosts"`
	Hours float64  `json:"hours"`
	// Generator "demogen" builds the network with internal/demogen and its
	// shapes (kept-alive connections, a forward proxy, an inside server
	// polled from outside), which trafficsim has not; trafficsim otherwise.
	Generator string     `json:"generator"`
	Demogen   demogenCfg `json:"demogen"`
	path      string
	name      string
}

// demogenCfg is a demogen scenario: workstations, hours, seed, shapes.
type demogenCfg struct {
	Seed         uint64   `json:"seed"`
	Workstations int      `json:"workstations"`
	Hours        float64  `json:"hours"`
	Shapes       []string `json:"shapes"`
}

// generateDemogen writes a demogen scenario's pcap and labels into dir.
func generateDemogen(t *testing.T, c demogenCfg, pcap, labels string) {
	t.Helper()
	cfg := demogen.Config{Seed: c.Seed, Workstations: c.Workstations, Duration: time.Duration(c.Hours * float64(time.Hour))}
	for _, sh := range c.Shapes {
		switch sh {
		case "keepalive":
			cfg.Shapes.KeepAlive = true
		case "proxy":
			cfg.Shapes.Proxy = true
		case "inbound":
			cfg.Shapes.Inbound = true
		default:
			t.Fatalf("unknown shape %q", sh)
		}
	}
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	l, err := demogen.Generate(f, cfg)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(labels)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	if err := l.WriteJSON(lf); err != nil {
		t.Fatal(err)
	}
}

// evalScore is one scorer's result on one scenario.
type evalScore struct {
	pair, host float64
	hardRank   int     // best (lowest) rank of a hard-negative pair, 0 if none ranked
	topBenign  float64 // highest score of a finding on no labelled host
	ok         bool
	notRun     bool // the scorer has no input for this scenario (no conn.log for the baseline)
}

type evalRow struct {
	name, about  string
	hosts        int
	hours        float64
	conns        int
	pcap, zeek   evalScore
	rita         evalScore
	pcapT, zeekT time.Duration
}

var hardRE = regexp.MustCompile(`(?m)^\s+hard-negative \S+ -> \S+: rank (\d+)`)

func loadEvalScenarios(t *testing.T) []evalScenario {
	t.Helper()
	root := testenv.ModuleRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "testdata", "hunt-eval", "*.json"))
	if err != nil || len(files) < 12 {
		t.Fatalf("want at least 12 scenarios under testdata/hunt-eval, found %d (%v)", len(files), err)
	}
	var out []evalScenario
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s evalScenario
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if s.Eval.About == "" {
			t.Fatalf("%s: no eval.about", f)
		}
		s.path, s.name = f, strings.TrimSuffix(filepath.Base(f), ".json")
		out = append(out, s)
	}
	return out
}

// buildTrafficsim compiles the simulator once for the whole run.
func buildTrafficsim(t *testing.T) string {
	t.Helper()
	simDir := testenv.SharedFile(t, "tools", "trafficsim")
	goTool := testenv.Tool(t, "go")
	bin := filepath.Join(t.TempDir(), "trafficsim")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Dir = simDir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build trafficsim: %v\n%s", err, b)
	}
	return bin
}

// scoreFindings runs huntscore.py on a findings file, or, for a scenario
// without beacons (huntscore needs positives), only reads the findings.
func scoreFindings(t *testing.T, labels, findings string, positives bool) evalScore {
	t.Helper()
	var s evalScore
	if positives {
		py := testenv.Tool(t, "python3")
		b, err := exec.Command(py, testenv.SharedFile(t, "tools", "huntscore.py"), labels, findings).CombinedOutput()
		if err != nil {
			t.Fatalf("huntscore: %v\n%s", err, b)
		}
		m := apRE.FindSubmatch(b)
		if m == nil {
			t.Fatalf("huntscore output: %s", b)
		}
		s.pair, _ = strconv.ParseFloat(string(m[1]), 64)
		s.host, _ = strconv.ParseFloat(string(m[2]), 64)
		for _, h := range hardRE.FindAllSubmatch(b, -1) {
			if r, _ := strconv.Atoi(string(h[1])); s.hardRank == 0 || r < s.hardRank {
				s.hardRank = r
			}
		}
		s.ok = true
	}
	var lb struct {
		Compromised []string `json:"compromised_hosts"`
		Conns       int      `json:"connections"`
	}
	if b, err := os.ReadFile(labels); err == nil {
		json.Unmarshal(b, &lb)
	}
	b, err := os.ReadFile(findings)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		var f struct {
			Type  string  `json:"type"`
			Src   string  `json:"src"`
			Score float64 `json:"score"`
		}
		if json.Unmarshal([]byte(line), &f) != nil || f.Type == "action" || f.Src == "" {
			continue
		}
		if !slices.Contains(lb.Compromised, f.Src) {
			s.topBenign = max(s.topBenign, f.Score)
		}
	}
	return s
}

func TestHuntEval(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates networks")
	}
	sel := os.Getenv("NWHEALTH_HUNT_EVAL")
	scenarios := loadEvalScenarios(t)
	if sel != "" {
		// The shared development scenario joins the full evaluation.
		if dev := filepath.Join(testenv.SharedDir(t), "tools", "trafficsim", "scenarios", "dev.json"); sel == "all" {
			scenarios = append(scenarios, evalScenario{path: dev, name: "dev (shared)", Hosts: 60, Hours: 24,
				Eval: evalSpec{About: "the shared development scenario", MinPairAP: 0.9, MinHostAP: 1}})
		}
	}
	var run []evalScenario
	for _, s := range scenarios {
		switch {
		case sel == "" && s.Eval.CI, sel == "all", sel != "" && slices.Contains(strings.Split(sel, ","), s.name):
			run = append(run, s)
		}
	}
	if sel == "" && len(run) < 3 {
		t.Fatalf("only %d scenarios are marked ci", len(run))
	}
	var sim string
	if slices.ContainsFunc(run, func(s evalScenario) bool { return s.Generator != "demogen" }) {
		sim = buildTrafficsim(t)
	}
	py := testenv.Tool(t, "python3")
	rita := testenv.SharedFile(t, "tools", "ritabase.py")

	var rows []evalRow
	for _, s := range run {
		t.Run(strings.Fields(s.name)[0], func(t *testing.T) {
			dir := t.TempDir()
			pcap, labels, conn := filepath.Join(dir, "sim.pcap"), filepath.Join(dir, "labels.json"), filepath.Join(dir, "conn.log")
			if s.Generator == "demogen" {
				evalDemogen(t, s, dir, &rows)
				return
			}
			if b, err := exec.Command(sim, "-scenario", s.path, "-o", pcap, "-labels", labels, "-conn", conn).CombinedOutput(); err != nil {
				t.Fatalf("trafficsim: %v\n%s", err, b)
			}
			if len(s.Eval.BenignBeacons) > 0 {
				relabel(t, labels, s.Eval.BenignBeacons)
			}
			var lb struct {
				C2    []json.RawMessage `json:"c2_pairs"`
				Conns int               `json:"connections"`
			}
			b, _ := os.ReadFile(labels)
			if err := json.Unmarshal(b, &lb); err != nil {
				t.Fatal(err)
			}
			positives := len(lb.C2) > 0
			row := evalRow{name: s.name, about: s.Eval.About, hosts: s.Hosts, hours: s.Hours, conns: lb.Conns}

			// The baseline runs beside hunt: it is single-threaded Python.
			var wg sync.WaitGroup
			ritaOut := filepath.Join(dir, "rita.jsonl")
			var ritaErr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				f, err := os.Create(ritaOut)
				if err != nil {
					ritaErr = err
					return
				}
				defer f.Close()
				cmd := exec.Command(py, rita, "--internal", "10.0.0.0/8", conn)
				var errb strings.Builder
				cmd.Stdout, cmd.Stderr = f, &errb
				if err := cmd.Run(); err != nil {
					ritaErr = fmt.Errorf("%v: %s", err, errb.String())
				}
			}()
			for _, in := range []struct {
				flag, path string
				score      *evalScore
				took       *time.Duration
			}{{"--pcap", pcap, &row.pcap, &row.pcapT}, {"--zeek", conn, &row.zeek, &row.zeekT}} {
				out := filepath.Join(dir, strings.TrimPrefix(in.flag, "--")+".jsonl")
				start := time.Now()
				huntToFile(t, out, in.flag, in.path)
				*in.took = time.Since(start)
				*in.score = scoreFindings(t, labels, out, positives)
			}
			wg.Wait()
			if ritaErr != nil {
				t.Fatalf("ritabase: %v", ritaErr)
			}
			row.rita = scoreFindings(t, labels, ritaOut, positives)
			rows = append(rows, row)

			for _, x := range []struct {
				input string
				s     evalScore
			}{{"pcap", row.pcap}, {"conn.log", row.zeek}} {
				if positives && (x.s.pair < s.Eval.MinPairAP || x.s.host < s.Eval.MinHostAP) {
					t.Errorf("%s from %s: pair AP %.3f (want >= %.2f), host AP %.3f (want >= %.2f)",
						s.name, x.input, x.s.pair, s.Eval.MinPairAP, x.s.host, s.Eval.MinHostAP)
				}
				if s.Eval.MaxSeverity != "" {
					limit, err := hunt.ParseSeverity(s.Eval.MaxSeverity)
					if err != nil {
						t.Fatal(err)
					}
					if sev := hunt.SeverityOf(x.s.topBenign); sev > limit {
						t.Errorf("%s from %s: a benign host's finding scores %.2f (%v), above %v", s.name, x.input, x.s.topBenign, sev, limit)
					}
				}
			}
		})
	}
	table := evalTable(rows)
	t.Logf("hunt evaluation (pair AP / host AP; HN = best rank of a hard negative; benign = top score on an uncompromised host):\n%s", table)
	if p := os.Getenv("NWHEALTH_HUNT_EVAL_OUT"); p != "" {
		if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// evalDemogen evaluates a demogen scenario: hunt from the pcap, and from a
// store the pcap was imported into (its flow records, format v2, carry the
// bursts and proxy destinations); there is no conn.log, so no baseline.
func evalDemogen(t *testing.T, s evalScenario, dir string, rows *[]evalRow) {
	pcap, labels := filepath.Join(dir, "sim.pcap"), filepath.Join(dir, "labels.json")
	generateDemogen(t, s.Demogen, pcap, labels)
	st := filepath.Join(dir, "store")
	if _, errOut, code := runCmd(t, "import", "--store", st, pcap); code != 0 {
		t.Fatalf("import: %s", errOut)
	}
	var lb struct {
		Conns int `json:"connections"`
	}
	if b, err := os.ReadFile(labels); err == nil {
		json.Unmarshal(b, &lb)
	}
	row := evalRow{name: s.name + " (store)", about: s.Eval.About, hosts: s.Demogen.Workstations, hours: s.Demogen.Hours, conns: lb.Conns,
		rita: evalScore{notRun: true}}
	for _, in := range []struct {
		flag, path string
		score      *evalScore
		took       *time.Duration
	}{{"--pcap", pcap, &row.pcap, &row.pcapT}, {"--store", st, &row.zeek, &row.zeekT}} {
		out := filepath.Join(dir, strings.TrimPrefix(in.flag, "--")+".jsonl")
		start := time.Now()
		huntToFile(t, out, in.flag, in.path)
		*in.took = time.Since(start)
		*in.score = scoreFindings(t, labels, out, true)
	}
	*rows = append(*rows, row)
	for _, x := range []struct {
		input string
		s     evalScore
	}{{"pcap", row.pcap}, {"store", row.zeek}} {
		if x.s.pair < s.Eval.MinPairAP || x.s.host < s.Eval.MinHostAP {
			t.Errorf("%s from %s: pair AP %.3f (want >= %.2f), host AP %.3f (want >= %.2f)",
				s.name, x.input, x.s.pair, s.Eval.MinPairAP, x.s.host, s.Eval.MinHostAP)
		}
	}
}

// evalTable renders the results as a Markdown table (docs/hunt.md quotes it).
func evalTable(rows []evalRow) string {
	var b strings.Builder
	b.WriteString("| scenario | hosts | hours | conns | hunt pcap pair/host | hunt conn.log pair/host | ritabase pair/host | HN rank pcap/conn/rita | benign top pcap/conn | time pcap/conn |\n")
	b.WriteString("|---|---:|---:|---:|---|---|---|---|---|---|\n")
	ap := func(s evalScore) string {
		switch {
		case s.notRun:
			return "- (not run)"
		case !s.ok:
			return "- (no beacon)"
		}
		return fmt.Sprintf("%.3f / %.3f", s.pair, s.host)
	}
	rank := func(s evalScore) string {
		if s.hardRank == 0 {
			return "-"
		}
		return strconv.Itoa(s.hardRank)
	}
	var sumP, sumH, sumZP, sumZH, sumRP, sumRH float64
	n, nr := 0, 0
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %g | %d | %s | %s | %s | %s/%s/%s | %.2f / %.2f | %.1fs / %.1fs |\n",
			r.name, r.hosts, r.hours, r.conns, ap(r.pcap), ap(r.zeek), ap(r.rita), rank(r.pcap), rank(r.zeek), rank(r.rita),
			r.pcap.topBenign, r.zeek.topBenign, r.pcapT.Seconds(), r.zeekT.Seconds())
		if r.pcap.ok {
			n++
			sumP, sumH, sumZP, sumZH = sumP+r.pcap.pair, sumH+r.pcap.host, sumZP+r.zeek.pair, sumZH+r.zeek.host
		}
		if r.rita.ok {
			nr++
			sumRP, sumRH = sumRP+r.rita.pair, sumRH+r.rita.host
		}
	}
	if n > 0 {
		f := float64(n)
		fmt.Fprintf(&b, "| **mean of %d** | | | | **%.3f / %.3f** | **%.3f / %.3f** | %.3f / %.3f (of %d) | | | |\n",
			n, sumP/f, sumH/f, sumZP/f, sumZH/f, sumRP/float64(max(nr, 1)), sumRH/float64(max(nr, 1)), nr)
	}
	return b.String()
}
