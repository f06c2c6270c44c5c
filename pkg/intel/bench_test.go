package intel

import (
	"fmt"
	"math/rand"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/nwhealth/nwhealth/pkg/flow"
)

// The retro-hunt's cost target: matching 100,000 indicators over a month
// of flow records costs at most 1.5x reading those records from their flow
// files. The data is generated: a month of a 300-host office (DNS with
// answers, TLS with SNI, HTTP with Host, internal traffic), and a feed of
// 100,000 indicators (addresses v4 and v6, networks of many lengths,
// domains, *.domains) of which a few hundred occur in the traffic.
// NWHEALTH_BENCH_RECORDS sets the number of records (default 1,000,000,
// about a month of such an office).

const benchIndicators = 100_000

type benchData struct {
	files   [][]byte
	records int
	list    string
	set     *Set
	load    time.Duration
}

var (
	benchOnce sync.Once
	bench     benchData
)

func benchRecordCount() int {
	if n, err := strconv.Atoi(os.Getenv("NWHEALTH_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

func randPublic4(rng *rand.Rand) netip.Addr {
	for {
		a := netip.AddrFrom4([4]byte{byte(1 + rng.Intn(222)), byte(rng.Intn(256)), byte(rng.Intn(256)), byte(1 + rng.Intn(254))})
		if !a.IsPrivate() && !a.IsLoopback() {
			return a
		}
	}
}

func randName(rng *rand.Rand, i int) string {
	tlds := []string{"com", "net", "org", "io", "example"}
	return fmt.Sprintf("s%d-%x.%s", i, rng.Uint32()&0xffff, tlds[rng.Intn(len(tlds))])
}

func prepareBench(tb testing.TB) *benchData {
	benchOnce.Do(func() {
		rng := rand.New(rand.NewSource(19))
		// The world the office talks to.
		servers := make([]netip.Addr, 20000)
		for i := range servers {
			servers[i] = randPublic4(rng)
		}
		names := make([]string, 5000)
		for i := range names {
			names[i] = randName(rng, i)
		}
		// The feed: mostly addresses and names nobody here talks to, a
		// few that occur.
		var b strings.Builder
		for i := 0; i < benchIndicators; i++ {
			switch k := i % 20; {
			case i%500 == 0: // one in 500 occurs in the traffic
				if k%2 == 0 {
					fmt.Fprintln(&b, servers[rng.Intn(len(servers))])
				} else {
					fmt.Fprintln(&b, names[rng.Intn(len(names))])
				}
			case k < 11:
				fmt.Fprintln(&b, randPublic4(rng))
			case k < 12:
				fmt.Fprintf(&b, "2001:db8:%x:%x::%x\n", rng.Intn(65536), rng.Intn(65536), rng.Intn(65536))
			case k < 14:
				p, _ := randPublic4(rng).Prefix(16 + rng.Intn(13))
				fmt.Fprintln(&b, p)
			case k < 19:
				fmt.Fprintln(&b, randName(rng, 100000+i))
			default:
				fmt.Fprintf(&b, "*.%s\n", randName(rng, 200000+i))
			}
		}
		bench.list = b.String()
		start := time.Now()
		r := NewReader()
		r.ReadList(strings.NewReader(bench.list), "feed.txt")
		bench.set = r.Finish()
		bench.load = time.Since(start)

		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			panic(err)
		}
		n := benchRecordCount()
		bench.records = n
		t := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
		step := 30 * 24 * time.Hour / time.Duration(n)
		fw := &flow.FileWriter{}
		resolver := netip.MustParseAddr("10.0.0.53")
		for i := 0; i < n; i++ {
			t = t.Add(step)
			host := netip.AddrFrom4([4]byte{10, 1, byte(i % 2), byte(1 + (i/2)%150)})
			r := &flow.Record{First: t, Last: t.Add(time.Duration(rng.Intn(5000)) * time.Millisecond), Proto: 6, Orig: host,
				OrigPort: uint16(32768 + rng.Intn(28000)), OrigPkts: 8, RespPkts: 10, OrigBytes: 900, RespBytes: 12000, OrigFlags: 0x1b, RespFlags: 0x1b}
			switch k := rng.Intn(10); {
			case k < 4: // TLS with SNI
				j := rng.Intn(len(names))
				r.Resp, r.RespPort, r.Name, r.NameSource = servers[j*4%len(servers)], 443, names[j], flow.NameSNI
			case k < 6: // DNS
				j := rng.Intn(len(names))
				r.Proto, r.Resp, r.RespPort, r.Name, r.NameSource = 17, resolver, 53, names[j], flow.NameDNS
				r.Answers = []netip.Addr{servers[j*4%len(servers)], servers[(j*4+1)%len(servers)]}
			case k < 7: // HTTP with Host
				j := rng.Intn(len(names))
				r.Resp, r.RespPort, r.Name, r.NameSource = servers[j*4%len(servers)], 80, names[j], flow.NameHTTP
			default: // inside
				r.Resp, r.RespPort = netip.AddrFrom4([4]byte{10, 1, 9, byte(1 + rng.Intn(40))}), []uint16{445, 88, 389, 135, 8443}[rng.Intn(5)]
			}
			fw.Add(r)
			// Shard-sized files, as a store keeps them.
			if fw.Len() == 50_000 || i == n-1 {
				bench.files = append(bench.files, fw.Encode(enc))
				fw = &flow.FileWriter{}
			}
		}
	})
	return &bench
}

// readFlows is reading the records: decode every flow file and hand each
// record to a consumer (here a sum, so nothing is optimised away).
//
//go:noinline
func readFlows(files [][]byte, dec *zstd.Decoder) (uint64, error) {
	var sum uint64
	for _, f := range files {
		recs, _, err := flow.DecodeFile(f, dec)
		if err != nil {
			return 0, err
		}
		for i := range recs {
			sum += recs[i].OrigBytes
		}
	}
	return sum, nil
}

// readAndMatch is the same read with every record matched.
//
//go:noinline
func readAndMatch(files [][]byte, dec *zstd.Decoder, c *Collector) (uint64, error) {
	var sum uint64
	for _, f := range files {
		recs, _, err := flow.DecodeFile(f, dec)
		if err != nil {
			return 0, err
		}
		for i := range recs {
			sum += recs[i].OrigBytes
			c.Add(&recs[i])
		}
	}
	return sum, nil
}

// BenchmarkRetroHunt reports the cost of matching as a multiple of
// reading (x-read, the target is at most 1.5), from the fastest of its
// rounds of each, read and read+match alternating so both see the same
// machine. NWHEALTH_BENCH_PHASE=read or match runs one phase only (for
// instruction counts under callgrind: scripts/bench-intel.sh).
func BenchmarkRetroHunt(b *testing.B) {
	d := prepareBench(b)
	dec, err := zstd.NewReader(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	m := NewMatcher(d.set)
	phase := os.Getenv("NWHEALTH_BENCH_PHASE")
	var bestRead, bestMatch time.Duration
	var matches int
	b.ResetTimer()
	for range b.N {
		if phase != "match" {
			// Each phase starts from a collected heap, so the collector's
			// work inside it is its own.
			runtime.GC()
			start := time.Now()
			if _, err := readFlows(d.files, dec); err != nil {
				b.Fatal(err)
			}
			if t := time.Since(start); bestRead == 0 || t < bestRead {
				bestRead = t
			}
		}
		if phase != "read" {
			c := NewCollector(m)
			runtime.GC()
			start := time.Now()
			if _, err := readAndMatch(d.files, dec, c); err != nil {
				b.Fatal(err)
			}
			if t := time.Since(start); bestMatch == 0 || t < bestMatch {
				bestMatch = t
			}
			matches = len(c.Matches())
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(d.records), "records")
	b.ReportMetric(float64(len(d.set.Indicators)), "indicators")
	b.ReportMetric(float64(matches), "matched")
	if bestRead > 0 {
		b.ReportMetric(float64(bestRead.Nanoseconds())/float64(d.records), "ns/record-read")
	}
	if bestMatch > 0 {
		b.ReportMetric(float64(bestMatch.Nanoseconds())/float64(d.records), "ns/record-read+match")
	}
	if bestRead > 0 && bestMatch > 0 {
		b.ReportMetric(float64(bestMatch)/float64(bestRead), "x-read")
	}
	b.ReportMetric(float64(d.load.Milliseconds()), "ms-load-feed")
}

// Matching a record that matches nothing allocates nothing: the cost per
// record is lookups, not garbage.
func TestMatchAllocatesNothing(t *testing.T) {
	r := NewReader()
	r.ReadList(strings.NewReader("203.0.113.0/24\n198.51.100.7\nbad.example\n*.worse.example\n2001:db8::/32\n"), "feed")
	c := NewCollector(NewMatcher(r.Finish()))
	recs := []*flow.Record{
		rec("10.1.1.5", "192.0.2.1", 443, "www.example.org", flow.NameSNI),
		rec("10.1.1.5", "10.0.0.53", 53, "a.b.example.com", flow.NameDNS, "192.0.2.7", "192.0.2.8"),
		rec("fd00::1", "2001:db9::1", 443, "", 0),
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, r := range recs {
			c.Add(r)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per round of non-matching records, want 0", allocs)
	}
}
