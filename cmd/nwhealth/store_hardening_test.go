package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"golang.org/x/sys/unix"
)

// TestHostileStore runs every store command on a store with a LOCK and a
// RESERVE planted as links to files elsewhere and named pipes under shard
// names: the linked files stay as they were, nothing hangs, the pipes are
// named and the exit status is 3.
func TestHostileStore(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	in := filepath.Join(dir, "in.pcap")
	pkts := genCapture(t, in, pkthdr.LinkEthernet, 3000, start, false)
	st := tempStore(t)
	os.MkdirAll(filepath.Join(st, "shards"), 0o755)
	victims := map[string][]byte{}
	for _, n := range []string{"LOCK", "RESERVE"} {
		v := filepath.Join(dir, "victim-"+n)
		victims[v] = []byte("not yours to truncate\n")
		os.WriteFile(v, victims[v], 0o600)
		os.Symlink(v, filepath.Join(st, n))
	}
	for _, n := range []string{"20260302T000000Z_20260302T235959Z_imp-00000007.shard", "imp-00000009.shard.open"} {
		if err := syscall.Mkfifo(filepath.Join(st, "shards", n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		code     int
		out, err string
	}
	runs := []struct {
		args []string
		want int
	}{
		{[]string{"import", "--store", st, in}, exitPartial},
		{[]string{"query", "--store", st, "-w", filepath.Join(dir, "out.pcap")}, exitPartial},
		{[]string{"store", "info", "--store", st, "--verify"}, exitPartial},
		{[]string{"store", "repair", "--store", st}, exitPartial},
		{[]string{"flows", "--store", st, "--format", "jsonl"}, exitPartial},
	}
	for _, r := range runs {
		done := make(chan result, 1)
		go func() {
			code, out, errOut := nwh(t, nil, r.args...)
			done <- result{code, out, errOut}
		}()
		select {
		case res := <-done:
			all := res.out + res.err
			if res.code != r.want || !strings.Contains(all, "imp-00000009.shard.open") {
				t.Errorf("%s: exit %d (want %d): %s", strings.Join(r.args[:2], " "), res.code, r.want, all)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s hangs on a named pipe", strings.Join(r.args, " "))
		}
	}
	for v, want := range victims {
		if got, _ := os.ReadFile(v); !bytes.Equal(got, want) {
			t.Errorf("%s was written through a planted link: %d bytes", filepath.Base(v), len(got))
		}
	}
	out, _ := os.ReadFile(filepath.Join(dir, "out.pcap"))
	comparePackets(t, "query", readCapture(t, out), pkts)
}

// TestRepairAndVerify damages a sealed shard's trailer (cutting it off
// mid-block) and its flow file, and another shard's pcap header frame:
// store info --verify names each, store repair mends each, and the store
// then verifies.
func TestRepairAndVerify(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	st := tempStore(t)
	var all []pcapio.Packet
	for day := 0; day < 3; day++ {
		in := filepath.Join(dir, "in"+strconv.Itoa(day)+".pcap")
		all = append(all, genCapture(t, in, pkthdr.LinkEthernet, 2000, start.Add(time.Duration(day)*24*time.Hour), false)...)
		if code, _, e := nwh(t, nil, "import", "--store", st, "--block-size", "8K", in); code != 0 {
			t.Fatal(e)
		}
	}
	shards, _ := filepath.Glob(filepath.Join(st, "shards", "*.shard"))
	if len(shards) != 3 {
		t.Fatalf("%d shards", len(shards))
	}
	// Shard 0: cut in the middle of its last block (its trailer gone).
	b, _ := os.ReadFile(shards[0])
	trailer := int(binary.LittleEndian.Uint32(b[len(b)-12:]))
	os.WriteFile(shards[0], b[:len(b)-trailer-300], 0o644)
	// Shard 1: a flipped byte in its flow file.
	flows := strings.TrimSuffix(shards[1], ".shard") + ".flows"
	b, _ = os.ReadFile(flows)
	b[len(b)/2] ^= 0x20
	os.WriteFile(flows, b, 0o644)
	// Shard 2: the link type in its pcap header frame (bytes 48 to 80).
	b, _ = os.ReadFile(shards[2])
	b[48+4+1+1+3+20] ^= 1
	os.WriteFile(shards[2], b, 0o644)

	code, info, _ := nwh(t, nil, "store", "info", "--store", st, "--verify")
	if code != exitPartial {
		t.Fatalf("verify of a damaged store: exit %d: %s", code, info)
	}
	for _, want := range []string{"ends inside a block", "flows:", "pcap header frame"} {
		if !strings.Contains(info, want) {
			t.Errorf("verify does not report %q:\n%s", want, info)
		}
	}
	code, out, errOut := nwh(t, nil, "store", "repair", "--store", st)
	if code != 0 || strings.Count(out, "repaired") != 3 {
		t.Fatalf("repair: exit %d: %s %s", code, out, errOut)
	}
	if code, info, _ := nwh(t, nil, "store", "info", "--store", st, "--verify"); code != 0 {
		t.Fatalf("verify after repair: exit %d: %s", code, info)
	}
	code, q, _ := nwh(t, nil, "query", "--store", st, "-w", "-")
	got := readCapture(t, []byte(q))
	if code != 0 || len(got) < len(all)-200 || len(got) >= len(all) {
		t.Errorf("query after repair: exit %d, %d packets of %d (the last block of shard 0 is lost)", code, len(got), len(all))
	}
	// An independent reader of the repaired shards: zstd -dc gives pcap
	// that tcpdump reads whole.
	zstdCmd, tcpdump := testenv.Tool(t, "zstd"), testenv.Tool(t, "tcpdump")
	total := 0
	for _, s := range shards {
		plain, err := exec.Command(zstdCmd, "-dc", s).Output()
		if err != nil {
			t.Fatalf("zstd -dc %s: %v", filepath.Base(s), err)
		}
		cmd := exec.Command(tcpdump, "-nn", "-r", "-")
		cmd.Stdin = bytes.NewReader(plain)
		o, err := cmd.Output()
		if err != nil {
			t.Fatalf("tcpdump on %s: %v", filepath.Base(s), err)
		}
		total += strings.Count(string(o), "\n")
	}
	if total != len(got) {
		t.Errorf("tcpdump reads %d packets from the repaired shards, query %d", total, len(got))
	}
}

// TestImportUnreadable imports three files of which the middle one does
// not exist and another is not a capture: the readable ones are imported,
// the others named, and the exit status is 1.
func TestImportUnreadable(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	a, b := filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcap")
	pa := genCapture(t, a, pkthdr.LinkEthernet, 1000, start, false)
	pb := genCapture(t, b, pkthdr.LinkEthernet, 1000, start.Add(time.Hour), false)
	junk := filepath.Join(dir, "notes.txt")
	os.WriteFile(junk, []byte("not a capture at all"), 0o644)
	st := tempStore(t)
	code, out, errOut := nwh(t, nil, "import", "--store", st, a, filepath.Join(dir, "missing.pcap"), junk, b)
	if code != exitError || !strings.Contains(out+errOut, "missing.pcap") || !strings.Contains(out+errOut, "notes.txt") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	code, q, _ := nwh(t, nil, "query", "--store", st, "-w", "-")
	if code != 0 {
		t.Fatal("query failed")
	}
	comparePackets(t, "imported", readCapture(t, []byte(q)), append(pa, pb...))
}

// TestDiskFullCounts fills a small tmpfs: the summary counts what the
// store holds (store info agrees), and when the shard cannot be sealed
// either (no reserve could be freed), that is reported and the exit
// status is 1, not 5; store repair seals it once there is room.
func TestDiskFullCounts(t *testing.T) {
	testenv.Root(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.pcap")
	var buf bytes.Buffer
	w, _ := pcapio.NewWriter(&buf, pkthdr.LinkEthernet, 65535, false)
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	x := uint64(88172645463325252)
	for i := 0; i < 9000; i++ {
		d := frameSpec{lt: pkthdr.LinkEthernet, proto: 17, src: []byte{10, 0, 0, 1}, dst: []byte{10, 0, 0, 2}, sport: 1000, dport: 2000, payload: 1300}.bytes()
		for j := 42; j < len(d); j++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			d[j] = byte(x)
		}
		w.WritePacket(start.Add(time.Duration(i)*time.Millisecond), d, len(d))
	}
	os.WriteFile(in, buf.Bytes(), 0o644)
	summary := regexp.MustCompile(`stored (\d+) packets.*, (\d+) shards sealed`)
	for _, noReserve := range []bool{false, true} {
		mnt := filepath.Join(dir, "small"+strconv.FormatBool(noReserve))
		os.Mkdir(mnt, 0o755)
		opts := "size=3m"
		if noReserve {
			// Room for the store's directories, LOCK, a directory where
			// the reserve goes and the shard, and not one file more: no
			// room can be freed, and no index or flow file made.
			opts += ",nr_inodes=6"
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "tmpfs", mnt).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
		}
		defer exec.Command("umount", mnt).Run()
		st := filepath.Join(mnt, "store")
		if noReserve {
			// A directory where the reserve goes: no room can be freed.
			os.MkdirAll(filepath.Join(st, "RESERVE"), 0o755)
		}
		code, out, errOut := nwh(t, nil, "import", "--store", st, "--block-size", "64K", in)
		m := summary.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no summary: %s %s", out, errOut)
		}
		if !noReserve {
			if code != exitNoSpace {
				t.Fatalf("import: exit %d, want %d: %s", code, exitNoSpace, errOut)
			}
			_, info, _ := nwh(t, nil, "store", "info", "--store", st, "--format", "jsonl")
			var rep struct {
				Packets uint64 `json:"packets"`
				Shards  int    `json:"shards"`
			}
			for _, line := range strings.Split(strings.TrimSpace(info), "\n") {
				if strings.Contains(line, `"type":"store"`) {
					json.Unmarshal([]byte(line), &rep)
				}
			}
			if m[1] != strconv.FormatUint(rep.Packets, 10) || m[2] != strconv.Itoa(rep.Shards) || rep.Shards == 0 {
				t.Errorf("summary says %s packets in %s shards, the store holds %d in %d", m[1], m[2], rep.Packets, rep.Shards)
			}
			continue
		}
		open, _ := filepath.Glob(filepath.Join(st, "shards", "*.shard.open"))
		if code != exitError || len(open) != 1 || !strings.Contains(errOut, filepath.Base(open[0])) || !strings.Contains(errOut, "store repair") {
			t.Fatalf("unsealed after disk full: exit %d, open %v: %s", code, open, errOut)
		}
		if m[2] != "0" {
			t.Errorf("summary says %s shards sealed; none was", m[2])
		}
		if out, err := exec.Command("mount", "-o", "remount,size=8m,nr_inodes=100", mnt).CombinedOutput(); err != nil {
			t.Fatalf("remount: %v %s", err, out)
		}
		if code, out, e := nwh(t, nil, "store", "repair", "--store", st); code != 0 || !strings.Contains(out, "recovered") {
			t.Fatalf("repair: exit %d: %s %s", code, out, e)
		}
		if code, info, _ := nwh(t, nil, "store", "info", "--store", st, "--verify"); code != 0 {
			t.Errorf("verify after repair: exit %d: %s", code, info)
		}
	}
}

// TestImportLargePackets imports a capture whose snaplen admits frames of
// 300,000 bytes and 9 MiB: the first is stored and queried back whole,
// the second (past the 8 MiB a store record holds) is named, its first
// 8 MiB kept, and the exit status is 3.
func TestImportLargePackets(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	in := filepath.Join(dir, "in.pcap")
	pkts := genCapture(t, in, pkthdr.LinkEthernet, 200, start, false)
	var buf bytes.Buffer
	w, _ := pcapio.NewWriter(&buf, pkthdr.LinkEthernet, 16<<20, false)
	for i, n := range map[int]int{50: 300000, 120: 9 << 20} {
		d := make([]byte, n)
		copy(d, pkts[i].Data)
		for j := len(pkts[i].Data); j < n; j++ {
			d[j] = byte(j / 7)
		}
		pkts[i].Data, pkts[i].OrigLen = d, n
	}
	for _, p := range pkts {
		w.WritePacket(p.Timestamp, p.Data, p.OrigLen)
	}
	os.WriteFile(in, buf.Bytes(), 0o644)
	st := tempStore(t)
	code, out, errOut := nwh(t, nil, "import", "--store", st, in)
	if code != exitPartial || !strings.Contains(out, "longer than the 8388608") {
		t.Fatalf("import: exit %d: %s %s", code, out, errOut)
	}
	code, q, errOut := nwh(t, nil, "query", "--store", st, "-w", "-")
	if code != 0 {
		t.Fatalf("query: exit %d: %s", code, errOut)
	}
	got := readCapture(t, []byte(q))
	pkts[120].Data = pkts[120].Data[:pcapio.MaxRecord]
	comparePackets(t, "large packets", got, pkts)
	if code, info, _ := nwh(t, nil, "store", "info", "--store", st, "--verify"); code != 0 {
		t.Errorf("verify: exit %d: %s", code, info)
	}
}

// openPTY returns a pseudo-terminal's master and the path of its slave.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	return m, "/dev/pts/" + strconv.Itoa(n)
}

