package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/netns"
	"github.com/nwhealth/nwhealth/internal/s3test"
	"github.com/nwhealth/nwhealth/internal/testenv"
)

// fleetInputs are two real captures, one per sensor: beaconing traffic
// and a PsExec lateral movement over SMB/DCE-RPC.
func fleetInputs(t *testing.T) (a, b string) {
	return testenv.SharedFile(t, "pcaps", "beacons", "test7-malicious.pcap"),
		testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng")
}

// mustRun runs a command in-process and fails the test on another exit code.
func mustRun(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	code, out, errOut := nwh(t, nil, args...)
	if code != want {
		t.Fatalf("nwhealth %s: exit %d, want %d\nstderr: %s", strings.Join(args, " "), code, want, errOut)
	}
	return out, errOut
}

// fleetSetup imports the two captures into local stores A and B, and
// into the object store as sensors "a" and "b".
func fleetSetup(t *testing.T) (srv *s3test.Server, url, storeA, storeB, cache string) {
	t.Helper()
	capA, capB := fleetInputs(t)
	srv = s3test.Start(t)
	srv.Env(t)
	url = "s3://nwh/fleet"
	dir := t.TempDir()
	storeA, storeB, cache = filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "cache")
	mustRun(t, 0, "import", "--store", storeA, capA)
	mustRun(t, 0, "import", "--store", storeB, capB)
	out, _ := mustRun(t, 0, "import", "--store", url, "--sensor", "a", "--spool", filepath.Join(dir, "spool-a"), capA)
	if !strings.Contains(out, "uploaded 1 shards") {
		t.Fatalf("import to the object store: %s", out)
	}
	mustRun(t, 0, "import", "--store", url, "--sensor", "b", "--spool", filepath.Join(dir, "spool-b"), capB)
	if l, _ := os.ReadDir(filepath.Join(dir, "spool-a", "shards")); len(l) != 0 {
		t.Fatalf("the spool keeps %d files after upload", len(l))
	}
	return srv, url, storeA, storeB, cache
}

