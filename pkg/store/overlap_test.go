package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/bigbuf"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// TestManyOverlappingBlocks queries a store where more blocks overlap in
// time than a query reads ahead: a capture's fanout workers each write
// their own shards, so with many workers every instant is covered by as
// many blocks. The merge must still deliver every packet in time order.
func TestManyOverlappingBlocks(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(24000, start)
	dir := t.TempDir()
	st, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 40
	var ws []*Writer
	for i := range writers {
		w, err := st.NewWriter(WriterOptions{ID: fmt.Sprintf("w%02d", i), BlockSize: 4 << 10})
		if err != nil {
			t.Fatal(err)
		}
		w.SetNanos(true)
		ws = append(ws, w)
	}
	// Round robin: each writer's blocks span the same stretch of time as
	// every other writer's.
	for i, p := range pkts {
		if err := ws[i%writers].Write(p.Timestamp, p.LinkType, p.Data, p.OrigLen); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// With the default memory limit, and with one so small that the
	// overlapping blocks go in passes, which then take the blocks around
	// their stretch of time only.
	for _, limit := range []int64{0, 256 << 10} {
		done := make(chan []pcapio.Packet)
		go func() {
			pl, err := PlanQuery([]*Store{st}, Selector{})
			if err != nil {
				t.Error(err)
				done <- nil
				return
			}
			defer pl.Close()
			pl.MemoryLimit = limit
			var got []pcapio.Packet
			err = pl.Run(func(p pcapio.Packet) error {
				p.Data = bytes.Clone(p.Data)
				got = append(got, p)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			done <- got
		}()
		select {
		case got := <-done:
			samePackets(t, got, pkts)
		case <-time.After(30 * time.Second):
			t.Fatal("query did not finish: the merge waits for more overlapping blocks than it reads ahead")
		}
	}
}

// shuffledStore stores n packets whose times are a random permutation of
// n milliseconds: every block spans nearly the whole time range, so every
// block overlaps every other (an input far out of time order, or crafted).
func shuffledStore(t *testing.T, n int, dir string) (*Store, []pcapio.Packet) {
	t.Helper()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(n, start)
	rng := rand.New(rand.NewSource(9))
	for i, j := range rng.Perm(n) {
		pkts[i].Timestamp = start.Add(time.Duration(j) * time.Millisecond)
	}
	st := writeStore(t, dir, pkts, WriterOptions{BlockSize: 8 << 10})
	sorted := slices.Clone(pkts)
	slices.SortStableFunc(sorted, func(a, b pcapio.Packet) int { return a.Timestamp.Compare(b.Timestamp) })
	return st, sorted
}

// TestMergeMemoryBounded queries a store where every block overlaps every
// other: the merge must not hold them all. Past its memory limit it
// delivers the rest in passes, in the same order, and the heap stays
// within a few times the limit however much the store holds.
func TestMergeMemoryBounded(t *testing.T) {
	st, want := shuffledStore(t, 40000, t.TempDir())
	const limit = 1 << 20
	for _, sel := range []Selector{
		{},
		{Hosts: []netip.Addr{netip.MustParseAddr("10.1.0.3")}, From: want[5000].Timestamp, To: want[35000].Timestamp},
	} {
		wantSel := oracle(want, sel)
		pl, err := PlanQuery([]*Store{st}, sel)
		if err != nil {
			t.Fatal(err)
		}
		pl.MemoryLimit = limit
		// Live memory, measured after a collection at a few points (what
		// the query holds, not what it has yet to collect), and the block
		// buffers, which are not on the Go heap.
		held := func() int64 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return int64(ms.HeapAlloc) + bigbuf.InUse()
		}
		base := held()
		peak := base
		n := 0
		err = pl.Run(func(p pcapio.Packet) error {
			if n >= len(wantSel) || !p.Timestamp.Equal(wantSel[n].Timestamp) || !bytes.Equal(p.Data, wantSel[n].Data) {
				return fmt.Errorf("packet %d differs or is extra", n)
			}
			n++
			if n%4000 == 0 {
				peak = max(peak, held())
			}
			return nil
		})
		pl.Close()
		if err != nil || n != len(wantSel) {
			t.Fatalf("%+v: %v after %d of %d packets", sel, err, n, len(wantSel))
		}
		if grown := peak - base; grown > 4*limit {
			t.Errorf("%+v: the heap grew by %d MiB during the query (limit %d MiB)", sel, grown>>20, limit>>20)
		}
	}
}

// TestPassesDamage: a damaged block met while delivering in passes is
// named once and everything else delivered in order.
func TestPassesDamage(t *testing.T) {
	dir := t.TempDir()
	st, want := shuffledStore(t, 20000, dir)
	shards, _ := st.Shards()
	b, _ := os.ReadFile(shards[0].ShardPath())
	sh, err := pcapio.OpenShard(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	m := sh.Blocks[len(sh.Blocks)/2]
	b[m.Offset+int64(pcapio.BlockSpan(m))-5] ^= 1
	os.WriteFile(shards[0].ShardPath(), b, 0o644)
	pl, err := PlanQuery([]*Store{st}, Selector{})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	pl.MemoryLimit = 256 << 10
	var got []pcapio.Packet
	err = pl.Run(func(p pcapio.Packet) error {
		p.Data = bytes.Clone(p.Data)
		got = append(got, p)
		return nil
	})
	var de *DamageError
	if !errors.As(err, &de) || len(de.Damage) != 1 || de.Damage[0].Offset != m.Offset {
		t.Fatalf("damage: %v", err)
	}
	if len(got) != len(want)-int(m.Packets) {
		t.Fatalf("%d packets, want %d", len(got), len(want)-int(m.Packets))
	}
	if !slices.IsSortedFunc(got, func(a, b pcapio.Packet) int { return a.Timestamp.Compare(b.Timestamp) }) {
		t.Error("packets out of time order")
	}
}

// TestFollowBounded follows a store from its start: every packet comes
// out, in writer order, while each scan holds a bounded batch, not the
// whole store.
func TestFollowBounded(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genFullPayload(12000, start) // about 15 MB
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{BlockSize: 32 << 10})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fl, err := Follow(ctx, []*Store{st}, Selector{}, false, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	var got []pcapio.Packet
	most := 0
	for len(got) < len(pkts) {
		p, err := fl.Next()
		if err != nil {
			t.Fatal(err)
		}
		most = max(most, cap(fl.arena))
		p.Data = bytes.Clone(p.Data)
		got = append(got, p)
	}
	samePackets(t, got, pkts)
	if most > 12<<20 {
		t.Errorf("a scan held %d MiB", most>>20)
	}
}
