package store

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Attacks on a store whose directory others can write to, while nwhealth
// runs as root: files planted to be followed, truncated or renamed over.

// victim is a file outside the store that nothing may change.
func victim(t *testing.T, name string) (string, []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	content := []byte("precious, not a store file: " + name + "\n")
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, content
}

func unchanged(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s changed: %d bytes (%v), had %d", filepath.Base(p), len(got), err, len(want))
	}
}

// openShardBytes returns the bytes of an open shard (no trailer) of
// writer id and sequence seq holding pkts.
func openShardBytes(t *testing.T, pkts []pcapio.Packet, id string, seq uint32) []byte {
	t.Helper()
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	var buf bytes.Buffer
	sw, err := pcapio.NewShardWriter(&buf, pcapio.ShardHeader{LinkType: pkthdr.LinkEthernet, Snaplen: 65535, Nanos: true, Writer: id, Seq: seq}, enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(pkts); i += 50 {
		var raw []byte
		end := min(i+50, len(pkts))
		first, last := pkts[i].Timestamp.UnixNano(), pkts[end-1].Timestamp.UnixNano()
		for _, p := range pkts[i:end] {
			raw = pcapio.AppendRecord(raw, p.Timestamp, p.Data, p.OrigLen, true)
		}
		if err := sw.Append(pcapio.EncodeBlock(nil, enc, raw, sw.NextBlock(), first, last, end-i)); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestPlantedLinks plants symbolic and hard links where a writer creates,
// truncates, fallocates or renames files: nothing outside the store
// changes, and what was planted is named.
func TestPlantedLinks(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(3000, start)
	dir := t.TempDir()
	st, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	shards := filepath.Join(dir, shardsDir)
	lockV, lockC := victim(t, "lock-target")
	resV, resC := victim(t, "reserve-target")
	openV := filepath.Join(t.TempDir(), "open-target")
	openC := openShardBytes(t, pkts[:400], "imp", 0)
	os.WriteFile(openV, openC, 0o600)
	hardV := filepath.Join(dir, "hard-target") // same file system as the store
	os.WriteFile(hardV, openC, 0o600)
	tmpV, tmpC := victim(t, "tmp-target")
	readV, readC := victim(t, "read-target")

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(lockV, filepath.Join(dir, lockName)))
	must(os.Symlink(resV, filepath.Join(dir, reserveNam)))
	must(os.Symlink(openV, filepath.Join(shards, "imp-00000000.shard.open")))
	must(os.Link(hardV, filepath.Join(shards, "imp-00000001.shard.open")))
	must(os.Symlink(readV, filepath.Join(shards, "20260302T000000Z_20260302T235959Z_c01-00000000.shard")))
	// Whatever name the writer's first seal uses for its temporary files.
	for _, ext := range []string{extIndex, extFlows} {
		stem := shardStem(start, start.Add(3*time.Second), "imp", 2)
		must(os.Symlink(tmpV, filepath.Join(shards, stem+ext+extTmp)))
	}

	lk, err := AcquireLock(dir)
	must(err)
	unchanged(t, lockV, lockC)
	if fi, err := os.Lstat(filepath.Join(dir, lockName)); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("LOCK is not a regular file of its own: %v", err)
	}
	_, err = st.Recover(nil)
	if err == nil || !strings.Contains(err.Error(), "imp-00000000.shard.open") || !strings.Contains(err.Error(), "imp-00000001.shard.open") {
		t.Errorf("recovery does not name the planted open shards: %v", err)
	}
	unchanged(t, openV, openC)
	unchanged(t, hardV, openC)
	w, err := st.NewWriter(WriterOptions{BlockSize: 8 << 10})
	must(err)
	unchanged(t, resV, resC)
	w.SetNanos(true)
	for _, p := range pkts {
		must(w.Write(p.Timestamp, p.LinkType, p.Data, p.OrigLen))
	}
	must(w.Close())
	lk.Release()
	unchanged(t, tmpV, tmpC)

	// A hard link is another name for a file: readers read it (its
	// packets are those of pkts[:400]); only writing through it is
	// refused.
	os.Remove(filepath.Join(shards, "imp-00000001.shard.open"))
	got, err := runQuery(t, []*Store{st}, Selector{})
	var de *DamageError
	if !errors.As(err, &de) || !strings.Contains(de.Error(), "c01-00000000.shard") {
		t.Errorf("query: %v, want the planted link named", err)
	}
	unchanged(t, readV, readC)
	samePackets(t, got, pkts)
	rep, err := st.Info(true)
	must(err)
	if len(rep.Damage) != 2 {
		t.Errorf("info names %d planted files, want 2: %v", len(rep.Damage), rep.Damage)
	}
}

// TestLockStolen deletes or replaces LOCK while a writer holds it: a
// second writer is still refused.
func TestLockStolen(t *testing.T) {
	dir := t.TempDir()
	if _, err := Create(dir); err != nil {
		t.Fatal(err)
	}
	a, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	for _, steal := range []func(){
		func() { os.Remove(filepath.Join(dir, lockName)) },
		func() { os.WriteFile(filepath.Join(dir, lockName), []byte("1\n"), 0o644) },
		func() {
			os.Remove(filepath.Join(dir, lockName))
			os.Symlink("/dev/null", filepath.Join(dir, lockName))
		},
	} {
		steal()
		var le *LockedError
		if b, err := AcquireLock(dir); !errors.As(err, &le) {
			if b != nil {
				b.Release()
			}
			t.Fatalf("second writer after LOCK was stolen: %v", err)
		}
		if !HeldByOther(dir) {
			t.Error("HeldByOther says free")
		}
	}
}

// TestNamesFromContents: a shard header naming a writer "/../../a" does
// not make recovery write outside the shards directory, and a planted
// open shard whose sealed name is a sealed shard's does not replace it.
func TestNamesFromContents(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(3000, start)
	top := t.TempDir()
	dir := filepath.Join(top, "a", "b", "store")
	st := writeStore(t, dir, pkts, WriterOptions{BlockSize: 8 << 10})
	sealed, _ := st.Shards()
	if len(sealed) != 1 {
		t.Fatalf("%d shards", len(sealed))
	}
	shards := filepath.Join(dir, shardsDir)
	before, _ := os.ReadFile(sealed[0].ShardPath())
	beforeIdx, _ := os.ReadFile(sealed[0].IndexPath())

	// The header says writer "/../../a"; the file name says c07.
	os.WriteFile(filepath.Join(shards, "c07-00000003.shard.open"), openShardBytes(t, pkts[:200], "/../../a", 3), 0o644)
	// Same first and last second as the sealed shard, same writer and
	// sequence: its sealed name is the sealed shard's.
	few := append(append([]pcapio.Packet{}, pkts[:100]...), pkts[len(pkts)-1])
	os.WriteFile(filepath.Join(shards, "imp-00000000.shard.open"), openShardBytes(t, few, "imp", 0), 0o644)

	lk, err := AcquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Recover(nil)
	lk.Release()
	if !errors.Is(err, ErrExists) {
		t.Errorf("recovery over a sealed shard: %v, want ErrExists", err)
	}
	if after, _ := os.ReadFile(sealed[0].ShardPath()); !bytes.Equal(after, before) {
		t.Errorf("sealed shard replaced: %d bytes, had %d", len(after), len(before))
	}
	if after, _ := os.ReadFile(sealed[0].IndexPath()); !bytes.Equal(after, beforeIdx) {
		t.Error("sealed shard's index replaced")
	}
	// Nothing new anywhere but in the shards directory.
	filepath.Walk(top, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && filepath.Dir(p) != shards && filepath.Dir(p) != dir {
			t.Errorf("file written outside the store's shards: %s", p)
		}
		return nil
	})
	m, _ := filepath.Glob(filepath.Join(shards, "*_c07-00000003.shard"))
	if len(m) != 1 {
		t.Errorf("the shard of writer c07 was not sealed under its file name's writer: %v", m)
	}
	if _, ok := parseName(dir, "20260302T090000Z_20260302T090003Z_..-00000001.shard"); ok {
		t.Error("a writer id of dots parsed")
	}
	for _, id := range []string{"", "a/b", "../x", "abcdefghi", "a_b", "a-b"} {
		if validWriter(id) {
			t.Errorf("writer id %q accepted", id)
		}
	}
}

