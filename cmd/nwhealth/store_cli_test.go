package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// tcpdumpSelect runs tcpdump -r FILE -w - EXPR and returns its packets.
func tcpdumpSelect(t *testing.T, tcpdump, file, expr string) []pcapio.Packet {
	t.Helper()
	args := []string{"-r", file, "-w", "-"}
	if expr != "" {
		args = append(args, expr)
	}
	cmd := exec.Command(tcpdump, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpdump %q: %v: %s", expr, err, stderr.String())
	}
	return readCapture(t, out)
}

// queryCase is one selector set and the tcpdump expressions whose union
// selects the same packets. Selectors see through VLAN tags; tcpdump needs
// "vlan" for each tag, and since "vlan" shifts the offsets of everything
// after it, even across "or", each depth is a separate tcpdump run.
type queryCase struct {
	args  []string
	exprs []string
}

func throughVLAN(e string) []string {
	return []string{e, "vlan and (" + e + ")", "vlan and vlan and (" + e + ")"}
}

// tcpdumpUnion merges the selections of several expressions by time; the
// generated captures have unique timestamps.
func tcpdumpUnion(t *testing.T, tcpdump, file string, exprs []string) []pcapio.Packet {
	if len(exprs) == 1 {
		return tcpdumpSelect(t, tcpdump, file, exprs[0])
	}
	seen := map[time.Time]pcapio.Packet{}
	for _, e := range exprs {
		for _, p := range tcpdumpSelect(t, tcpdump, file, e) {
			seen[p.Timestamp] = p
		}
	}
	out := make([]pcapio.Packet, 0, len(seen))
	for _, p := range seen {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timestamp.Before(out[j].Timestamp) })
	return out
}

// queryInput is a capture to import and query; vlans says whether its
// frames carry VLAN tags (selectors see through them, tcpdump needs
// "vlan").
type queryInput struct {
	path  string
	vlans bool
}

// TestQueryMatchesTcpdump imports generated captures of every supported
// link type and checks that query returns, packet for packet, what tcpdump
// selects from the original file. It needs no shared data.
func TestQueryMatchesTcpdump(t *testing.T) {
	tcpdump := testenv.Tool(t, "tcpdump")
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var inputs []queryInput
	for _, g := range []struct {
		name  string
		lt    pkthdr.LinkType
		nanos bool
	}{
		{"ether-vlan.pcap", pkthdr.LinkEthernet, false},
		{"ether-nano.pcap", pkthdr.LinkEthernet, true},
		{"sll.pcap", pkthdr.LinkLinuxSLL, false},
		{"raw.pcap", pkthdr.LinkRaw, false},
		{"sll2.pcap", pkthdr.LinkSLL2, true},
	} {
		p := filepath.Join(dir, g.name)
		genCapture(t, p, g.lt, 3000, start, g.nanos)
		inputs = append(inputs, queryInput{p, g.lt == pkthdr.LinkEthernet})
	}
	queryVsTcpdump(t, tcpdump, inputs)
}

// TestQueryMatchesTcpdumpShared is TestQueryMatchesTcpdump on the shared
// real captures.
func TestQueryMatchesTcpdumpShared(t *testing.T) {
	tcpdump := testenv.Tool(t, "tcpdump")
	var inputs []queryInput
	for _, rel := range []string{
		"pcaps/beacons/test-cc-capture-1.pcap",
		"pcaps/beacons/test7-malicious.pcap",
		"pcaps/remote-ops/zeek/smb2.pcap",
		"pcaps/remote-ops/otrf/empire_find_localadmin_smb_svcctl_OpenSCManager_2020-09-22021559.cap",
		"pcaps/remote-ops/pcap-attack/LM_psexec_smb_dcerpc_epm_svcctl.pcapng",
	} {
		inputs = append(inputs, queryInput{path: testenv.SharedFile(t, strings.Split(rel, "/")...)})
	}
	queryVsTcpdump(t, tcpdump, inputs)
}