// TestQueryOutputSafety: query -w refuses (exit 2) an output inside the
// store it reads or any other, however reached (a symbolic or hard link),
// and a terminal named by path; the shard is left as it was and nothing
// reaches the terminal.
func TestQueryOutputSafety(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	in := filepath.Join(dir, "in.pcap")
	genCapture(t, in, pkthdr.LinkEthernet, 500, start, false)
	st, other := filepath.Join(dir, "store"), filepath.Join(dir, "other")
	for _, s := range []string{st, other} {
		if code, _, e := nwh(t, nil, "import", "--store", s, in); code != 0 {
			t.Fatal(e)
		}
	}
	shards, _ := filepath.Glob(filepath.Join(st, "shards", "*.shard"))
	before, _ := os.ReadFile(shards[0])
	os.Symlink(shards[0], filepath.Join(dir, "link.pcap"))
	os.Symlink(filepath.Join(st, "shards"), filepath.Join(dir, "shardsdir"))
	os.Link(shards[0], filepath.Join(dir, "hard.pcap"))
	_, pts := openPTY(t)
	for _, out := range []string{
		shards[0],
		filepath.Join(st, "shards", "new.pcap"),
		filepath.Join(st, "out.pcap"),
		filepath.Join(dir, "link.pcap"),
		filepath.Join(dir, "shardsdir", "x.pcap"),
		filepath.Join(dir, "hard.pcap"),
		filepath.Join(other, "shards", "x.pcap"),
		pts,
	} {
		code, _, errOut := nwh(t, nil, "query", "--store", st, "-w", out)
		if code != exitUsage {
			t.Errorf("-w %s: exit %d, want %d: %s", out, code, exitUsage, errOut)
		}
	}
	if after, _ := os.ReadFile(shards[0]); !bytes.Equal(before, after) {
		t.Error("a query changed a shard of its store")
	}
	if code, _, e := nwh(t, nil, "query", "--store", st, "-w", filepath.Join(dir, "fine.pcap")); code != 0 {
		t.Errorf("-w outside the store: exit %d: %s", code, e)
	}
}

