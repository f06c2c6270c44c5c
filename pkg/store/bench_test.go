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
	for i := 0; i < b.N; i++ {
		pl, err := PlanQuery([]*Store{st}, sel)
		if err != nil {
			b.Fatal(err)
		}
		bytes = 0
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
}
