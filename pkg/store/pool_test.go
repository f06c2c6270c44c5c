package store

import (
	"runtime"
	"testing"
	"time"

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
// otherwise, and they then kept their buffers too).
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
			write(50000) // the pools filled: some 60 blocks
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