// queryVsTcpdump imports each input into a store of its own and compares
// query's answer to tcpdump's for selectors built from the input's rarest
// and commonest hosts and ports.
func queryVsTcpdump(t *testing.T, tcpdump string, inputs []queryInput) {
	for _, in := range inputs {
		t.Run(filepath.Base(in.path), func(t *testing.T) {
			st := filepath.Join(t.TempDir(), "store")
			if code, _, errOut := nwh(t, nil, "import", "--store", st, "--block-size", "8K", in.path); code != 0 {
				t.Fatalf("import exit %d: %s", code, errOut)
			}
			orig := tcpdumpSelect(t, tcpdump, in.path, "")
			hosts := map[string]int{}
			ports := map[uint16]int{}
			for _, p := range orig {
				var h pkthdr.Packet
				pkthdr.Parse(p.LinkType, p.Data, &h)
				if h.IPVersion != 0 {
					hosts[h.Src.String()]++
				}
				if h.HasPorts {
					ports[h.DstPort]++
				}
			}
			// The least and the most common host and port: rare keys test
			// pruning, common ones test merging.
			rare, common := extremes(hosts)
			rport, cport := extremes(ports)
			wrap := func(e string) []string {
				if in.vlans {
					return throughVLAN(e)
				}
				return []string{e}
			}
			one := func(e string) []string { return []string{e} }
			ip6 := one("ip6")
			if in.vlans {
				ip6 = throughVLAN("ip6")
			}
			cases := []queryCase{
				{nil, one("")},
				{[]string{"--host", rare}, wrap("host " + rare)},
				{[]string{"--host", common}, wrap("host " + common)},
				{[]string{"--host", rare, "--host", common}, wrap(fmt.Sprintf("host %s or host %s", rare, common))},
				{[]string{"--port", fmt.Sprint(rport)}, wrap(fmt.Sprintf("port %d", rport))},
				{[]string{"--port", fmt.Sprint(cport), "--proto", "tcp"}, wrap(fmt.Sprintf("tcp port %d", cport))},
				{[]string{"--proto", "udp"}, wrap("udp")},
				{[]string{"--filter", "tcp[tcpflags] & tcp-push != 0"}, one("tcp[tcpflags] & tcp-push != 0")},
				{[]string{"--proto", "tcp", "--proto", "udp", "--host", rare}, wrap(fmt.Sprintf("(tcp or udp) and host %s", rare))},
			}
			for _, e := range ip6 {
				cases = append(cases, queryCase{[]string{"--filter", e}, one(e)})
			}
			if strings.Contains(rare, ".") {
				net := rare[:strings.LastIndexByte(rare, '.')] + ".0/24"
				cases = append(cases, queryCase{[]string{"--net", net}, wrap("net " + net)})
			}
			if in.vlans {
				cases = append(cases, queryCase{[]string{"--vlan", "101"}, one("vlan 101")},
					queryCase{[]string{"--vlan", "300"}, one("vlan and vlan 300")},
					queryCase{[]string{"--filter", "vlan 200 and vlan 300"}, one("vlan 200 and vlan 300")})
			}
			for _, c := range cases {
				args := append([]string{"query", "--store", st, "-w", "-"}, c.args...)
				code, out, errOut := nwh(t, nil, args...)
				if code != 0 {
					t.Fatalf("query %v: exit %d: %s", c.args, code, errOut)
				}
				comparePackets(t, fmt.Sprintf("query %v vs tcpdump %q", c.args, c.exprs), readCapture(t, []byte(out)), tcpdumpUnion(t, tcpdump, in.path, c.exprs))
			}
			// Time selectors: the oracle is the original packets in range.
			if len(orig) > 10 {
				from, to := orig[len(orig)/4].Timestamp, orig[len(orig)/2].Timestamp
				var want []pcapio.Packet
				for _, p := range orig {
					if !p.Timestamp.Before(from) && p.Timestamp.Before(to) {
						want = append(want, p)
					}
				}
				code, out, errOut := nwh(t, nil, "query", "--store", st, "-w", "-", "--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano))
				if code != 0 {
					t.Fatalf("time query: exit %d: %s", code, errOut)
				}
				comparePackets(t, "time range", readCapture(t, []byte(out)), want)
			}
		})
	}
}

func extremes[K comparable](m map[K]int) (rare, common K) {
	lo, hi := -1, -1
	for k, n := range m {
		if lo < 0 || n < lo || (n == lo && fmt.Sprint(k) < fmt.Sprint(rare)) {
			lo, rare = n, k
		}
		if n > hi || (n == hi && fmt.Sprint(k) < fmt.Sprint(common)) {
			hi, common = n, k
		}
	}
	return rare, common
}

// TestImportFormats imports the same packets as pcap, pcapng (mixed link
// types), gzip, zstd and from standard input, and reads them all back.
func TestImportFormats(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	eth := genCapture(t, filepath.Join(dir, "a.pcap"), pkthdr.LinkEthernet, 500, start, true)
	sll := genCapture(t, filepath.Join(dir, "b.pcap"), pkthdr.LinkLinuxSLL, 300, start.Add(time.Hour), false)
	raw, _ := os.ReadFile(filepath.Join(dir, "a.pcap"))
	gzPath := filepath.Join(dir, "a.pcap.gz")
	if out, err := exec.Command("sh", "-c", "gzip -c "+filepath.Join(dir, "a.pcap")+" > "+gzPath).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	zstPath := filepath.Join(dir, "b.pcap.zst")
	if out, err := exec.Command(testenv.Tool(t, "zstd"), "-q", "-o", zstPath, filepath.Join(dir, "b.pcap")).CombinedOutput(); err != nil {
		t.Fatalf("zstd: %v %s", err, out)
	}
	// pcapng mixing two link types, written by our own writer.
	var ng bytes.Buffer
	nw, _ := pcapio.NewNgWriter(&ng, []pkthdr.LinkType{pkthdr.LinkEthernet, pkthdr.LinkLinuxSLL}, 65535)
	for i := range 100 {
		nw.WritePacket(0, eth[i].Timestamp.Add(2*time.Hour), eth[i].Data, eth[i].OrigLen)
		nw.WritePacket(1, sll[i].Timestamp.Add(2*time.Hour), sll[i].Data, sll[i].OrigLen)
	}
	ngPath := filepath.Join(dir, "c.pcapng")
	os.WriteFile(ngPath, ng.Bytes(), 0o644)

	st := tempStore(t)
	code, out, errOut := nwh(t, bytes.NewReader(raw), "import", "--store", st, gzPath, zstPath, ngPath, "-")
	if code != 0 {
		t.Fatalf("import exit %d: %s %s", code, out, errOut)
	}
	if !strings.Contains(out, "stored 1500 packets") {
		t.Errorf("summary: %s", out)
	}
	code, pcapOut, errOut := nwh(t, nil, "query", "--store", st, "-w", "-", "--from", start.Add(90*time.Minute).Format(time.RFC3339))
	if code != 0 {
		t.Fatalf("query exit %d: %s", code, errOut)
	}
	got := readCapture(t, []byte(pcapOut))
	if len(got) != 200 || !bytes.HasPrefix([]byte(pcapOut), []byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		t.Fatalf("mixed link types: %d packets (want 200) as pcapng", len(got))
	}
	lts := map[pkthdr.LinkType]int{}
	for _, p := range got {
		lts[p.LinkType]++
	}
	if lts[pkthdr.LinkEthernet] != 100 || lts[pkthdr.LinkLinuxSLL] != 100 {
		t.Errorf("link types %v", lts)
	}
	// Everything from the gzip file and stdin (the same packets, twice).
	code, pcapOut, _ = nwh(t, nil, "query", "--store", st, "-w", "-", "--to", start.Add(30*time.Minute).Format(time.RFC3339))
	if code != 0 {
		t.Fatal("query failed")
	}
	got = readCapture(t, []byte(pcapOut))
	if len(got) != 1000 {
		t.Fatalf("%d packets from the gzip file and stdin, want 1000", len(got))
	}
	for i := 0; i < 500; i++ {
		if !got[2*i].Timestamp.Equal(eth[i].Timestamp) || !bytes.Equal(got[2*i+1].Data, eth[i].Data) {
			t.Fatalf("packet %d differs", i)
		}
	}
}

// TestImportDamaged checks that a truncated or garbled capture keeps every
// valid packet, names the byte offset and exits 3.
func TestImportDamaged(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	good := filepath.Join(dir, "good.pcap")
	pkts := genCapture(t, good, pkthdr.LinkEthernet, 400, start, false)
	b, _ := os.ReadFile(good)
	// Offset of record i.
	off := func(i int) int {
		o := 24
		for j := 0; j < i; j++ {
			o += 16 + len(pkts[j].Data)
		}
		return o
	}
	cases := []struct {
		name      string
		data      []byte
		minKept   int
		offset    int
		wantCount int
	}{
		{"truncated", b[:off(399)+30], 399, off(399), 399},
		{"garbage", append(append(bytes.Clone(b[:off(200)]), bytes.Repeat([]byte{0xff, 0x13}, 333)...), b[off(200):]...), 400, off(200), 400},
		{"hostile-length", func() []byte {
			x := bytes.Clone(b)
			binary.LittleEndian.PutUint32(x[off(100)+8:], 0x7fffffff)
			return x
		}(), 399, off(100), 399},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name+".pcap")
			os.WriteFile(p, c.data, 0o644)
			st := tempStore(t)
			code, out, errOut := nwh(t, nil, "import", "--store", st, p)
			if code != exitPartial {
				t.Fatalf("exit %d, want %d: %s %s", code, exitPartial, out, errOut)
			}
			if !strings.Contains(out, fmt.Sprintf("damaged at byte %d", c.offset)) {
				t.Errorf("damage offset %d not named: %s", c.offset, out)
			}
			code, q, _ := nwh(t, nil, "query", "--store", st, "-w", "-")
			if code != 0 {
				t.Fatalf("query exit %d", code)
			}
			got := readCapture(t, []byte(q))
			if len(got) != c.wantCount {
				t.Errorf("kept %d packets, want %d", len(got), c.wantCount)
			}
		})
	}
}

