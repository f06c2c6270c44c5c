package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/index"
	"github.com/nwhealth/nwhealth/pkg/pcapfilter"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
	"golang.org/x/sys/unix"
)

// genPackets builds n Ethernet/IPv4 TCP or UDP frames among 8 hosts,
// 1 ms apart, some VLAN-tagged, with compressible and random payloads.
func genPackets(n int, start time.Time) []pcapio.Packet {
	out := make([]pcapio.Packet, n)
	x := uint32(2463534242)
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		vlan := i%5 == 0
		hdr := 14
		if vlan {
			hdr = 18
		}
		pay := int(x % 300)
		f := make([]byte, hdr+20+20+pay)
		if vlan {
			binary.BigEndian.PutUint16(f[12:], 0x8100)
			binary.BigEndian.PutUint16(f[14:], uint16(10+i%3))
			binary.BigEndian.PutUint16(f[16:], 0x0800)
		} else {
			binary.BigEndian.PutUint16(f[12:], 0x0800)
		}
		ip := f[hdr:]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		ip[8] = 64
		ip[9] = 6
		if i%3 == 0 {
			ip[9] = 17
		}
		copy(ip[12:], []byte{10, 1, 0, byte(1 + i%8)})
		copy(ip[16:], []byte{192, 0, 2, byte(1 + (i/8)%4)})
		l4 := ip[20:]
		binary.BigEndian.PutUint16(l4, uint16(40000+i%50))
		binary.BigEndian.PutUint16(l4[2:], []uint16{443, 80, 53, 22}[i%4])
		l4[12] = 5 << 4
		for j := 20; j < len(l4); j++ {
			if i%2 == 0 {
				l4[j] = byte(j)
			} else {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				l4[j] = byte(x)
			}
		}
		out[i] = pcapio.Packet{Timestamp: start.Add(time.Duration(i) * time.Millisecond), LinkType: pkthdr.LinkEthernet, Data: f, OrigLen: len(f)}
	}
	return out
}

// genFullPayload is genPackets with 1,000 to 1,400 bytes of random
// payload per packet, like encrypted traffic: blocks of it are stored,
// not compressed (docs/format/shard.md).
func genFullPayload(n int, start time.Time) []pcapio.Packet {
	pkts := genPackets(n, start)
	rng := rand.New(rand.NewSource(5))
	for i := range pkts {
		var p pkthdr.Packet
		pkthdr.Parse(pkthdr.LinkEthernet, pkts[i].Data, &p)
		hdr := p.L3 + 40
		f := append(bytes.Clone(pkts[i].Data[:hdr]), make([]byte, 1000+rng.Intn(400))...)
		rng.Read(f[hdr:])
		binary.BigEndian.PutUint16(f[p.L3+2:], uint16(len(f)-p.L3))
		pkts[i].Data, pkts[i].OrigLen = f, len(f)
	}
	return pkts
}

