package store

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// repairStore writes one sealed shard of pkts (blocks of about 100
// packets) with flow records.
func repairStore(t *testing.T, pkts []pcapio.Packet) (*Store, ShardFile) {
	t.Helper()
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{BlockSize: 16 << 10, NewFlows: benchFlows})
	shards, _ := st.Shards()
	if len(shards) != 1 {
		t.Fatalf("%d shards", len(shards))
	}
	return st, shards[0]
}

func shardOf(t *testing.T, sf ShardFile) *pcapio.Shard {
	t.Helper()
	b, err := os.ReadFile(sf.ShardPath())
	if err != nil {
		t.Fatal(err)
	}
	sh, err := pcapio.OpenShard(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

func damage(t *testing.T, path string, fn func(b []byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, fn(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func repair(t *testing.T, st *Store) []RecoveryReport {
	t.Helper()
	lk, err := AcquireLock(st.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Release()
	reps, err := st.Repair(benchFlows)
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	return reps
}

// TestRepairSealed damages a sealed shard in each way store info
// --verify must see and store repair must mend: info names the damage,
// repair says what it did, and afterwards the store verifies clean and a
// query returns every packet not in a lost block.
func TestRepairSealed(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(6000, start)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, sf ShardFile, sh *pcapio.Shard)
		lost   int // blocks lost
		info   string
	}{
		{"shard header", func(t *testing.T, sf ShardFile, sh *pcapio.Shard) {
			damage(t, sf.ShardPath(), func(b []byte) []byte { b[17] ^= 0x10; return b })
		}, 0, "shard header"},
		{"pcap header frame", func(t *testing.T, sf ShardFile, sh *pcapio.Shard) {
			// The link type inside the frame's raw block.
			damage(t, sf.ShardPath(), func(b []byte) []byte { b[sh.FirstBlock()-4] ^= 1; return b })
		}, 0, "pcap header frame"},
		{"trailer", func(t *testing.T, sf ShardFile, sh *pcapio.Shard) {
			damage(t, sf.ShardPath(), func(b []byte) []byte { b[len(b)-40] ^= 1; return b })
		}, 0, "trailer"},
		{"cut mid-block", func(t *testing.T, sf ShardFile, sh *pcapio.Shard) {
			damage(t, sf.ShardPath(), func(b []byte) []byte { return b[:sh.Blocks[len(sh.Blocks)-2].Offset+200] })
		}, 2, "ends inside a block"},
		{"trailer and a block header", func(t *testing.T, sf ShardFile, sh *pcapio.Shard) {
			// The header is rebuilt from the block's intact data.
			damage(t, sf.ShardPath(), func(b []byte) []byte {
				b[sh.Blocks[5].Offset+20] ^= 1
				return b[:len(b)-10]
			})
		}, 0, "trailer"},
		{"trailer and a block", func(t *testing.T, sf ShardFile, sh *pcapio.Shard) {
			damage(t, sf.ShardPath(), func(b []byte) []byte {
				b[sh.Blocks[5].Offset+20] ^= 1
				b[sh.Blocks[5].Offset+70] ^= 1
				return b[:len(b)-10]
			})
		}, 1, "trailer"},
		{"flows", func(t *testing.T, sf ShardFile, sh *pcapio.Shard) {
			damage(t, sf.FlowsPath(), func(b []byte) []byte { b[len(b)/2] ^= 1; return b })
		}, 0, "flows"},
		{"flows missing", func(t *testing.T, sf ShardFile, sh *pcapio.Shard) {
			os.Remove(sf.FlowsPath())
		}, 0, "flows missing"},
		{"index", func(t *testing.T, sf ShardFile, sh *pcapio.Shard) {
			damage(t, sf.IndexPath(), func(b []byte) []byte { b[len(b)-3] ^= 1; return b })
		}, 0, "index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, sf := repairStore(t, pkts)
			sh := shardOf(t, sf)
			want := pkts
			if tc.lost > 0 {
				// The blocks lost are whole blocks of packets in order.
				var lost []int
				if tc.name == "cut mid-block" {
					lost = []int{len(sh.Blocks) - 2, len(sh.Blocks) - 1}
				} else {
					lost = []int{5}
				}
				want = nil
				n := 0
				for i, b := range sh.Blocks {
					if !slicesContainsInt(lost, i) {
						want = append(want, pkts[n:n+int(b.Packets)]...)
					}
					n += int(b.Packets)
				}
			}
			tc.damage(t, sf, sh)
			rep, err := st.Info(true)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Damage) == 0 || !strings.Contains(rep.Damage[0].Reason, tc.info) {
				t.Fatalf("info: %v, want %q", rep.Damage, tc.info)
			}
			reps := repair(t, st)
			if len(reps) != 1 || reps[0].Did == "" || reps[0].Shard != sf.Name() {
				t.Fatalf("repair: %+v", reps)
			}
			if tc.lost > 0 && (reps[0].LostBytes == 0 || reps[0].LostReason == "") {
				t.Errorf("repair does not say what it lost: %+v", reps[0])
			}
			rep, err = st.Info(true)
			if err != nil || len(rep.Damage) != 0 {
				t.Fatalf("after repair: %v %v", rep.Damage, err)
			}
			got, err := runQuery(t, []*Store{st}, Selector{})
			if err != nil {
				t.Fatal(err)
			}
			samePackets(t, got, want)
			if again := repair(t, st); len(again) != 0 {
				t.Errorf("second repair did %+v", again)
			}
			if tc.name != "trailer and a block" {
				// (zstd -dc decodes the damaged block's stored frame,
				// which has no checksum of its own: the block's CRC in
				// its header is what finds it damaged.)
				checkZstdOracle(t, sf.ShardPath(), len(want))
			}
		})
	}
}

func slicesContainsInt(l []int, v int) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// checkZstdOracle: zstd -dc of a shard is a pcap that tcpdump reads
// whole, with n packets (or the shard has blocks left out in place, and
// zstd stops at them).
func checkZstdOracle(t *testing.T, path string, n int) {
	t.Helper()
	zstdCmd := testenv.Tool(t, "zstd")
	tcpdump := testenv.Tool(t, "tcpdump")
	plain, err := exec.Command(zstdCmd, "-dc", path).Output()
	if err != nil {
		return // a damaged stretch left in place: not a zstd file throughout
	}
	cmd := exec.Command(tcpdump, "-nn", "-r", "-")
	cmd.Stdin = bytes.NewReader(plain)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tcpdump on zstd -dc of the repaired shard: %v", err)
	}
	if c := strings.Count(string(out), "\n"); c != n {
		t.Errorf("tcpdump reads %d packets from zstd -dc, want %d", c, n)
	}
}

// TestRecoverResync: an open shard left by a dead writer with a damaged
// block (header and data) in the middle is sealed with every intact block
// after the damage too; its header then says version 2 (a block number
// skips).
func TestRecoverResync(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(1000, start)
	dir := t.TempDir()
	st, _ := Create(dir)
	b := openShardBytes(t, pkts, "imp", 4) // blocks of 50 packets
	sh, err := pcapio.OpenShard(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	b[sh.Blocks[7].Offset+30] ^= 1
	b[sh.Blocks[7].Offset+90] ^= 1
	binary.LittleEndian.PutUint16(b[12:], 1) // as a version-1 writer left it
	binary.LittleEndian.PutUint32(b[44:], pcapio.CRC(b[8:44]))
	os.WriteFile(filepath.Join(dir, shardsDir, "imp-00000004.shard.open"), b, 0o644)
	lk, _ := AcquireLock(dir)
	reps, err := st.Recover(nil)
	lk.Release()
	if err != nil || len(reps) != 1 || reps[0].Blocks != len(sh.Blocks)-1 || reps[0].Packets != 950 || !strings.Contains(reps[0].LostReason, "skipped") {
		t.Fatalf("recover: %+v %v", reps, err)
	}
	got, err := runQuery(t, []*Store{st}, Selector{})
	if err != nil {
		t.Fatal(err)
	}
	samePackets(t, got, append(append([]pcapio.Packet{}, pkts[:350]...), pkts[400:]...))
	sf, _ := st.Shards()
	if v := shardOf(t, sf[0]).Header.Version; v != 2 {
		t.Errorf("recovered shard says version %d", v)
	}
	if rep, err := st.Info(true); err != nil || len(rep.Damage) != 0 {
		t.Errorf("info: %v %v", rep.Damage, err)
	}
}

// TestRecoverMendsBlockHeader: an open shard with a flipped byte in a
// block header, its data intact, loses nothing: recovery rebuilds the
// header from the data.
func TestRecoverMendsBlockHeader(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(1000, start)
	dir := t.TempDir()
	st, _ := Create(dir)
	b := openShardBytes(t, pkts, "imp", 4)
	sh, err := pcapio.OpenShard(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	b[sh.Blocks[0].Offset+30] ^= 1
	b[sh.Blocks[12].Offset+40] ^= 1 // its data length
	os.WriteFile(filepath.Join(dir, shardsDir, "imp-00000004.shard.open"), b, 0o644)
	lk, _ := AcquireLock(dir)
	reps, err := st.Recover(nil)
	lk.Release()
	if err != nil || len(reps) != 1 || reps[0].Packets != 1000 || strings.Count(reps[0].Did, "rebuilt") != 2 {
		t.Fatalf("recover: %+v %v", reps, err)
	}
	got, err := runQuery(t, []*Store{st}, Selector{})
	if err != nil {
		t.Fatal(err)
	}
	samePackets(t, got, pkts)
	sf, _ := st.Shards()
	checkZstdOracle(t, sf[0].ShardPath(), len(pkts))
}
