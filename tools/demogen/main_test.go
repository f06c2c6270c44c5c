package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/demogen"
	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/assets"
)

func TestRunWritesSampleLabelsAssets(t *testing.T) {
	dir := t.TempDir()
	pcap, labels, inv := filepath.Join(dir, "out", "s.pcap"), filepath.Join(dir, "l.json"), filepath.Join(dir, "a.yaml")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-o", pcap, "-labels", labels, "-assets", inv, "-duration", "1h", "-workstations", "10", "-seed", "5"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "labelled operations") || stdout.Len() != 0 {
		t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(pcap)
	if err != nil || len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("pcap: %v, %d bytes", err, len(b))
	}
	var l demogen.Labels
	raw, err := os.ReadFile(labels)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &l); err != nil || l.Seed != 5 || len(l.Operations) == 0 || l.End.Sub(l.Start).Hours() != 1 {
		t.Fatalf("labels: %v, %+v", err, l.Start)
	}
	if _, err := assets.LoadInventory(inv); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{pcap, labels, inv} {
		if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
			t.Errorf("%s.tmp left behind", p)
		}
	}

	// The same flags to standard output give the same bytes.
	stdout.Reset()
	if code := run([]string{"-o", "-", "-duration", "1h", "-workstations", "10", "-seed", "5"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !bytes.Equal(stdout.Bytes(), b) {
		t.Error("-o - differs from the file")
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"-o"},
		{"-o", "x.pcap", "extra"},
		{"-o", "x.pcap", "-start", "yesterday"},
		{"-o", "x.pcap", "-bogus"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	p := filepath.Join(t.TempDir(), "x.pcap")
	if code := run([]string{"-o", p, "-duration", "10m"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "at least an hour") {
		t.Errorf("short duration: exit %d, %q", code, stderr.String())
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Error("a failed run left its output")
	}
}

// TestDemoSteps runs the steps proposed for `make demo` with the nwhealth
// binary: generate, import, query, flows, hunt, replay from the store.
func TestDemoSteps(t *testing.T) {
	goTool := testenv.Tool(t, "go")
	root := testenv.ModuleRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "nwhealth")
	build := exec.Command(goTool, "build", "-o", bin, "./cmd/nwhealth")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pcap, labels, inv, st := filepath.Join(dir, "sample.pcap"), filepath.Join(dir, "labels.json"), filepath.Join(dir, "assets.yaml"), filepath.Join(dir, "store")
	var stderr bytes.Buffer
	if code := run([]string{"-o", pcap, "-labels", labels, "-assets", inv}, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("demogen: %s", stderr.String())
	}
	var l demogen.Labels
	raw, _ := os.ReadFile(labels)
	if err := json.Unmarshal(raw, &l); err != nil {
		t.Fatal(err)
	}
	zero := l.LateralPairs[0].Src
	nw := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("nwhealth %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String()
	}
	jsonl := func(s string) []map[string]any {
		t.Helper()
		jsonltest.Check(t, []byte(s))
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("bad line %q", line)
			}
			out = append(out, m)
		}
		return out
	}

	nw("import", "--store", st, pcap)

	first := l.Operations[0].Time.Add(-60e9).Format("2006-01-02T15:04:05Z")
	last := l.Operations[len(l.Operations)-1].Time.Add(60e9).Format("2006-01-02T15:04:05Z")
	q := filepath.Join(dir, "lateral.pcap")
	nw("query", "--store", st, "--host", zero, "--port", "445", "--from", first, "--to", last, "-w", q)
	if fi, err := os.Stat(q); err != nil || fi.Size() < 100_000 {
		t.Fatalf("query wrote %v %v", fi, err)
	}

	flows := jsonl(nw("flows", "--store", st, "--host", zero, "--port", "445", "--from", first, "--to", last, "--format", "jsonl"))
	dsts := map[string]bool{}
	for _, f := range flows {
		if v, ok := f["resp"].(string); ok && f["type"] == "flow" {
			dsts[v] = true
		}
	}
	for _, p := range l.LateralPairs {
		if p.Port == 445 && !dsts[p.Dst] {
			t.Errorf("flows: no SMB flow to %s (%v)", p.Dst, dsts)
		}
	}

	findings := jsonl(nw("hunt", "--store", st, "--assets", inv, "--format", "jsonl"))
	if f := findings[0]; f["src"] != zero || f["asset"] != "ws-017" {
		t.Errorf("hunt: first finding %v", f)
	}

	ops := 0
	for _, o := range jsonl(nw("replay", "--store", st, "--format", "jsonl")) {
		if o["type"] != "operation" {
			continue
		}
		ops++
		if o["src"] != zero || o["user"] != "svc_backup" {
			t.Errorf("replay: %v", o)
		}
	}
	purpose := 0
	for _, o := range l.Operations {
		if o.Technique != "" {
			purpose++
		}
	}
	if ops < purpose || ops > len(l.Operations) {
		t.Errorf("replay shows %d operations; %d labelled, %d with a technique", ops, len(l.Operations), purpose)
	}
}