func writeStore(t *testing.T, dir string, pkts []pcapio.Packet, opts WriterOptions) *Store {
	t.Helper()
	st, w, lk := lockedTestWriter(t, dir, opts)
	defer lk.Release()
	for _, p := range pkts {
		if err := w.Write(p.Timestamp, p.LinkType, p.Data, p.OrigLen); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return st
}

// newTestWriter creates a store in dir and returns it with a writer with time stamps in
// nanoseconds, holding the store's lock until the test ends.
func newTestWriter(t testing.TB, dir string, opts WriterOptions) (*Store, *Writer) {
	t.Helper()
	st, w, lk := lockedTestWriter(t, dir, opts)
	t.Cleanup(func() { lk.Release() })
	return st, w
}

// lockedTestWriter creates a store in dir and returns it with its lock and
// a writer with time stamps in nanoseconds.
func lockedTestWriter(t testing.TB, dir string, opts WriterOptions) (*Store, *Writer, *Lock) {
	t.Helper()
	st, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.NewWriter(opts)
	if err != nil {
		lk.Release()
		t.Fatal(err)
	}
	w.SetNanos(true)
	return st, w, lk
}

func runQuery(t *testing.T, st []*Store, sel Selector) ([]pcapio.Packet, error) {
	t.Helper()
	var rs []Reader
	for _, s := range st {
		rs = append(rs, s)
	}
	pl, err := PlanQuery(rs, sel)
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	var got []pcapio.Packet
	err = pl.Run(func(p pcapio.Packet) error {
		p.Data = bytes.Clone(p.Data)
		got = append(got, p)
		return nil
	})
	return got, err
}

// oracle applies sel by brute force over the original packets.
func oracle(pkts []pcapio.Packet, sel Selector) []pcapio.Packet {
	var out []pcapio.Packet
	var scratch pkthdr.Packet
	for _, p := range pkts {
		if sel.Match(&p, &scratch) {
			out = append(out, p)
		}
	}
	return out
}

func samePackets(t *testing.T, got, want []pcapio.Packet) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].Timestamp.Equal(want[i].Timestamp) || !bytes.Equal(got[i].Data, want[i].Data) || got[i].OrigLen != want[i].OrigLen {
			t.Fatalf("packet %d differs: %v len %d, want %v len %d", i, got[i].Timestamp, len(got[i].Data), want[i].Timestamp, len(want[i].Data))
		}
	}
}

func TestWriteQuery(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	t.Run("compressed", func(t *testing.T) { testWriteQuery(t, start, genPackets(20000, start), false) })
	t.Run("stored", func(t *testing.T) { testWriteQuery(t, start, genFullPayload(4000, start), true) })
}

// testWriteQuery stores pkts and checks queries against the oracle;
// stored says whether the blocks are to be stored frames or compressed.
func testWriteQuery(t *testing.T, start time.Time, pkts []pcapio.Packet, stored bool) {
	// Small blocks and shards exercise many blocks, shards and the index.
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{BlockSize: 8 << 10, ShardSize: 1 << 20, Compressors: 2})
	shards, _ := st.Shards()
	if len(shards) < 3 {
		t.Fatalf("only %d shards; want several", len(shards))
	}
	f, err := os.Open(shards[0].ShardPath())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	sh, err := pcapio.OpenShard(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	br := pcapio.NewBlockReader()
	defer br.Close()
	_, m, err := br.Read(sh, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A stored frame is the raw bytes and 12 bytes of framing.
	if isStored := m.DataLen == m.RawLen+12; isStored != stored {
		t.Fatalf("block 0: %d bytes for %d raw; stored %v, want %v", m.DataLen, m.RawLen, isStored, stored)
	}
	filt, err := pcapfilter.Compile("tcp and dst port 443")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		sel  Selector
	}{
		{"all", Selector{}},
		{"time", Selector{From: start.Add(3 * time.Second), To: start.Add(7*time.Second + 500*time.Millisecond)}},
		{"host", Selector{Hosts: []netip.Addr{netip.MustParseAddr("10.1.0.3")}}},
		{"two-hosts-port", Selector{Hosts: []netip.Addr{netip.MustParseAddr("10.1.0.3"), netip.MustParseAddr("192.0.2.4")}, Ports: []uint16{53}}},
		{"net", Selector{Nets: []netip.Prefix{netip.MustParsePrefix("192.0.2.2/31")}}},
		{"proto-udp", Selector{Protos: []uint8{17}}},
		{"vlan", Selector{VLANs: []uint16{11}}},
		{"absent-host", Selector{Hosts: []netip.Addr{netip.MustParseAddr("10.9.9.9")}}},
		{"filter", Selector{Filter: filt, From: start.Add(time.Second)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := runQuery(t, []*Store{st}, c.sel)
			if err != nil {
				t.Fatal(err)
			}
			samePackets(t, got, oracle(pkts, c.sel))
		})
	}
}