// TestFleetCommands: every reading command gives over the object store
// what it gives over the local stores holding the same packets.
func TestFleetCommands(t *testing.T) {
	srv, url, storeA, storeB, cache := fleetSetup(t)
	_ = srv
	dir := t.TempDir()
	for _, sel := range [][]string{nil, {"--host", "192.168.2.16"}, {"--port", "445"}, {"--proto", "udp"}} {
		local, remote := filepath.Join(dir, "l.pcap"), filepath.Join(dir, "r.pcap")
		mustRun(t, 0, append([]string{"query", "--store", storeA, "--store", storeB, "-w", local}, sel...)...)
		mustRun(t, 0, append([]string{"query", "--store", url, "--cache", cache, "-w", remote}, sel...)...)
		l, _ := os.ReadFile(local)
		r, _ := os.ReadFile(remote)
		if len(l) <= 24 && sel == nil {
			t.Fatalf("query %v: nothing stored", sel)
		}
		if !bytes.Equal(l, r) {
			t.Fatalf("query %v: %d bytes over the object store, %d over local stores", sel, len(r), len(l))
		}
		// The output is a capture tcpdump reads (the oracle of local queries).
		if tcpdump, err := exec.LookPath("tcpdump"); err == nil && len(r) > 24 {
			if out, err := exec.Command(tcpdump, "-r", remote, "-w", "/dev/null").CombinedOutput(); err != nil {
				t.Fatalf("tcpdump: %v %s", err, out)
			}
		}
	}
	// One sensor, by glob.
	mustRun(t, 0, "query", "--store", storeB, "-w", filepath.Join(dir, "l.pcap"))
	mustRun(t, 0, "query", "--store", url, "--sensor", "[b]", "--cache", cache, "-w", filepath.Join(dir, "r.pcap"))
	l, _ := os.ReadFile(filepath.Join(dir, "l.pcap"))
	r, _ := os.ReadFile(filepath.Join(dir, "r.pcap"))
	if !bytes.Equal(l, r) {
		t.Fatal("--sensor b differs from store B")
	}
	for _, args := range [][]string{
		{"flows", "--format", "jsonl"},
		{"replay", "--format", "jsonl"},
		{"hunt", "--format", "jsonl"},
	} {
		lo, _ := mustRun(t, 0, append(append([]string{}, args...), "--store", storeA, "--store", storeB)...)
		ro, _ := mustRun(t, 0, append(append([]string{}, args...), "--store", url, "--cache", cache)...)
		if lo != ro || len(lo) == 0 {
			t.Fatalf("%s: %d bytes over the object store, %d over local stores\n%s\n---\n%s", args[0], len(ro), len(lo), ro, lo)
		}
	}
	out, _ := mustRun(t, 0, "report", "--store", url, "--cache", cache, "--format", "jsonl")
	if !strings.Contains(out, `"type":"operation"`) {
		t.Fatalf("report over the object store has no operation:\n%s", out)
	}
	out, _ = mustRun(t, 0, "store", "info", "--store", url, "--verify", "--cache", cache)
	if !strings.Contains(out, "verified") || !strings.Contains(out, ": 0 damaged") {
		t.Fatalf("store info --verify:\n%s", out)
	}
	// JSON Lines (checked against the schemas by nwh): the same totals as
	// the local stores', every shard named after its sensor.
	out, _ = mustRun(t, 0, "store", "info", "--store", url, "--format", "jsonl", "--shards", "--cache", cache)
	la, _ := mustRun(t, 0, "store", "info", "--store", storeA, "--format", "jsonl")
	lb, _ := mustRun(t, 0, "store", "info", "--store", storeB, "--format", "jsonl")
	if !strings.Contains(out, `"name":"a/`) || !strings.Contains(out, `"name":"b/`) || packetsOf(t, out) != packetsOf(t, la)+packetsOf(t, lb) {
		t.Fatalf("store info jsonl:\n%s", out)
	}
	// store push ships a local store as another sensor; a second push
	// sends nothing.
	out, _ = mustRun(t, 0, "store", "push", "--store", storeA, "--to", url, "--sensor", "c")
	if !strings.Contains(out, "uploaded 1 shards") {
		t.Fatalf("push: %s", out)
	}
	out, _ = mustRun(t, 0, "store", "push", "--store", storeA, "--to", url, "--sensor", "c")
	if !strings.Contains(out, "uploaded 1 shards (0 B)") || !strings.Contains(out, "4 objects already there") {
		t.Fatalf("second push: %s", out)
	}
	mustRun(t, 0, "query", "--store", url, "--sensor", "c", "--cache", cache, "-w", filepath.Join(dir, "r.pcap"))
	mustRun(t, 0, "query", "--store", storeA, "-w", filepath.Join(dir, "l.pcap"))
	l, _ = os.ReadFile(filepath.Join(dir, "l.pcap"))
	r, _ = os.ReadFile(filepath.Join(dir, "r.pcap"))
	if !bytes.Equal(l, r) {
		t.Fatal("pushed sensor c differs from store A")
	}
}