// TestNotRegularFiles plants FIFOs and other non-files under shard, index
// and flow names: every reader and writer finishes, naming them.
func TestNotRegularFiles(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(2000, start)
	dir := t.TempDir()
	st := writeStore(t, dir, pkts, WriterOptions{BlockSize: 8 << 10})
	sealed, _ := st.Shards()
	shards := filepath.Join(dir, shardsDir)
	for _, n := range []string{"20260302T000000Z_20260302T235959Z_imp-00000007.shard", "imp-00000009.shard.open"} {
		if err := syscall.Mkfifo(filepath.Join(shards, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(shards, "20260302T000000Z_20260302T235959Z_imp-00000008.shard"), 0o755)
	os.Remove(sealed[0].FlowsPath())
	syscall.Mkfifo(sealed[0].FlowsPath(), 0o644)

	done := make(chan struct{})
	go func() {
		defer close(done)
		got, err := runQuery(t, []*Store{st}, Selector{})
		var de *DamageError
		if !errors.As(err, &de) || len(de.Damage) != 3 {
			t.Errorf("query: %v", err)
		}
		samePackets(t, got, pkts)
		rep, err := st.Info(true)
		if err != nil || len(rep.Damage) != 4 {
			t.Errorf("info: %v %v", rep.Damage, err)
		}
		err = Flows([]*Store{st}, Selector{}, nil, func(*flow.Record) error { return nil })
		if !errors.As(err, &de) {
			t.Errorf("flows: %v", err)
		}
		lk, err := AcquireLock(dir)
		if err != nil {
			t.Error(err)
			return
		}
		defer lk.Release()
		if _, err := st.Repair(nil); err == nil || !strings.Contains(err.Error(), "imp-00000009.shard.open") {
			t.Errorf("repair: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a reader hangs on a named pipe")
	}
}

// TestForeignOwner: files under store names owned by another user (who
// could write to the store directory) are neither read nor written.
func TestForeignOwner(t *testing.T) {
	testenv.Root(t)
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(2000, start)
	dir := t.TempDir()
	st := writeStore(t, dir, pkts, WriterOptions{BlockSize: 8 << 10})
	shards := filepath.Join(dir, shardsDir)
	planted := openShardBytes(t, genPackets(300, start.Add(time.Hour)), "imp", 5)
	p := filepath.Join(shards, "imp-00000005.shard.open")
	os.WriteFile(p, planted, 0o644)
	if err := os.Chown(p, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	got, err := runQuery(t, []*Store{st}, Selector{})
	var de *DamageError
	if !errors.As(err, &de) || !strings.Contains(de.Error(), "owned by uid 12345") {
		t.Errorf("query: %v", err)
	}
	samePackets(t, got, pkts)
	lk, _ := AcquireLock(dir)
	defer lk.Release()
	if _, err := st.Recover(nil); err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
		t.Errorf("recover: %v", err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, planted) {
		t.Error("a file of another user was written")
	}
}

// TestErrorsNameTheirPlace: store errors say which file (and, for
// blocks, which shard, block and byte offset) they are about.
func TestErrorsNameTheirPlace(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(2000, start)
	dir := t.TempDir()
	st, _ := Create(dir)
	shards := filepath.Join(dir, shardsDir)
	stem := shardStem(start, pkts[len(pkts)-1].Timestamp, "imp", 0)
	// An open shard that is not a shard.
	os.WriteFile(filepath.Join(shards, "c01-00000002.shard.open"), bytes.Repeat([]byte("x"), 500), 0o644)
	lk, _ := AcquireLock(dir)
	_, recErr := st.Recover(nil)
	w, err := st.NewWriter(WriterOptions{BlockSize: 8 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w.SetNanos(true)
	for _, p := range pkts {
		w.Write(p.Timestamp, p.LinkType, p.Data, p.OrigLen)
	}
	// A sealed shard planted, while the writer runs, where its seal goes.
	os.WriteFile(filepath.Join(shards, stem+extShard), []byte("planted"), 0o644)
	closeErr := w.Close()
	lk.Release()
	os.Remove(filepath.Join(shards, stem+extShard))
	lk, _ = AcquireLock(dir)
	st.Recover(nil)
	lk.Release()
	sealed, _ := st.Shards()
	b, _ := os.ReadFile(sealed[0].ShardPath())
	sh := mustShard(t, b)
	m := sh.Blocks[3]
	b[m.Offset+60] ^= 1
	os.WriteFile(sealed[0].ShardPath(), b, 0o644)
	os.WriteFile(sealed[0].IndexPath(), []byte("not an index"), 0o644)
	_, qErr := runQuery(t, []*Store{st}, Selector{Hosts: []netip.Addr{netip.MustParseAddr("10.1.0.3")}})
	for _, tc := range []struct {
		what string
		err  error
		want []string
	}{
		{"recovery of a non-shard", recErr, []string{filepath.Join(shards, "c01-00000002.shard.open")}},
		{"seal over a planted shard", closeErr, []string{"imp-00000000.shard.open", stem + extShard}},
		{"query of a damaged block and index", qErr, []string{sealed[0].Name(), "index", fmt.Sprintf("block 3 at byte %d", m.Offset)}},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.what)
			continue
		}
		msg := tc.err.Error()
		var de *DamageError
		if errors.As(tc.err, &de) {
			msg = ""
			for _, d := range de.Damage {
				msg += d.String() + "\n"
			}
		}
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not name %q", tc.what, msg, w)
			}
		}
	}
}

func mustShard(t *testing.T, b []byte) *pcapio.Shard {
	t.Helper()
	sh, err := pcapio.OpenShard(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// FuzzParseName: a name from a directory listing either is refused or
// parses into parts that build exactly the same name back: no name a
// file system can hold yields a part that could name another place.
func FuzzParseName(f *testing.F) {
	for _, n := range []string{"20260302T090000Z_20260302T090004Z_imp-00000000.shard", "c07-00000003.shard.open",
		"20260302T090000Z_20260302T090004Z_..-00000001.shard", "x-1.shard.open", "imp-4294967295.shard.open", "a_b_c-00000001.shard"} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, name string) {
		sf, ok := parseName("/s", name)
		if !ok {
			return
		}
		var back string
		if sf.Sealed {
			back = shardStem(sf.First, sf.Last, sf.Writer, sf.Seq) + extShard
		} else {
			back = filepath.Base(openBase("/s", sf.Writer, sf.Seq)) + extOpen
		}
		if back != name || !validWriter(sf.Writer) || sf.Name() != name || filepath.Dir(sf.ShardPath()) != filepath.Join("/s", shardsDir) {
			t.Fatalf("%q parsed as %+v, which names %q", name, sf, back)
		}
	})
}