func TestIndexPrunes(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(5000, start)
	// A rare host appears in 3 packets only.
	rare := genPackets(3, start)
	for i := range rare {
		d := bytes.Clone(rare[i].Data)
		var p pkthdr.Packet
		pkthdr.Parse(pkthdr.LinkEthernet, d, &p)
		copy(d[p.L3+12:], []byte{172, 16, 9, 9})
		pkts[1000+i*1500].Data = d
	}
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{BlockSize: 4 << 10})
	pl, err := PlanQuery([]Reader{st}, Selector{Hosts: []netip.Addr{netip.MustParseAddr("172.16.9.9")}})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	if pl.Scanned != 3 || pl.Total < 100 {
		t.Errorf("index left %d of %d blocks to scan; want 3", pl.Scanned, pl.Total)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(dir); err != nil {
		t.Fatal(err)
	}
	a, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = AcquireLock(dir)
	var le *LockedError
	if !errors.As(err, &le) || !le.Locked() || le.PID != os.Getpid() {
		t.Fatalf("second lock: %v", err)
	}
	a.Release()
	b, err := AcquireLock(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Release()
}

func TestRetention(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(30000, start)
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{BlockSize: 8 << 10, ShardSize: 1 << 20})
	before, _ := st.Shards()
	removed, err := Retention{MaxAge: 10 * time.Second}.Apply(st)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := st.Shards()
	if len(removed) == 0 || len(after) != len(before)-len(removed) {
		t.Fatalf("removed %d of %d, %d left", len(removed), len(before), len(after))
	}
	for _, f := range after {
		if f.Last.Before(start.Add(30*time.Second - 10*time.Second - time.Second)) {
			t.Errorf("shard %s older than the age limit kept", f.Name())
		}
	}
	for _, f := range removed {
		for _, p := range []string{f.IndexPath(), f.FlowsPath(), f.ShardPath()} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s left behind", filepath.Base(p))
			}
		}
	}
	var total int64
	for _, f := range after {
		total += f.Size + st.shardFileSize(f.indexName()) + st.shardFileSize(f.flowsName())
	}
	removed, _ = Retention{MaxSize: total / 2}.Apply(st)
	after2, _ := st.Shards()
	var total2 int64
	for _, f := range after2 {
		total2 += f.Size + st.shardFileSize(f.indexName()) + st.shardFileSize(f.flowsName())
	}
	if len(removed) == 0 || total2 > total/2 {
		t.Errorf("size retention: %d bytes left, limit %d", total2, total/2)
	}
}

// TestDamagedEntryNotPruned damages the time range of one table-of-contents
// entry of a sealed shard, which an indexed query reads without the
// trailer's CRC: the entry is implausible (outside the shard's time span),
// so the query must not prune its block silently but read it and report
// the damage, delivering every other packet.
func TestDamagedEntryNotPruned(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(5000, start)
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{BlockSize: 4 << 10})
	files, err := st.Shards()
	if err != nil || len(files) != 1 {
		t.Fatalf("shards: %v %v", files, err)
	}
	path := files[0].ShardPath()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	size := int(binary.LittleEndian.Uint32(b[len(b)-12:]))
	toc := len(b) - size + 8 + 40 // frame header, then the trailer's fixed part
	const victim = 20
	e := b[toc+victim*32:]
	far := uint64(start.Add(240 * time.Hour).UnixNano())
	binary.LittleEndian.PutUint64(e[8:], far)    // first
	binary.LittleEndian.PutUint64(e[16:], far+1) // last
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	host := netip.MustParseAddr("10.1.0.3")
	sel := Selector{Hosts: []netip.Addr{host}, From: start, To: start.Add(time.Hour)}
	got, err := runQuery(t, []*Store{st}, sel)
	var de *DamageError
	if !errors.As(err, &de) {
		t.Fatalf("query error %v; want the damaged block reported", err)
	}
	found := false
	for _, d := range de.Damage {
		found = found || d.Block == victim
	}
	if !found {
		t.Errorf("damage %v does not name block %d", de.Damage, victim)
	}
	want := oracle(pkts, sel)
	if len(got) >= len(want) || len(got) < len(want)-len(want)/5 {
		t.Errorf("got %d packets of %d: want all but the damaged block's", len(got), len(want))
	}
}