// TestQueryMemoryOverlap imports a small zstd-compressed capture whose
// packets alternate between two times an hour apart, so that every block
// overlaps every other, and queries it whole in a child process: its
// peak memory stays far below the bytes delivered, and every packet comes
// out in time order.
func TestQueryMemoryOverlap(t *testing.T) {
	zstdCmd := testenv.Tool(t, "zstd")
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	w, _ := pcapio.NewWriter(&buf, pkthdr.LinkEthernet, 65535, false)
	const n = 100000 // 139 MiB of pcap
	for i := 0; i < n; i++ {
		d := frameSpec{lt: pkthdr.LinkEthernet, proto: 17, src: []byte{10, 0, 0, 1}, dst: []byte{10, 0, 0, 2}, sport: 1000, dport: 2000, payload: 1400}.bytes()
		ts := start.Add(time.Duration(i/2) * time.Millisecond)
		if i%2 == 1 {
			ts = ts.Add(time.Hour)
		}
		w.WritePacket(ts, d, len(d))
	}
	in := filepath.Join(dir, "in.pcap")
	os.WriteFile(in, buf.Bytes(), 0o644)
	if out, err := exec.Command(zstdCmd, "-q", "--rm", in).CombinedOutput(); err != nil {
		t.Fatalf("zstd: %v %s", err, out)
	}
	st := tempStore(t)
	if code, _, e := nwh(t, nil, "import", "--store", st, in+".zst"); code != 0 {
		t.Fatal(e)
	}
	out := filepath.Join(dir, "out.pcap")
	cmd := child(t, "query", "--store", st, "-w", out)
	cmd.Env = append(cmd.Env, "NWHEALTH_TEST_PEAK=1")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("query: %v %s", err, b)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no peak memory reported: %s", b)
	}
	peak, _ := strconv.ParseInt(string(m[1]), 10, 64)
	peak <<= 10
	fi, _ := os.Stat(out)
	t.Logf("query of %d MiB: peak %d MiB", fi.Size()>>20, peak>>20)
	// The query's memory limit (32 MiB), its passes' arenas and the
	// program itself, whatever the store holds; a build with the race
	// detector takes more.
	if bound := int64(100<<20) * raceFactor; peak > bound || fi.Size() < 100<<20 {
		t.Errorf("query of %d MiB held %d MiB (bound %d MiB)", fi.Size()>>20, peak>>20, bound>>20)
	}
	b, _ = os.ReadFile(out)
	got := readCapture(t, b)
	if len(got) != n {
		t.Fatalf("%d packets of %d", len(got), n)
	}
	for i := 1; i < n; i++ {
		if got[i].Timestamp.Before(got[i-1].Timestamp) {
			t.Fatalf("packet %d out of time order", i)
		}
	}
}
