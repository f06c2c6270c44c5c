package store

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// TestWriterKeepsBlockBuffers: once warmed up, a writer takes every block
// buffer (raw and compressed) from its pools, however its write loop is
// scheduled. On one scheduler thread, as a one-worker capture runs, the
// write loop drains its queue only when the packet path waits on the full
// queue, and pools as small as the queue then dropped two buffers in every
// eight (some 36 KB allocated a 64 KiB block). What is left is a few small
// objects a block (the job) and the index's growth: under 3 KB, and under
// 7 KB with the race detector, whose bookkeeping allocates too; the bound
// lies between that and what the smaller pools allocated (44 KB inline,
// 21 KB with two compressors; the race detector schedules the write loop
// otherwise, and they then kept their buffers too). An inline writer holds
// up to maxBatch compressed blocks in buffers that grow to what a hand-off
// needs, so it warms up over a few hand-offs.
func TestWriterKeepsBlockBuffers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for _, tc := range []struct {
		name        string
		compressors int
		inline      bool
	}{
		{"capture worker: inline", 1, true},
		{"import: two compressors", 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Create(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			w, err := st.NewWriter(WriterOptions{ID: "c00", BlockSize: 64 << 10, Compressors: tc.compressors, Inline: tc.inline})
			if err != nil {
				t.Fatal(err)
			}
			// 64 flows of 64-byte frames, the capture bench's load.
			frames := make([][]byte, 64)
			for i := range frames {
				frames[i] = floodFrame(0xc6120001, 0x0400+uint16(i))
			}
			ts := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
			n := 0
			write := func(count int) {
				for range count {
					f := frames[n%len(frames)]
					if err := w.Write(ts, pkthdr.LinkEthernet, f, len(f)); err != nil {
						t.Fatal(err)
					}
					ts = ts.Add(time.Microsecond)
					n++
				}
			}
			write(300000) // the pools and hold buffers filled: some 370 blocks
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			blocks0 := w.Stats().Blocks
			write(200000)
			runtime.ReadMemStats(&m1)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			// Blocks are counted as they are written: Close wrote the rest.
			blocks := float64(200000*(16+64)) / (64 << 10)
			perBlock := float64(m1.TotalAlloc-m0.TotalAlloc) / blocks
			t.Logf("%.0f bytes allocated a block over %.0f blocks (%d before)", perBlock, blocks, blocks0)
			if perBlock > 12<<10 {
				t.Errorf("%.0f bytes allocated a 64 KiB block in steady state, want at most 12 KiB: block buffers are allocated anew", perBlock)
			}
			if got := w.Stats().Packets; got != uint64(n) {
				t.Errorf("stored %d packets, wrote %d", got, n)
			}
		})
	}
}

// TestWriterBatchesBlocks: the write loop writes a shard's queued blocks
// with one system call, and the shards, index and flow files are byte
// for byte those written a block at a time (past the shard header, which
// holds its creation time). On one scheduler thread, as a one-worker
// capture runs, the packet path queues several blocks before the write
// loop runs, so most blocks share a write.
func TestWriterBatchesBlocks(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	defer func(n int) { maxBatch = n }(maxBatch)
	type result struct {
		files         map[string][]byte
		blocks        uint64
		writes, stats int
	}
	run := func(batch int) result {
		maxBatch = batch
		st, err := Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		newFlows := func() FlowTable { return flow.NewBuilder(flow.Options{MaxFlows: 4096, Encoded: true}) }
		// Shards of 256 blocks' raw bytes: several seals in the run.
		w, err := st.NewWriter(WriterOptions{ID: "c00", BlockSize: 64 << 10, ShardSize: 16 << 20, Compressors: 1, Inline: true, NewFlows: newFlows})
		if err != nil {
			t.Fatal(err)
		}
		frames := make([][]byte, 64)
		for i := range frames {
			frames[i] = floodFrame(0xc6120001+uint32(i%3), 0x0400+uint16(i))
		}
		ts := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
		for n := range 600000 {
			f := frames[n%len(frames)]
			if err := w.Write(ts, pkthdr.LinkEthernet, f, len(f)); err != nil {
				t.Fatal(err)
			}
			ts = ts.Add(time.Microsecond)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		shards, err := st.Shards()
		if err != nil {
			t.Fatal(err)
		}
		r := result{files: map[string][]byte{}, blocks: w.Stats().Blocks, writes: w.blockWrites, stats: w.Stats().Sealed}
		for _, sf := range shards {
			for _, p := range []string{sf.ShardPath(), sf.IndexPath(), sf.FlowsPath()} {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if p == sf.ShardPath() {
					b = b[48:] // the shard header: creation time
				}
				r.files[filepath.Base(p)] = b
			}
		}
		return r
	}
	batch := maxBatch
	one, batched := run(1), run(batch)
	t.Logf("%d blocks in %d shards: %d writes a block at a time, %d in batches", batched.blocks, batched.stats, one.writes, batched.writes)
	if one.stats < 3 || len(one.files) != 3*one.stats {
		t.Fatalf("%d shards sealed, %d files: the run does not cycle shards", one.stats, len(one.files))
	}
	if one.blocks != batched.blocks || uint64(one.writes) != one.blocks {
		t.Errorf("blocks %d and %d; %d writes a block at a time", one.blocks, batched.blocks, one.writes)
	}
	for name, b := range one.files {
		if !bytes.Equal(batched.files[name], b) {
			t.Errorf("%s differs when blocks are written in batches", name)
		}
	}
	if len(batched.files) != len(one.files) {
		t.Errorf("%d files in batches, %d a block at a time", len(batched.files), len(one.files))
	}
	switch {
	case batched.writes < 1 || uint64(batched.writes) > batched.blocks:
		t.Errorf("%d writes for %d blocks", batched.writes, batched.blocks)
	case !raceBuild && uint64(batched.writes) > batched.blocks/2:
		t.Errorf("%d writes for %d blocks: the queued blocks were not written together", batched.writes, batched.blocks)
	}
}