// Reindex rebuilds indexes in an older format or damaged, and leaves
// current ones alone; queries then use the new indexes.
func TestReindexOld(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(6000, start)
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{BlockSize: 8 << 10, ShardSize: 256 << 10})
	shards, _ := st.Shards()
	if len(shards) < 3 {
		t.Fatalf("only %d shards; want 3", len(shards))
	}
	// Shard 0 gets a version 1 index (another shard's: only the format
	// matters here), shard 1 a damaged one; shard 2 keeps its own.
	v1, err := os.ReadFile(filepath.Join("..", "index", "testdata", "v1.idx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shards[0].IndexPath(), v1, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(shards[1].IndexPath())
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-2] ^= 0x55
	if err := os.WriteFile(shards[1].IndexPath(), b, 0o644); err != nil {
		t.Fatal(err)
	}
	keep, _ := os.ReadFile(shards[2].IndexPath())
	reps, err := st.Reindex(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 2 || reps[0].Shard != shards[0].Name() || reps[1].Shard != shards[1].Name() {
		t.Fatalf("reindexed %+v; want shards 0 and 1", reps)
	}
	for _, sf := range shards {
		if !st.currentIndex(sf.indexName()) {
			t.Errorf("%s: index not current after Reindex", sf.Name())
		}
	}
	if now, _ := os.ReadFile(shards[2].IndexPath()); !bytes.Equal(now, keep) {
		t.Errorf("a current index was rewritten")
	}
	sel := Selector{Hosts: []netip.Addr{netip.MustParseAddr("10.1.0.3")}}
	pl, err := PlanQuery([]Reader{st}, sel)
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Damage) != 0 {
		t.Errorf("plan damage after Reindex: %v", pl.Damage)
	}
	pl.Close()
	got, err := runQuery(t, []*Store{st}, sel)
	if err != nil {
		t.Fatal(err)
	}
	samePackets(t, got, oracle(pkts, sel))
	if reps, err := st.Reindex(nil); err != nil || len(reps) != 0 {
		t.Errorf("second Reindex: %v %v", reps, err)
	}
}

// A version 2 index (written before tunnelled packets' inner headers were
// keyed) is rebuilt by Reindex, as store repair runs it, so host queries
// find hosts inside tunnels in old shards too; a version 3 index has the
// keys a version 4 one has and is kept. The indexes are pkg/index's
// fixtures (another shard's keys: only the format matters here; readers
// of both are tested there).
func TestReindexOldVersions(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		version int
		current bool
	}{
		{2, false},
		{3, true},
	} {
		t.Run(fmt.Sprintf("version-%d", tc.version), func(t *testing.T) {
			st := writeStore(t, t.TempDir(), genPackets(2000, start), WriterOptions{BlockSize: 8 << 10, ShardSize: 256 << 10})
			shards, _ := st.Shards()
			old, err := os.ReadFile(filepath.Join("..", "index", "testdata", fmt.Sprintf("v%d.idx", tc.version)))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(shards[0].IndexPath(), old, 0o644); err != nil {
				t.Fatal(err)
			}
			if got := st.currentIndex(shards[0].indexName()); got != tc.current {
				t.Fatalf("a version %d index counts as current: %v, want %v", tc.version, got, tc.current)
			}
			reps, err := st.Reindex(nil)
			if err != nil {
				t.Fatal(err)
			}
			now, _ := os.ReadFile(shards[0].IndexPath())
			if tc.current {
				if len(reps) != 0 || !bytes.Equal(now, old) {
					t.Errorf("reindexed %+v; want the version %d index kept", reps, tc.version)
				}
				return
			}
			if len(reps) != 1 || reps[0].Shard != shards[0].Name() {
				t.Fatalf("reindexed %+v; want shard 0", reps)
			}
			if v := binary.LittleEndian.Uint16(now[4:]); v != index.Version || !st.currentIndex(shards[0].indexName()) {
				t.Errorf("index version %d after Reindex, not current", v)
			}
		})
	}
}

