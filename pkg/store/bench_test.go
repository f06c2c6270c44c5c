package store

import (
	"io"
	"net/netip"
	"os"
	"testing"
	"time"
)

// BenchmarkQueryStore queries an existing store named by NWHEALTH_BENCH_STORE
// (scripts/bench-store.sh builds them): a host (NWHEALTH_BENCH_HOST) or,
// without one, the hour from NWHEALTH_BENCH_FROM.
func BenchmarkQueryStore(b *testing.B) {
	dir := os.Getenv("NWHEALTH_BENCH_STORE")
	if dir == "" {
		b.Skip("set NWHEALTH_BENCH_STORE to a store directory")
	}
	st, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	var sel Selector
	if h := os.Getenv("NWHEALTH_BENCH_HOST"); h != "" {
		sel.Hosts = []netip.Addr{netip.MustParseAddr(h)}
	} else {
		from, _ := time.Parse(time.RFC3339, os.Getenv("NWHEALTH_BENCH_FROM"))
		sel.From, sel.To = from, from.Add(time.Hour)
	}
	var bytes int64
	var blocks int
	for i := 0; i < b.N; i++ {
		pl, err := PlanQuery([]Reader{st}, sel)
		if err != nil {
			b.Fatal(err)
		}
		bytes, blocks = 0, pl.Scanned
		err = pl.RunRecords(func(r *Record) error {
			bytes += int64(len(r.Raw))
			_, err := io.Discard.Write(r.Raw)
			return err
		})
		pl.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(bytes)/1e6, "MB-out")
	b.ReportMetric(float64(blocks), "blocks")
}

// BenchmarkWriterSmallPackets stores 64-byte UDP frames over 64 flows, as
// the capture benchmark's trafgen burst does: the per-packet cost of
// parsing, indexing, flow records, buffering and compression.
func BenchmarkWriterSmallPackets(b *testing.B) {
	st, err := Create(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	// The options capture uses (cmd/nwhealth/capture.go, default flags).
	w, err := st.NewWriter(WriterOptions{
		ID: "c00", ShardSize: 256 << 20, ShardSpan: time.Hour, BlockSize: blockSizeBench(),
		FlushInterval: 250 * time.Millisecond, Compressors: 1, Inline: true, NewFlows: benchFlows,
	})
	if err != nil {
		b.Fatal(err)
	}
	w.SetNanos(true)
	frames := make([][]byte, 64)
	for i := range frames {
		f := make([]byte, 64)
		copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0, 0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 4, byte(i), 0, 9, 0, 30})
		frames[i] = f
	}
	ts := time.Unix(1700000000, 0)
	b.SetBytes(64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ts = ts.Add(500 * time.Nanosecond)
		if err := w.Write(ts, 1, frames[i&63], 64); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPlanStore is the planning part of BenchmarkQueryStore alone.
func BenchmarkPlanStore(b *testing.B) {
	dir := os.Getenv("NWHEALTH_BENCH_STORE")
	if dir == "" {
		b.Skip("set NWHEALTH_BENCH_STORE to a store directory")
	}
	st, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	sel := Selector{Hosts: []netip.Addr{netip.MustParseAddr(os.Getenv("NWHEALTH_BENCH_HOST"))}}
	for i := 0; i < b.N; i++ {
		pl, err := PlanQuery([]Reader{st}, sel)
		if err != nil {
			b.Fatal(err)
		}
		pl.Close()
	}
}
