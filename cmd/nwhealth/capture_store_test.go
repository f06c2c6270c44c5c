package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/netns"
	"github.com/nwhealth/nwhealth/internal/testenv"
)

// storedPackets queries every packet of the stores and checks their size.
func storedPackets(t *testing.T, frameLen int, stores ...string) int {
	t.Helper()
	args := []string{"query", "-w", "-"}
	for _, s := range stores {
		args = append(args, "--store", s)
	}
	code, out, errOut := nwh(t, nil, args...)
	if code != 0 {
		t.Fatalf("query: exit %d: %s", code, errOut)
	}
	pkts := readCapture(t, []byte(out))
	for i, p := range pkts {
		if len(p.Data) != frameLen || (i > 0 && p.Timestamp.Before(pkts[i-1].Timestamp)) {
			t.Fatalf("packet %d: %d bytes at %v (previous %v)", i, len(p.Data), p.Timestamp, pkts[max(i-1, 0)].Timestamp)
		}
	}
	return len(pkts)
}

// waitStored polls the stores until want 64-byte packets are queryable or
// 20 seconds pass (a loaded machine may run the capture's flush late), and
// returns the last count.
func waitStored(t *testing.T, want int, stores ...string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		time.Sleep(250 * time.Millisecond)
		n := storedPackets(t, 64, stores...)
		if n >= want || time.Now().After(deadline) {
			return n
		}
	}
}

// TestCaptureToStores captures with two workers into two stores: every
// packet sent is stored, shards are spread over both stores by worker, the
// flows are recorded, and both stores verify.
func TestCaptureToStores(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	testenv.Umask(t, 0o022) // a store left to the umask would be 0755/0644
	p := netns.NewPair(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	_, stderr, sent := captureRun(t, p, captureOptions{
		iface: p.DevB, stores: []string{a, b}, snaplen: 262144, workers: 2, ringSize: "64MiB",
		shardSize: "1M", flush: 100 * time.Millisecond, statsEvery: time.Second, format: "table",
	}, 200_000)
	if n := storedPackets(t, 64, a, b); n != int(sent) {
		t.Errorf("stores hold %d packets, %d sent:\n%s", n, sent, stderr)
	}
	for _, s := range []string{a, b} {
		if code, info, _ := nwh(t, nil, "store", "info", "--store", s, "--verify"); code != 0 || !strings.Contains(info, "0 open") {
			t.Errorf("store %s: exit %d:\n%s", s, code, info)
		}
		if n := testenv.NoOtherAccess(t, s); n < 7 {
			t.Errorf("store %s: %d entries", s, n)
		}
	}
	code, flows, _ := nwh(t, nil, "flows", "--store", a, "--store", b, "--format", "jsonl")
	if code != 0 || strings.Count(flows, `"type":"flow"`) < 64 || !strings.Contains(flows, p.AddrA.String()) {
		t.Errorf("flows: exit %d, %d records", code, strings.Count(flows, "\n"))
	}
}

// captureChild starts `nwhealth capture` as a child process inside the
// namespace and waits until it has opened its sockets.
func captureChild(t *testing.T, ns *netns.NS, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := ns.Command(context.Background(), os.Args[0], append([]string{"capture"}, args...)...)
	cmd.Env = append(os.Environ(), "NWHEALTH_TEST_MAIN=1")
	var errOut syncBuffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(errOut.String(), "capturing on"); {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("capture did not start: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, &errOut
}

func flood(t *testing.T, p *netns.Pair, f netns.UDPFlood, count int) uint64 {
	t.Helper()
	cfg, err := f.TrafgenConfig()
	if err != nil {
		t.Fatal(err)
	}
	sent, err := p.A.Trafgen(context.Background(), t, p.DevA, cfg, netns.TrafgenOptions{Count: count, Rate: "200000pps"})
	if err != nil {
		t.Fatal(err)
	}
	return sent
}

// TestCaptureQueryableAndKill: packets are queryable while capture runs
// (within --flush), and after kill -9 the store opens, answers queries with
// everything written, and the next writer seals the shards left open.
func TestCaptureQueryableAndKill(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	p := netns.NewPair(t)
	st := filepath.Join(t.TempDir(), "store")
	cmd, errOut := captureChild(t, p.B, "--store", st, "-i", p.DevB, "--flush", "200ms", "--ring-size", "32MiB", "--stats-every", "0")
	defer cmd.Process.Kill()
	sent := flood(t, p, p.Flood(), 30_000)
	// A quiet link: the flush interval writes the last block. How soon
	// depends on the machine's load, so the store is polled.
	if n := waitStored(t, int(sent), st); n != int(sent) {
		t.Fatalf("while capturing, %d of %d packets queryable: %s", n, sent, errOut.String())
	}
	more := flood(t, p, p.Flood(), 20_000)
	if n := waitStored(t, int(sent+more), st); n != int(sent+more) {
		t.Fatalf("while capturing, %d of %d packets queryable: %s", n, sent+more, errOut.String())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	n := storedPackets(t, 64, st)
	if n != int(sent+more) {
		t.Errorf("after kill -9: %d of %d packets readable", n, sent+more)
	}
	code, out, e := nwh(t, nil, "store", "repair", "--store", st)
	if code != 0 || !strings.Contains(out, "recovered") {
		t.Fatalf("repair: exit %d: %s %s", code, out, e)
	}
	if after := storedPackets(t, 64, st); after != n {
		t.Errorf("after repair %d packets, before %d", after, n)
	}
	if code, info, _ := nwh(t, nil, "store", "info", "--store", st, "--verify"); code != 0 {
		t.Errorf("verify: %s", info)
	}
}

// TestCaptureDiskFull fills a small tmpfs: capture says the disk is full,
// seals what it has and exits 5; the store stays valid.
func TestCaptureDiskFull(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	p := netns.NewPair(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "small")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot mount a tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	st := filepath.Join(mnt, "store")
	cmd, errOut := captureChild(t, p.B, "--store", st, "-i", p.DevB, "--ring-size", "32MiB", "--stats-every", "0", "--flush", "100ms")
	defer cmd.Process.Kill()
	// Random payloads do not compress: 1000-byte frames fill 4 MiB fast.
	cfg := strings.Replace(mustConfig(t, p, 1000), "fill(0x00, 958)", "drnd(958)", 1)
	if !strings.Contains(cfg, "drnd(958)") {
		t.Fatalf("unexpected trafgen config:\n%s", cfg)
	}
	p.A.Trafgen(context.Background(), t, p.DevA, cfg, netns.TrafgenOptions{Count: 20_000, Rate: "20000pps"})
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		t.Fatalf("capture did not stop on a full disk (%v): %s", <-done, errOut.String())
	}
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != exitNoSpace || !strings.Contains(errOut.String(), "disk full") {
		t.Fatalf("exit %v, want %d with 'disk full': %s", err, exitNoSpace, errOut.String())
	}
	if code, info, _ := nwh(t, nil, "store", "info", "--store", st, "--verify"); code != 0 || !strings.Contains(info, "0 open") {
		t.Errorf("store after disk full: exit %d:\n%s", code, info)
	}
	if n := storedPackets(t, 1000, st); n < 1000 {
		t.Errorf("only %d packets stored before the disk filled", n)
	}
}

func mustConfig(t *testing.T, p *netns.Pair, frameLen int) string {
	f := p.Flood()
	f.FrameLen = frameLen
	cfg, err := f.TrafgenConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func errorsAs(err error, target **exec.ExitError) bool { return errors.As(err, target) }