// Prefetching asks for runs of adjacent blocks in one request each, no
// longer than prefetchRun, and for every block exactly once.
func TestPrefetchRuns(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(20000, start)
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{BlockSize: 8 << 10, ShardSize: 1 << 20})
	type req struct {
		fd        int
		off, size int64
	}
	var reqs []req
	fadvise = func(fd int, off, size int64, advice int) error {
		reqs = append(reqs, req{fd, off, size})
		return nil
	}
	defer func() { fadvise = unix.Fadvise }()
	pl, err := PlanQuery([]Reader{st}, Selector{From: start, To: start.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	pl.markCold() // as after a page-cache miss, before any block is read
	pl.prefetch(make(chan struct{}))
	// Each shard's blocks lie back to back, well under prefetchRun.
	if len(reqs) != len(pl.shards) {
		t.Fatalf("%d requests for %d blocks in %d shards", len(reqs), len(pl.tasks), len(pl.shards))
	}
	// Each request is a run of whole blocks of one shard.
	starts := map[req]bool{}
	for _, tk := range pl.tasks {
		starts[req{int(tk.shard.f.(*localFile).f.Fd()), tk.meta.Offset, 0}] = true
	}
	var covered int64
	for _, r := range reqs {
		if r.size <= 0 || r.size > prefetchRun || !starts[req{r.fd, r.off, 0}] {
			t.Errorf("request %+v", r)
		}
		covered += r.size
	}
	var all int64
	for _, tk := range pl.tasks {
		all += int64(pcapio.BlockSpan(tk.meta))
	}
	if covered != all {
		t.Errorf("requests cover %d of %d bytes", covered, all)
	}
}

// TestWritePacketNanos: capture's path (the link type set once, time
// stamps in nanoseconds, a packet at a time or in runs of Frames) stores
// what Write stores, and WriteNanos's link type carries over to the
// WritePacketNanos calls after it.
func TestWritePacketNanos(t *testing.T) {
	pkts := genPackets(500, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	want, err := runQuery(t, []*Store{writeStore(t, t.TempDir(), pkts, WriterOptions{ID: "w"})}, Selector{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		first func(w *Writer, p pcapio.Packet) error // how the first packet is written
		runs  bool                                   // the rest in runs (WriteFrames)
	}{
		{"SetLinkType", func(w *Writer, p pcapio.Packet) error {
			w.SetLinkType(p.LinkType)
			return w.WritePacketNanos(p.Timestamp.UnixNano(), p.Data, p.OrigLen)
		}, false},
		{"after WriteNanos", func(w *Writer, p pcapio.Packet) error {
			w.SetLinkType(pkthdr.LinkType(101))
			return w.WriteNanos(p.Timestamp.UnixNano(), p.LinkType, p.Data, p.OrigLen)
		}, false},
		{"runs", func(w *Writer, p pcapio.Packet) error {
			w.SetLinkType(p.LinkType)
			return w.WritePacketNanos(p.Timestamp.UnixNano(), p.Data, p.OrigLen)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, w := newTestWriter(t, t.TempDir(), WriterOptions{ID: "w"})
			if err := tc.first(w, pkts[0]); err != nil {
				t.Fatal(err)
			}
			if tc.runs {
				fs := w.Frames()
				for rest := pkts[1:]; len(rest) > 0; {
					n := min(len(rest), len(fs))
					for i, p := range rest[:n] {
						fs[i] = pcapio.Frame{Nanos: p.Timestamp.UnixNano(), Data: p.Data, OrigLen: p.OrigLen}
					}
					if m, err := w.WriteFrames(fs[:n]); m != n || err != nil {
						t.Fatalf("stored %d of %d: %v", m, n, err)
					}
					rest = rest[n:]
				}
			} else {
				for _, p := range pkts[1:] {
					if err := w.WritePacketNanos(p.Timestamp.UnixNano(), p.Data, p.OrigLen); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := runQuery(t, []*Store{st}, Selector{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d packets, want %d", len(got), len(want))
			}
			for i := range want {
				g, x := got[i], want[i]
				if !g.Timestamp.Equal(x.Timestamp) || g.LinkType != x.LinkType || g.OrigLen != x.OrigLen || !bytes.Equal(g.Data, x.Data) {
					t.Fatalf("packet %d: got %v %v %d bytes, want %v %v %d bytes", i, g.Timestamp, g.LinkType, len(g.Data), x.Timestamp, x.LinkType, len(x.Data))
				}
			}
		})
	}
}

// TestRetentionFutureStamp: one packet stamped years ahead (a tap's wrong
// clock, a hostile capture) is not the clock age is measured against:
// with it, every other shard would be "too old" and deleted.
func TestRetentionFutureStamp(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := append(genPackets(30000, start), genPackets(10, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))...)
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{BlockSize: 8 << 10, ShardSize: 1 << 20})
	before, _ := st.Shards()
	if len(before) < 3 {
		t.Fatalf("%d shards", len(before))
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	removed, err := Retention{MaxAge: time.Hour, Now: now}.Apply(st)
	if err != nil || len(removed) != 0 {
		t.Fatalf("removed %d of %d shards: %v", len(removed), len(before), err)
	}
	// A stamp within the allowed skew still counts.
	removed, err = Retention{MaxAge: time.Hour, Now: time.Date(2098, 12, 31, 12, 0, 0, 0, time.UTC)}.Apply(st)
	if err != nil || len(removed) != len(before)-1 {
		t.Fatalf("clock near the stamp: removed %d of %d shards: %v", len(removed), len(before), err)
	}
}

// TestWriteFramesCut: a run stops after a packet longer than
// pcapio.MaxRecord, stored cut, with a *CutError, as a packet at a time
// (WritePacketNanos) would; the frames after it are not stored.
func TestWriteFramesCut(t *testing.T) {
	st, w := newTestWriter(t, t.TempDir(), WriterOptions{ID: "w"})
	w.SetLinkType(pkthdr.LinkEthernet)
	pkts := genPackets(3, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	big := make([]byte, pcapio.MaxRecord+1)
	copy(big, pkts[1].Data)
	fs := w.Frames()
	fs[0] = pcapio.Frame{Nanos: pkts[0].Timestamp.UnixNano(), Data: pkts[0].Data, OrigLen: pkts[0].OrigLen}
	fs[1] = pcapio.Frame{Nanos: pkts[1].Timestamp.UnixNano(), Data: big, OrigLen: len(big)}
	fs[2] = pcapio.Frame{Nanos: pkts[2].Timestamp.UnixNano(), Data: pkts[2].Data, OrigLen: pkts[2].OrigLen}
	n, err := w.WriteFrames(fs[:3])
	var cut *CutError
	if n != 2 || !errors.As(err, &cut) || cut.Len != len(big) {
		t.Fatalf("stored %d: %v; want 2 and a CutError of %d bytes", n, err, len(big))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.Cut != 1 || s.Packets != 2 {
		t.Fatalf("stats: %d cut, %d packets; want 1 and 2", s.Cut, s.Packets)
	}
	got, err := runQuery(t, []*Store{st}, Selector{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[1].Data) != pcapio.MaxRecord || got[1].OrigLen != len(big) || !bytes.Equal(got[0].Data, pkts[0].Data) {
		t.Fatalf("stored %d packets, want the first and the cut one", len(got))
	}
}
