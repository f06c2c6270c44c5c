package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/internal/netns"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

func TestCaptureUsage(t *testing.T) {
	for _, args := range [][]string{
		{"capture", "-w", "x.pcap"},
		{"capture", "-i", "lo"},
		{"capture", "-i", "lo", "-w", "x.pcap", "--ring-size", "lots"},
		{"capture", "-i", "lo", "-w", "x.pcap", "--format", "xml"},
		{"capture", "-i", "lo", "-w", "x.pcap", "extra"},
	} {
		var out, errOut bytes.Buffer
		if code := run(args, strings.NewReader(""), &out, &errOut); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, exitUsage, errOut.String())
		}
	}
}

// captureRun runs the command inside the receiving namespace while traffic
// is sent, stops it as SIGINT would, and returns its streams.
func captureRun(t *testing.T, p *netns.Pair, opts captureOptions, count int) (stdout, stderr string, sent uint64) {
	t.Helper()
	var out, errOut bytes.Buffer
	opts.s = streams{in: strings.NewReader(""), out: &out, errOut: &errOut}
	ready := make(chan struct{})
	opts.ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.B.Do(func() error { return runCapture(ctx, &opts) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("capture ended before starting: %v: %s", err, errOut.String())
	}
	cfg, err := p.Flood().TrafgenConfig()
	if err != nil {
		t.Fatal(err)
	}
	sent, err = p.A.Trafgen(context.Background(), t, p.DevA, cfg, netns.TrafgenOptions{Count: count})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		st, err := p.B.Stats(p.DevB)
		if err != nil {
			t.Fatal(err)
		}
		if st.RxPackets >= sent || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if opts.statsEvery < time.Second {
		time.Sleep(3 * opts.statsEvery) // let a stats line or two out
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("capture: %v: %s", err, errOut.String())
	}
	return out.String(), errOut.String(), sent
}

func countPcap(t *testing.T, path string) int {
	t.Helper()
	r, err := pcapio.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		p, err := r.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(p.Data) != 64 || p.OrigLen != 64 {
			t.Fatalf("%s: packet %d has %d bytes of %d", path, n, len(p.Data), p.OrigLen)
		}
		n++
	}
}

func TestCaptureCommand(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	testenv.Umask(t, 0o022) // os.Create's 0644 would show
	p := netns.NewPair(t)
	file := filepath.Join(t.TempDir(), "out.pcap")
	_, stderr, sent := captureRun(t, p, captureOptions{
		iface: p.DevB, write: file, snaplen: 262144, workers: 1, ringSize: "32MiB",
		statsEvery: 50 * time.Millisecond, format: "table",
	}, 50_000)
	if n := countPcap(t, file); n != int(sent) {
		t.Errorf("file holds %d packets, %d sent", n, sent)
	}
	if m, _ := modeOf(t, file); m != 0o600 {
		t.Errorf("-w file: %v, want -rw------- (evidence)", m)
	}
	if want := fmt.Sprintf("%d packets stored (%d bytes), 0 dropped by the kernel", sent, 64*sent); !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr)
	}
	if !strings.Contains(stderr, "capturing on "+p.DevB) || !strings.Contains(stderr, "packets (") {
		t.Errorf("no start or stats line on stderr:\n%s", stderr)
	}
}

func TestCaptureCommandWorkersFilterJSONL(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	p := netns.NewPair(t)
	file := filepath.Join(t.TempDir(), "out.pcap")
	// The flood's source ports run 0x0400..0x043f: keep the lower half.
	stdout, _, sent := captureRun(t, p, captureOptions{
		iface: p.DevB, write: file, snaplen: 262144, workers: 2, ringSize: "32MiB",
		filter: "udp src portrange 1024-1055", statsEvery: time.Hour, format: "jsonl",
	}, 64_000)
	total := countPcap(t, file+".0") + countPcap(t, file+".1")
	if total != int(sent)/2 {
		t.Errorf("files hold %d packets, want %d", total, sent/2)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var last struct {
		Type          string
		Time          string
		Packets       uint64
		KernelPackets uint64 `json:"kernel_packets"`
		KernelDrops   uint64 `json:"kernel_drops"`
		Workers       []map[string]uint64
	}
	jsonltest.Check(t, []byte(stdout))
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("last stdout line %q: %v", lines[len(lines)-1], err)
	}
	if last.Type != "capture_summary" || last.Packets != uint64(total) || last.KernelPackets != uint64(total) ||
		last.KernelDrops != 0 || len(last.Workers) != 2 {
		t.Errorf("summary %+v, want %d packets from 2 workers", last, total)
	}
	if _, err := time.Parse(time.RFC3339, last.Time); err != nil {
		t.Errorf("time %q: %v", last.Time, err)
	}
}

// TestCaptureCommandDuration runs the whole command line: --duration ends
// the capture with exit 0 and a valid, here empty, pcap file.
func TestCaptureCommandDuration(t *testing.T) {
	testenv.Root(t)
	p := netns.NewPair(t)
	file := filepath.Join(t.TempDir(), "idle.pcap")
	var out, errOut bytes.Buffer
	var code int
	t0 := time.Now()
	if err := p.B.Do(func() error {
		code = run([]string{"capture", "-i", p.DevB, "-w", file, "--duration", "300ms", "--ring-size", "8M"},
			strings.NewReader(""), &out, &errOut)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if took := time.Since(t0); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("a 300ms capture took %v", took)
	}
	if n := countPcap(t, file); n != 0 {
		t.Errorf("%d packets on an idle link", n)
	}
	if !strings.Contains(errOut.String(), "0 packets stored (0 bytes), 0 dropped by the kernel") {
		t.Errorf("stderr: %s", errOut.String())
	}
}

func TestCaptureCommandNoInterface(t *testing.T) {
	testenv.Root(t)
	p := netns.NewPair(t)
	var out, errOut bytes.Buffer
	var code int
	_ = p.B.Do(func() error {
		code = run([]string{"capture", "-i", "nwh-absent0", "-w", filepath.Join(t.TempDir(), "x.pcap")},
			strings.NewReader(""), &out, &errOut)
		return nil
	})
	if code != exitError || !strings.Contains(errOut.String(), "nwh-absent0") {
		t.Errorf("exit %d, stderr %q; want exit %d naming the interface", code, errOut.String(), exitError)
	}
}
