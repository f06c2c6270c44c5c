package replay

import (
	"context"
	"testing"
)

// BenchmarkReplayCaptures runs the pipeline over every shared
// remote-operation capture held in memory, so the number measures decoding,
// not disk.
func BenchmarkReplayCaptures(b *testing.B) {
	var pkts []Packet
	var bytes int64
	for _, f := range sharedCaptures(b) {
		src, c, err := OpenFile(f)
		if err != nil {
			b.Fatal(err)
		}
		for {
			p, err := src.Next()
			if err != nil {
				break
			}
			p.Data = append([]byte(nil), p.Data...)
			pkts = append(pkts, p)
			bytes += int64(len(p.Data))
		}
		c.Close()
	}
	if len(pkts) == 0 {
		b.Skip("no shared captures")
	}
	b.ReportAllocs()
	b.ResetTimer()
	ops := 0
	for i := 0; i < b.N; i++ {
		// One pipeline over the files one after another: the flows do
		// not overlap, so this costs what separate runs would.
		_, _ = Run(context.Background(), &sliceSource{pkts: pkts}, Config{}, func(Operation) { ops++ })
	}
	b.StopTimer()
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(bytes)*float64(b.N)/sec/1e6, "MB/s")
	b.ReportMetric(float64(len(pkts))*float64(b.N)/sec, "pkts/s")
	b.ReportMetric(float64(ops)/float64(b.N), "ops/run")
}