// TestDamagedBlock flips a byte inside one block: query returns every other
// packet, names the block and exits 3; store info --verify finds it.
func TestDamagedBlock(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	in := filepath.Join(dir, "in.pcap")
	pkts := genCapture(t, in, pkthdr.LinkEthernet, 3000, start, false)
	st := tempStore(t)
	if code, _, e := nwh(t, nil, "import", "--store", st, "--block-size", "16K", in); code != 0 {
		t.Fatalf("import: %s", e)
	}
	shards, _ := filepath.Glob(filepath.Join(st, "shards", "*.shard"))
	f, err := os.OpenFile(shards[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	sh, err := pcapio.OpenShard(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	victim := sh.Blocks[len(sh.Blocks)/2]
	lost := int(victim.Packets)
	pos := victim.Offset + 52 + int64(victim.DataLen)/2
	one := []byte{0}
	f.ReadAt(one, pos)
	one[0] ^= 0x55
	f.WriteAt(one, pos)
	f.Close()

	code, out, errOut := nwh(t, nil, "query", "--store", st, "-w", "-")
	if code != exitPartial {
		t.Fatalf("query exit %d, want 3: %s", code, errOut)
	}
	if !strings.Contains(errOut, fmt.Sprintf("block %d at byte %d", len(sh.Blocks)/2, victim.Offset)) {
		t.Errorf("damaged block not named: %s", errOut)
	}
	if got := readCapture(t, []byte(out)); len(got) != len(pkts)-lost {
		t.Errorf("query returned %d packets, want %d (all but the damaged block's %d)", len(got), len(pkts)-lost, lost)
	}
	code, info, _ := nwh(t, nil, "store", "info", "--store", st, "--verify")
	if code != exitPartial || !strings.Contains(info, "data checksum mismatch") {
		t.Errorf("verify: exit %d: %s", code, info)
	}
}

// child starts this test binary as the nwhealth command.
func child(t *testing.T, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "NWHEALTH_TEST_MAIN=1")
	return cmd
}

// TestKillAndLock kills an importing writer with SIGKILL while it holds the
// lock: a second writer meanwhile is refused (exit 4), and afterwards the
// store opens, is repaired by the next writer, and answers queries with
// every packet whose block reached the disk.
func TestKillAndLock(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	in := filepath.Join(dir, "in.pcap")
	pkts := genCapture(t, in, pkthdr.LinkEthernet, 4000, start, false)
	raw, _ := os.ReadFile(in)
	st := tempStore(t)

	cmd := child(t, "import", "--store", st, "--block-size", "8K", "-")
	stdin, _ := cmd.StdinPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	half := len(raw) / 2
	stdin.Write(raw[:half])
	// Wait until the writer has put blocks on disk.
	deadline := time.Now().Add(20 * time.Second)
	var open string
	for time.Now().Before(deadline) {
		m, _ := filepath.Glob(filepath.Join(st, "shards", "*.shard.open"))
		if len(m) == 1 {
			if fi, err := os.Stat(m[0]); err == nil && fi.Size() > 100<<10 {
				open = m[0]
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if open == "" {
		cmd.Process.Kill()
		t.Fatalf("writer never wrote blocks: %s", stderr.String())
	}
	time.Sleep(300 * time.Millisecond) // let the pipeline drain what it has

	// A second writer is refused while the first holds the lock.
	code, _, errOut := nwh(t, bytes.NewReader(raw), "import", "--store", st, "-")
	if code != exitLocked || !strings.Contains(errOut, "another process") {
		t.Errorf("second writer: exit %d (%s), want %d", code, errOut, exitLocked)
	}

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	stdin.Close()

	// Readers see the open shard's blocks before any repair.
	code, out, errOut := nwh(t, nil, "query", "--store", st, "-w", "-")
	if code != 0 {
		t.Fatalf("query after kill: exit %d: %s", code, errOut)
	}
	before := readCapture(t, []byte(out))
	sent := 0
	for o := 24; o < half && sent < len(pkts); sent++ {
		o += 16 + len(pkts[sent].Data)
		if o > half {
			break
		}
	}
	// At most the blocks not yet written may be lost: the one being filled
	// and those in the compression queue (8 KiB each here).
	if len(before) == 0 || len(before) > sent || sent-len(before) > 12*8192/60 {
		t.Fatalf("after kill: %d packets readable of %d sent", len(before), sent)
	}
	comparePackets(t, "after kill", before, pkts[:len(before)])

	code, out, errOut = nwh(t, nil, "store", "repair", "--store", st)
	if code != 0 || !strings.Contains(out, "recovered") {
		t.Fatalf("repair: exit %d: %s %s", code, out, errOut)
	}
	code, out, _ = nwh(t, nil, "query", "--store", st, "-w", "-")
	if code != 0 {
		t.Fatal("query after repair failed")
	}
	comparePackets(t, "after repair", readCapture(t, []byte(out)), before)
	if code, info, _ := nwh(t, nil, "store", "info", "--store", st, "--verify"); code != 0 {
		t.Errorf("verify after repair: exit %d: %s", code, info)
	}
}

// TestDiskFull imports into a store on a 3 MiB tmpfs: the import says the
// disk is full, exits 5, and what it stored is sealed, valid and queryable.
func TestDiskFull(t *testing.T) {
	testenv.Root(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "small")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot mount a tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	in := filepath.Join(dir, "in.pcap")
	// Random payloads do not compress: 12 MB of them cannot fit.
	var buf bytes.Buffer
	w, _ := pcapio.NewWriter(&buf, pkthdr.LinkEthernet, 65535, false)
	x := uint64(88172645463325252)
	var pkts []pcapio.Packet
	for i := 0; i < 9000; i++ {
		f := frameSpec{lt: pkthdr.LinkEthernet, proto: 17, src: []byte{10, 0, 0, 1}, dst: []byte{10, 0, 0, 2}, sport: 1000, dport: 2000, payload: 1300}
		d := f.bytes()
		for j := 42; j < len(d); j++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			d[j] = byte(x)
		}
		ts := start.Add(time.Duration(i) * time.Millisecond)
		w.WritePacket(ts, d, len(d))
		pkts = append(pkts, pcapio.Packet{Timestamp: ts, Data: d, OrigLen: len(d)})
	}
	os.WriteFile(in, buf.Bytes(), 0o644)
	st := filepath.Join(mnt, "store")
	code, out, errOut := nwh(t, nil, "import", "--store", st, "--block-size", "64K", in)
	if code != exitNoSpace || !strings.Contains(errOut, "disk full") {
		t.Fatalf("import: exit %d, want %d: %s %s", code, exitNoSpace, out, errOut)
	}
	code, info, _ := nwh(t, nil, "store", "info", "--store", st, "--verify")
	if code != 0 {
		t.Fatalf("store after disk full: exit %d: %s", code, info)
	}
	code, q, errOut := nwh(t, nil, "query", "--store", st, "-w", "-")
	if code != 0 {
		t.Fatalf("query after disk full: exit %d: %s", code, errOut)
	}
	got := readCapture(t, []byte(q))
	if len(got) < 1000 {
		t.Fatalf("only %d packets survived", len(got))
	}
	for i := range got {
		if !bytes.Equal(got[i].Data, pkts[i].Data) {
			t.Fatalf("packet %d differs", i)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(st, "shards", "*.open")); len(m) != 0 {
		t.Errorf("open shards left: %v", m)
	}
}

// TestImportRetention: --max-size and --max-age delete the oldest shards.
func TestImportRetention(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	st := tempStore(t)
	var files []string
	for day := 0; day < 4; day++ {
		p := filepath.Join(dir, fmt.Sprintf("day%d.pcap", day))
		genCapture(t, p, pkthdr.LinkEthernet, 1500, start.Add(time.Duration(day)*24*time.Hour), false)
		files = append(files, p)
		// One import per day: one shard each.
		if code, _, e := nwh(t, nil, "import", "--store", st, "--max-age", "36h", p); code != 0 {
			t.Fatalf("import: %s", e)
		}
	}
	shards, _ := filepath.Glob(filepath.Join(st, "shards", "*.shard"))
	if len(shards) != 2 {
		t.Errorf("--max-age 36h kept %d daily shards, want 2: %v", len(shards), shards)
	}
	code, out, _ := nwh(t, nil, "import", "--store", st, "--max-size", "1", files[0])
	shards, _ = filepath.Glob(filepath.Join(st, "shards", "*.shard"))
	if code != 0 || len(shards) != 0 || !strings.Contains(out, "retention removed") {
		t.Errorf("--max-size 1: exit %d, %d shards left: %s", code, len(shards), out)
	}
}

// TestQueryRefusesTerminal: binary pcap is never written to a terminal.
func TestQueryRefusesTerminal(t *testing.T) {
	tty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer tty.Close()
	st := tempStore(t)
	os.MkdirAll(filepath.Join(st, "shards"), 0o755)
	var errOut bytes.Buffer
	code := run([]string{"query", "--store", st, "-w", "-"}, nil, tty, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "terminal") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
}
