package store

import (
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// TestInlineWriterHoldsBlocks: an inline writer (a capture worker's) keeps
// its compressed blocks until it holds maxBatch of them, until the oldest
// packet in them is FlushInterval old, or until EndBlocks, Flush, a seal,
// a new shard or Close; then the write loop writes them, and every packet
// taken is stored.
func TestInlineWriterHoldsBlocks(t *testing.T) {
	const flush = 100 * time.Millisecond
	for _, tc := range []struct {
		name  string
		flush time.Duration
		shard int64 // ShardSize
		held  int   // blocks ended before the action
		// act makes the writer hand off what it holds; it returns the
		// blocks to expect on disk after it.
		act func(t *testing.T, w *Writer, write func(n int)) uint64
	}{
		{"maxBatch blocks", 0, 0, maxBatch - 1, func(t *testing.T, w *Writer, write func(int)) uint64 {
			writeBlocks(t, w, write, 1)
			return uint64(maxBatch)
		}},
		{"the oldest packet FlushInterval old", flush, 0, 2, func(t *testing.T, w *Writer, write func(int)) uint64 {
			time.Sleep(flush + 10*time.Millisecond)
			write(256) // the writer looks at the clock every 256 packets
			return 2
		}},
		{"EndBlocks", 0, 0, 2, func(t *testing.T, w *Writer, write func(int)) uint64 {
			write(10) // and a partly filled block
			w.EndBlocks()
			return 3
		}},
		{"Flush", 0, 0, 2, func(t *testing.T, w *Writer, write func(int)) uint64 {
			write(10)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			return 3
		}},
		{"a seal", 0, 3 * (64 << 10), 2, func(t *testing.T, w *Writer, write func(int)) uint64 {
			writeBlocks(t, w, write, 1) // the shard's third block seals it
			return 3
		}},
		{"a new shard", 0, 0, 2, func(t *testing.T, w *Writer, write func(int)) uint64 {
			// Another link type opens another shard; the held blocks reach
			// the write loop before its open, in order.
			w.SetLinkType(pkthdr.LinkRaw)
			write(1)
			w.SetLinkType(pkthdr.LinkEthernet)
			return 2
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Create(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			w, err := st.NewWriter(WriterOptions{ID: "c00", BlockSize: 64 << 10, ShardSize: tc.shard, FlushInterval: tc.flush, Compressors: 1, Inline: true})
			if err != nil {
				t.Fatal(err)
			}
			w.SetLinkType(pkthdr.LinkEthernet)
			f := floodFrame(0xc6120001, 0x0400)
			ns, written := int64(1e18), uint64(0)
			write := func(n int) {
				for range n {
					p := f
					if w.lt == pkthdr.LinkRaw {
						p = f[14:]
					}
					if err := w.WritePacketNanos(ns, p, len(p)); err != nil {
						t.Fatal(err)
					}
					ns += 1000
					written++
				}
			}
			writeBlocks(t, w, write, tc.held)
			// Nothing was handed to the write loop, so nothing is on disk.
			if len(w.held) != tc.held {
				t.Fatalf("%d blocks held, want %d", len(w.held), tc.held)
			}
			if got := w.Stats().Blocks; got != 0 {
				t.Fatalf("%d blocks written before a hand-off", got)
			}
			want := tc.act(t, w, write)
			if len(w.held) != 0 {
				t.Errorf("%d blocks still held", len(w.held))
			}
			for end := time.Now().Add(5 * time.Second); w.Stats().Blocks < want && time.Now().Before(end); {
				time.Sleep(time.Millisecond)
			}
			if got := w.Stats().Blocks; got != want {
				t.Errorf("%d blocks written, want %d", got, want)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if s := w.Stats(); s.StoredPackets != written || s.Packets != written {
				t.Errorf("took %d packets and stored %d, wrote %d", s.Packets, s.StoredPackets, written)
			}
		})
	}
}

// TestInlineWriterHoldsBytes: blocks that hardly compress are handed to
// the write loop once they make maxWrite bytes, fewer than maxBatch.
func TestInlineWriterHoldsBytes(t *testing.T) {
	st, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.NewWriter(WriterOptions{ID: "c00", BlockSize: 64 << 10, Compressors: 1, Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	w.SetLinkType(pkthdr.LinkEthernet)
	f := floodFrame(0xc6120001, 0x0400)
	f = append(f, make([]byte, 1514-len(f))...)
	r := rand.New(rand.NewPCG(1, 2))
	ns, written := int64(1e18), uint64(0)
	write := func(n int) {
		for range n {
			for i := 42; i < len(f); i++ {
				f[i] = byte(r.Uint32())
			}
			if err := w.WritePacketNanos(ns, f, len(f)); err != nil {
				t.Fatal(err)
			}
			ns += 1000
			written++
		}
	}
	var before int // bytes held before the last block
	for len(w.held) < maxBatch {
		before = len(w.hold)
		writeBlocks(t, w, write, 1)
		if len(w.held) == 0 {
			break
		}
	}
	n := w.Stats().Packets // taken: the blocks ended
	if len(w.held) != 0 || before >= maxWrite || before+(64<<10)+(64<<10)/8 < maxWrite {
		t.Fatalf("%d blocks held, %d bytes before the last: want a hand-off as they pass %d bytes", len(w.held), before, maxWrite)
	}
	for end := time.Now().Add(5 * time.Second); w.Stats().StoredPackets < n && time.Now().Before(end); {
		time.Sleep(time.Millisecond)
	}
	if s := w.Stats(); s.StoredPackets != n || s.Blocks < 2 || s.Blocks >= uint64(maxBatch) {
		t.Errorf("%d packets in %d blocks written, want %d in fewer than %d", s.StoredPackets, s.Blocks, n, maxBatch)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if s := w.Stats(); s.StoredPackets != written {
		t.Errorf("stored %d packets, wrote %d", s.StoredPackets, written)
	}
}

// writeBlocks writes packets until n more blocks have ended.
func writeBlocks(t *testing.T, w *Writer, write func(n int), n int) {
	t.Helper()
	want := w.Stats().Packets
	for range n {
		for p := w.Stats().Packets; w.Stats().Packets == p; {
			write(1)
		}
		if w.Stats().Packets <= want {
			t.Fatal("no block ended")
		}
		want = w.Stats().Packets
	}
}

// TestInlineWriterYields: an inline writer yields the processor at each
// block's end, so that with one processor another goroutine (the
// collector's worker finishing a cycle's marking) runs while a capture
// worker drains a backlog without ever waiting for its ring.
func TestInlineWriterYields(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	st, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.NewWriter(WriterOptions{ID: "c00", BlockSize: 64 << 10, Compressors: 1, Inline: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.SetLinkType(pkthdr.LinkEthernet)
	f := floodFrame(0xc6120001, 0x0400)
	write := func() {
		if err := w.WritePacketNanos(1e18, f, len(f)); err != nil {
			t.Fatal(err)
		}
	}
	write() // the shard is open
	var ran atomic.Bool
	go ran.Store(true)
	// Writing a block takes well under the scheduler's 10 ms time slice,
	// so without the yield the goroutine would still wait.
	for p := w.Stats().Packets; w.Stats().Packets == p; {
		write()
	}
	if !ran.Load() {
		t.Error("a block ended and the writer did not yield")
	}
}