// TestFleetFaults: wrong credentials, damage behind nwhealth's back, a
// server that stops during a query, slow answers and 503 SlowDown.
func TestFleetFaults(t *testing.T) {
	srv, url, _, storeB, cache := fleetSetup(t)
	dir := t.TempDir()

	// Wrong credentials: exit 1, the endpoint and bucket named, the
	// secret never printed.
	const secret = "not-the-secret-QWERTY-777"
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	code, _, errOut := nwh(t, nil, "query", "--store", url, "--cache", cache, "-w", filepath.Join(dir, "x.pcap"))
	if code != 1 || !strings.Contains(errOut, srv.Endpoint) || !strings.Contains(errOut, "s3://nwh/fleet") ||
		!strings.Contains(errOut, "access denied") || strings.Contains(errOut, secret) {
		t.Fatalf("wrong credentials: exit %d: %s", code, errOut)
	}
	code, _, errOut = nwh(t, nil, "import", "--store", url, "--sensor", "z", "--spool", filepath.Join(dir, "sp"), fleetCapture(t))
	if code != 1 || strings.Contains(errOut, secret) || !strings.Contains(errOut, srv.Endpoint) {
		t.Fatalf("import, wrong credentials: exit %d: %s", code, errOut)
	}
	srv.Env(t)

	// Slow answers and SlowDown: the same result.
	px := s3test.NewProxy(t, srv.Endpoint)
	s3test.SetEnv(t, px.Endpoint)
	px.Delay.Store(int64(20 * time.Millisecond))
	px.SlowDown.Store(3)
	mustRun(t, 0, "query", "--store", url, "--sensor", "b", "--cache", filepath.Join(dir, "c1"), "-w", filepath.Join(dir, "r.pcap"))
	mustRun(t, 0, "query", "--store", storeB, "-w", filepath.Join(dir, "l.pcap"))
	l, _ := os.ReadFile(filepath.Join(dir, "l.pcap"))
	r, _ := os.ReadFile(filepath.Join(dir, "r.pcap"))
	if !bytes.Equal(l, r) {
		t.Fatal("slow and throttled query differs")
	}
	px.Delay.Store(0)

	// The server stops during a query: exit 1, a clear error.
	px.FailAfter.Store(8)
	code, _, errOut = nwh(t, nil, "query", "--store", url, "--cache", filepath.Join(dir, "c2"), "-w", filepath.Join(dir, "x.pcap"))
	if code != 1 || !strings.Contains(errOut, "unavailable") || !strings.Contains(errOut, px.Endpoint) {
		t.Fatalf("server stopped mid-query: exit %d: %s", code, errOut)
	}
	px.Down.Store(false)

	// An object deleted and another changed behind nwhealth's back:
	// named, the rest delivered, exit 3; verify names both.
	var shards []string
	filepath.Walk(filepath.Join(srv.Dir, "nwh", "fleet", "sensors"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".shard") {
			shards = append(shards, p)
		}
		return nil
	})
	if len(shards) != 2 {
		t.Fatalf("%d shard objects", len(shards))
	}
	if err := os.Remove(shards[0]); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(shards[1])
	b[len(b)/2] ^= 0x55
	os.WriteFile(shards[1], b, 0o644)
	code, _, errOut = nwh(t, nil, "query", "--store", url, "--cache", filepath.Join(dir, "c3"), "-w", filepath.Join(dir, "x.pcap"))
	if code != 3 || !strings.Contains(errOut, filepath.Base(shards[0])) {
		t.Fatalf("deleted object: exit %d: %s", code, errOut)
	}
	code, out, _ := nwh(t, nil, "store", "info", "--store", url, "--verify", "--cache", filepath.Join(dir, "c4"))
	if code != 3 || !strings.Contains(out, "SHA-256") || !strings.Contains(out, "missing") {
		t.Fatalf("verify: exit %d:\n%s", code, out)
	}
}

func fleetCapture(t *testing.T) string {
	a, _ := fleetInputs(t)
	return a
}

// TestFleetSpool: an import while the object store is down keeps its
// shards in the spool (exit 1, named); the next run uploads them; a
// writer killed (-9) in the middle of an upload resumes without
// duplicates.
func TestFleetSpool(t *testing.T) {
	capA, capB := fleetInputs(t)
	srv := s3test.Start(t)
	px := s3test.NewProxy(t, srv.Endpoint)
	s3test.SetEnv(t, px.Endpoint)
	url := "s3://nwh/spool"
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	mustRun(t, 0, "import", "--store", url, "--sensor", "s", "--spool", spool, capB) // the marker, while up
	px.Down.Store(true)
	code, _, errOut := nwh(t, nil, "import", "--store", url, "--sensor", "s", "--spool", spool, "--upload-wait", "2s", capA)
	if code != 1 || !strings.Contains(errOut, "wait in the spool") {
		t.Fatalf("import while down: exit %d: %s", code, errOut)
	}
	if l, _ := filepath.Glob(filepath.Join(spool, "shards", "*.shard")); len(l) != 1 {
		t.Fatalf("spool holds %v", l)
	}
	px.Down.Store(false)
	// The next run (here an import of nothing new: stdin empty is refused,
	// so the same small capture again, as another sensor's spool would)
	// uploads what waited.
	mustRun(t, 0, "store", "push", "--store", spool, "--to", url, "--sensor", "s")

	// kill -9 in the middle of an upload, then a rerun: every packet
	// once.
	var puts atomic.Int32
	started := make(chan struct{}, 1)
	px.SetHook(func(r *http.Request) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, ".shard") {
			if puts.Add(1) == 1 {
				started <- struct{}{}
				time.Sleep(2 * time.Second) // the PUT is in flight when the writer dies
			}
		}
	})
	spool2 := filepath.Join(dir, "spool2")
	cmd := exec.CommandContext(context.Background(), os.Args[0], "import", "--store", url, "--sensor", "k", "--spool", spool2, capA)
	cmd.Env = append(os.Environ(), "NWHEALTH_TEST_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("no upload started")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	px.SetHook(nil)
	// The rerun (any import into the same spool) finishes the upload.
	mustRun(t, 0, "import", "--store", url, "--sensor", "k", "--spool", spool2, capB)
	local := filepath.Join(dir, "local")
	mustRun(t, 0, "import", "--store", local, capA, capB)
	mustRun(t, 0, "query", "--store", local, "-w", filepath.Join(dir, "l.pcap"))
	mustRun(t, 0, "query", "--store", url, "--sensor", "k", "--cache", filepath.Join(dir, "c"), "-w", filepath.Join(dir, "r.pcap"))
	l, _ := os.ReadFile(filepath.Join(dir, "l.pcap"))
	r, _ := os.ReadFile(filepath.Join(dir, "r.pcap"))
	if !bytes.Equal(l, r) {
		t.Fatalf("after kill -9 and rerun: %d bytes, want %d", len(r), len(l))
	}
}

// TestCaptureToObjectStore: capture records into its spool while the
// object store is down, and uploads everything once it is back; the
// bucket and the local store beside it (worker 1 writes there) then hold
// every packet sent.
func TestCaptureToObjectStore(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	testenv.Umask(t, 0o022) // a spool left to the umask would be 0755/0644
	srv := s3test.Start(t)
	px := s3test.NewProxy(t, srv.Endpoint)
	s3test.SetEnv(t, px.Endpoint)
	p := netns.NewPair(t)
	dir := t.TempDir()
	url := "s3://nwh/capture"
	mustRun(t, 0, "import", "--store", url, "--sensor", "cap", "--spool", filepath.Join(dir, "first"), fleetCapture(t)) // the marker
	px.Down.Store(true)
	go func() {
		// Back once the capture has met the outage: the client's own
		// retries (ten a request) of its start and of an upload refused.
		for deadline := time.Now().Add(time.Minute); px.Refused.Load() < 25 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		px.Down.Store(false)
	}()
	local := filepath.Join(dir, "local")
	opts := captureOptions{iface: p.DevB, stores: []string{url, local}, snaplen: 262144, workers: 2, ringSize: "64MiB",
		shardSize: "1M", flush: 100 * time.Millisecond, statsEvery: 0, format: "table"}
	opts.upload.sensor, opts.upload.spool, opts.upload.uploadWait = "cap2", filepath.Join(dir, "spool"), time.Minute
	_, stderr, sent := captureRun(t, p, opts, 100_000)
	if !strings.Contains(stderr, "retrying") || !strings.Contains(stderr, "uploaded") {
		t.Errorf("capture said:\n%s", stderr)
	}
	code, out, errOut := nwh(t, nil, "query", "--store", url, "--store", local, "--sensor", "cap2", "--cache", filepath.Join(dir, "c"), "-w", "-")
	if code != 0 {
		t.Fatalf("query: exit %d: %s", code, errOut)
	}
	if n := len(readCapture(t, []byte(out))); n != int(sent) {
		t.Fatalf("the object store holds %d of %d packets sent:\n%s", n, sent, stderr)
	}
	if l, _ := filepath.Glob(filepath.Join(dir, "spool", "shards", "*")); len(l) != 0 {
		t.Fatalf("spool left with %v", l)
	}
	for _, d := range []string{filepath.Join(dir, "spool"), local, filepath.Join(dir, "c")} {
		if n := testenv.NoOtherAccess(t, d); n < 3 {
			t.Errorf("%s: %d entries", d, n)
		}
	}
	_, remoteOnly, _ := nwh(t, nil, "query", "--store", url, "--sensor", "cap2", "--cache", filepath.Join(dir, "c"), "-w", "-")
	if n, m := len(readCapture(t, []byte(remoteOnly))), storedPackets(t, 64, local); n == 0 || m == 0 || n+m != int(sent) {
		t.Fatalf("object store %d, local store %d packets, %d sent", n, m, sent)
	}
}

// packetsOf is the packets of the "store" record of store info's JSON Lines.
func packetsOf(t *testing.T, jsonLines string) uint64 {
	t.Helper()
	for _, l := range strings.Split(jsonLines, "\n") {
		var rec struct {
			Type    string `json:"type"`
			Packets uint64 `json:"packets"`
		}
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Type == "store" {
			return rec.Packets
		}
	}
	t.Fatalf("no store record in %s", jsonLines)
	return 0
}
