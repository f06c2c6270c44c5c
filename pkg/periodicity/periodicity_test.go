package periodicity

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"testing"
)

// TestSeries checks, over simulated beacons that hide as the task names
// (jitter to ±50% uniform/normal/exponential, missed check-ins, sleep
// windows, slow beacons over days) and over unscheduled series (Poisson,
// office-hours browsing), that every beacon scores above every random
// series, and that the period is found.
func TestSeries(t *testing.T) {
	type gen func(r *rand.Rand) []float64
	beacon := func(p, j float64, dist string, miss float64, hours float64, sleep [2]float64) gen {
		return func(r *rand.Rand) []float64 {
			var ts []float64
			for x := 0.0; x < hours*3600; {
				h := x / 3600
				if !(h >= sleep[0] && h < sleep[1]) && r.Float64() >= miss {
					ts = append(ts, x)
				}
				var d float64
				switch dist {
				case "normal":
					d = p * (1 + j*r.NormFloat64()/2)
				case "exp":
					d = p * (1 - j + j*r.ExpFloat64())
				default:
					d = p * (1 + j*(2*r.Float64()-1))
				}
				x += max(d, 1)
			}
			return ts
		}
	}
	poisson := func(mean float64, hours float64, day bool) gen {
		return func(r *rand.Rand) []float64 {
			var ts []float64
			for x := 0.0; x < hours*3600; x += r.ExpFloat64() * mean {
				h := int(x/3600) % 24
				if day && (h < 8 || h >= 19) {
					continue
				}
				ts = append(ts, x)
			}
			return ts
		}
	}
	cases := []struct {
		name   string
		g      gen
		period float64 // 0: random series
		tol    float64 // relative period tolerance
	}{
		{"perfect60", beacon(60, 0, "uniform", 0, 24, [2]float64{}), 60, 0.12},
		{"u20", beacon(60, 0.2, "uniform", 0.02, 24, [2]float64{}), 60, 0.12},
		{"n10-900", beacon(900, 0.1, "normal", 0.05, 24, [2]float64{}), 900, 0.12},
		{"u40-180 miss15 sleep", beacon(180, 0.4, "uniform", 0.15, 24, [2]float64{19, 22}), 180, 0.12},
		{"u50", beacon(300, 0.5, "uniform", 0.1, 24, [2]float64{}), 300, 0.12},
		{"n50", beacon(300, 0.5, "normal", 0.1, 24, [2]float64{}), 300, 0.12},
		{"e50", beacon(300, 0.5, "exp", 0.1, 24, [2]float64{}), 300, 0.35},
		{"e50 miss30", beacon(300, 0.5, "exp", 0.3, 24, [2]float64{}), 300, 0.35},
		{"slow 1h u30 72h", beacon(3600, 0.3, "uniform", 0.05, 72, [2]float64{}), 3600, 0.12},
		{"slow 2h n30 72h", beacon(7200, 0.3, "normal", 0.05, 72, [2]float64{}), 7200, 0.12},
		{"slow 1h 24h", beacon(3600, 0.05, "uniform", 0, 24, [2]float64{}), 3600, 0.12},
		{"poisson 60", poisson(60, 24, false), 0, 0},
		{"poisson 600", poisson(600, 24, false), 0, 0},
		{"poisson 3600", poisson(3600, 24, false), 0, 0},
		{"poisson 7200 72h", poisson(7200, 72, false), 0, 0},
		{"browse 90 day", poisson(90, 24, true), 0, 0},
		{"browse 1800 day", poisson(1800, 24, true), 0, 0},
	}
	minBeacon, maxRandom := 1.0, 0.0
	for _, c := range cases {
		var s string
		for seed := range 8 {
			r := rand.New(rand.NewSource(int64(seed)))
			res := Analyze(c.g(r))
			s += fmt.Sprintf(" [P=%.0f j=%.2f R=%.2f]", res.Period, res.Jitter, res.Regularity)
			if c.period > 0 {
				minBeacon = min(minBeacon, res.Regularity)
				if math.Abs(res.Period-c.period) > c.tol*c.period {
					t.Errorf("%s seed %d: period %.0f, want %.0f", c.name, seed, res.Period, c.period)
				}
			} else {
				maxRandom = max(maxRandom, res.Regularity)
			}
		}
		t.Logf("%-22s%s", c.name, s)
	}
	if minBeacon < 0.4 || maxRandom > 0.3 {
		t.Errorf("weakest beacon %.2f, most regular random series %.2f: want >= 0.4 and <= 0.3", minBeacon, maxRandom)
	}
}

// TestRuns: a long series known only by a sample of runs of consecutive
// events measures like the whole series, and a random one stays random
// (decimating a random series, by contrast, makes it look regular).
func TestRuns(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	var beacon, random []float64
	for x := 0.0; x < 72*3600; x += 30 * (1 + 0.5*(2*r.Float64()-1)) {
		beacon = append(beacon, x)
	}
	for x := 0.0; x < 72*3600; x += r.ExpFloat64() * 30 {
		random = append(random, x)
	}
	sample := func(ts []float64) [][]float64 {
		var runs [][]float64
		for i := 0; i+64 <= len(ts); i += 64 * 8 { // one run in eight
			runs = append(runs, append([]float64(nil), ts[i:i+64]...))
		}
		// Runs come in any order and are sorted inside.
		r.Shuffle(len(runs), func(i, j int) { runs[i], runs[j] = runs[j], runs[i] })
		slices.Reverse(runs[0])
		return runs
	}
	whole := Analyze(slices.Clone(beacon))
	part := AnalyzeRuns(sample(beacon))
	if math.Abs(part.Period-whole.Period) > 0.05*whole.Period || math.Abs(part.Regularity-whole.Regularity) > 0.05 {
		t.Errorf("runs: period %.1f regularity %.2f; whole series: %.1f %.2f", part.Period, part.Regularity, whole.Period, whole.Regularity)
	}
	if part.Span < 0.9*whole.Span || part.Events >= whole.Events/4 {
		t.Errorf("runs: span %.0f events %d; whole series %.0f %d", part.Span, part.Events, whole.Span, whole.Events)
	}
	if rr := AnalyzeRuns(sample(random)); rr.Regularity > 0.2 {
		t.Errorf("random series from runs: regularity %.2f", rr.Regularity)
	}
	var thinned []float64
	for i := 0; i < len(random); i += 64 {
		thinned = append(thinned, random[i])
	}
	// Why the model samples runs rather than every k-th event: a random
	// series thinned that way is a sum of k exponentials, which looks like
	// a jittered schedule.
	if th := Analyze(thinned); th.Regularity < 0.5 {
		t.Errorf("a decimated random series scores only %.2f: the premise of sampling runs no longer holds", th.Regularity)
	}
	if got := AnalyzeRuns(nil); got.Events != 0 || got.Period != 0 {
		t.Errorf("no runs: %+v", got)
	}
}

func TestEdgeCases(t *testing.T) {
	tests := []struct {
		name         string
		ts           []float64
		period       float64
		minR, maxR   float64
		events, gaps int
	}{
		{"too few", []float64{0, 60, 120}, 0, 0, 0, 3, 0},
		{"sub-second timestamps, fast beacon", []float64{0, 2.21, 4.39, 6.62, 8.80, 11.01, 13.19, 15.42, 17.6, 19.83}, 2.2, 0.7, 1, 10, 0},
		{"bursts of three are one check-in", []float64{0, 0.2, 0.4, 60, 60.1, 60.3, 120, 120.2, 180, 180.3, 240}, 60, 0.5, 1, 5, 0},
		{"sleep window is excused", []float64{0, 300, 600, 900, 1200, 1500, 30000, 30300, 30600, 30900, 31200}, 300, 0.7, 1, 11, 1},
		{"duplicate times", []float64{5, 5, 5, 5, 5}, 0, 0, 0, 1, 0},
		{"unsorted input", []float64{240, 0, 120, 60, 180, 300}, 60, 0.6, 1, 6, 0},
		{"four random events stay low", []float64{0, 17, 300, 1400}, 0, 0, 0.2, 4, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Analyze(tc.ts)
			if r.Events != tc.events || r.Gaps != tc.gaps {
				t.Errorf("events %d gaps %d, want %d %d", r.Events, r.Gaps, tc.events, tc.gaps)
			}
			if tc.period > 0 && math.Abs(r.Period-tc.period) > 0.05*tc.period {
				t.Errorf("period %.2f, want %.2f", r.Period, tc.period)
			}
			if r.Regularity < tc.minR || r.Regularity > tc.maxR {
				t.Errorf("regularity %.2f, want %.2f..%.2f (%+v)", r.Regularity, tc.minR, tc.maxR, r)
			}
		})
	}
}

func TestSizeRegularity(t *testing.T) {
	tests := []struct {
		xs       []float64
		min, max float64
	}{
		{[]float64{500, 500, 500, 500}, 1, 1},
		{[]float64{500, 510, 490, 505, 40000}, 0.95, 1}, // one tasking does not spoil it
		{[]float64{100, 5000, 300, 90000, 20, 7000}, 0, 0.1},
		{[]float64{7}, 0, 0},
		{[]float64{0, 0, 0}, 0, 0},
	}
	for _, tc := range tests {
		if got := SizeRegularity(tc.xs); got < tc.min || got > tc.max {
			t.Errorf("SizeRegularity(%v) = %.2f, want %.2f..%.2f", tc.xs, got, tc.min, tc.max)
		}
	}
}

func BenchmarkAnalyze(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	ts := make([]float64, 1440)
	x := 0.0
	for i := range ts {
		ts[i] = x
		x += 60 * (1 + 0.3*(2*r.Float64()-1))
	}
	buf := make([]float64, len(ts))
	b.ReportAllocs()
	for range b.N {
		copy(buf, ts)
		Analyze(buf)
	}
	b.ReportMetric(float64(len(ts)*b.N)/b.Elapsed().Seconds(), "events/s")
}

// FuzzAnalyze: any series, including non-finite and negative times, yields
// a result in range and never panics.
func FuzzAnalyze(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0x4e, 0x40, 0, 0, 0, 0, 0, 0, 0x5e, 0x40, 0, 0, 0, 0, 0, 0x80, 0x66, 0x40, 0, 0, 0, 0, 0, 0, 0x6e, 0x40}, uint8(2))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8}, uint8(1))
	// Twelve check-ins 5-15 s apart, then one near the largest float: the
	// shape measure's sums and windows must stay finite.
	var big []byte
	for _, x := range []float64{0, 5, 20, 26, 40, 47, 55, 66, 71, 84, 90, 101, 1e308} {
		big = binary.LittleEndian.AppendUint64(big, math.Float64bits(x))
	}
	f.Add(big, uint8(7))
	big = big[:0]
	for i := -17; i <= 17; i++ { // intervals whose sum overflows
		big = binary.LittleEndian.AppendUint64(big, math.Float64bits(float64(i)*1e307))
	}
	f.Add(big, uint8(7))
	f.Fuzz(func(t *testing.T, b []byte, split uint8) {
		var ts []float64
		for i := 0; i+8 <= len(b) && len(ts) < 4096; i += 8 {
			v := math.Float64frombits(uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
				uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56)
			ts = append(ts, v)
		}
		var runs [][]float64
		step := int(split%8) + 1
		for i := 0; i < len(ts); i += step {
			runs = append(runs, ts[i:min(i+step, len(ts))])
		}
		for _, r := range []Result{Analyze(slices.Clone(ts)), AnalyzeRuns(runs)} {
			if !(r.Regularity >= 0 && r.Regularity <= 1) || math.IsNaN(r.Span+r.Period+r.Jitter) || r.Jitter < 0 || r.Events < 0 || r.Events > len(ts) ||
				!(r.Bounded >= 0 && r.Bounded <= 1) || !(r.Persistence >= 0 && r.Persistence <= 1) || math.IsNaN(r.Spread+r.Tail) {
				t.Fatalf("out of range: %+v", r)
			}
		}
	})
}

// TestBounded: a schedule whose jitter hides the beat (uniform ±50-100%,
// the most C2 frameworks allow, with misses and a sleep window) has
// bounded intervals and a persistent series; unscheduled series (Poisson
// at any rate, bursts of clicks in sessions, heavy-tailed event traffic,
// office-hours browsing) have neither. Every jittered schedule scores above
// every unscheduled series, over many seeds.
func TestBounded(t *testing.T) {
	type gen func(r *rand.Rand) []float64
	jittered := func(d, j, miss, hours float64, sleep [2]float64) gen {
		return func(r *rand.Rand) []float64 {
			var ts []float64
			for x := 0.0; x < hours*3600; x += max(d*(1+j*(2*r.Float64()-1)), 0.02) {
				if h := x / 3600; !(h >= sleep[0] && h < sleep[1]) && r.Float64() >= miss {
					ts = append(ts, x)
				}
			}
			return ts
		}
	}
	poisson := func(mean, hours float64) gen {
		return func(r *rand.Rand) []float64 {
			var ts []float64
			for x := 0.0; x < hours*3600; x += r.ExpFloat64() * mean {
				ts = append(ts, x)
			}
			return ts
		}
	}
	// Sessions: a person clicks (Poisson, mean click) for a few minutes,
	// then is away (exponential pauses, mean away).
	sessions := func(click, away, hours float64) gen {
		return func(r *rand.Rand) []float64 {
			var ts []float64
			for x := 0.0; x < hours*3600; {
				end := x + 60 + r.ExpFloat64()*600
				for ; x < end; x += r.ExpFloat64() * click {
					ts = append(ts, x)
				}
				x += r.ExpFloat64() * away
			}
			return ts
		}
	}
	// Heavy-tailed event traffic: log-normal intervals (sigma 1.2).
	lognormal := func(median, hours float64) gen {
		return func(r *rand.Rand) []float64 {
			var ts []float64
			for x := 0.0; x < hours*3600; x += median * math.Exp(1.2*r.NormFloat64()) {
				ts = append(ts, x)
			}
			return ts
		}
	}
	office := func(mean, hours float64) gen {
		return func(r *rand.Rand) []float64 {
			var ts []float64
			for x := 0.0; x < hours*3600; x += r.ExpFloat64() * mean {
				if h := int(x/3600) % 24; h >= 8 && h < 19 {
					ts = append(ts, x)
				}
			}
			return ts
		}
	}
	none := [2]float64{}
	cases := []struct {
		name      string
		g         gen
		scheduled bool
	}{
		{"empire 5s ±100% 15m", jittered(5, 1, 0, 0.25, none), true},
		{"10s ±100% 2h", jittered(10, 1, 0, 2, none), true},
		{"60s ±75% 6h miss10", jittered(60, 0.75, 0.1, 6, none), true},
		{"5m ±100% 24h", jittered(300, 1, 0, 24, none), true},
		{"5m ±50% 24h miss20", jittered(300, 0.5, 0.2, 24, none), true},
		{"15m ±90% 72h sleep", jittered(900, 0.9, 0.05, 72, [2]float64{20, 28}), true},
		{"1h ±100% 72h", jittered(3600, 1, 0, 72, none), true},
		{"poisson 5s 15m", poisson(5, 0.25), false},
		{"poisson 60s 15m", poisson(60, 0.25), false},
		{"poisson 20s 10m", poisson(20, 1.0/6), false},
		{"poisson 60s 6h", poisson(60, 6), false},
		{"poisson 10m 24h", poisson(600, 24), false},
		{"poisson 1h 72h", poisson(3600, 72), false},
		{"sessions 8s/1h 24h", sessions(8, 3600, 24), false},
		{"sessions 30s/20m 12h", sessions(30, 1200, 12), false},
		{"lognormal 20s 6h", lognormal(20, 6), false},
		{"lognormal 5m 48h", lognormal(300, 48), false},
		{"office 90s 48h", office(90, 48), false},
	}
	minSched, maxRandom, maxRandomLong := 1.0, 0.0, 0.0
	for _, c := range cases {
		var s string
		top := 0.0
		for seed := range 20 {
			res := Analyze(c.g(rand.New(rand.NewSource(int64(seed)))))
			top = max(top, res.Bounded)
			if seed < 4 {
				s += fmt.Sprintf(" [cv=%.2f tail=%.2f pers=%.2f B=%.2f]", res.Spread, res.Tail, res.Persistence, res.Bounded)
			}
			switch {
			case c.scheduled:
				minSched = min(minSched, res.Bounded)
			case res.Events >= 100:
				maxRandomLong = max(maxRandomLong, res.Bounded)
			default:
				maxRandom = max(maxRandom, res.Bounded)
			}
		}
		t.Logf("%-22s max %.2f%s", c.name, top, s)
	}
	// A few random events can look bounded by chance: short series stay
	// below what hunt takes for a schedule (0.25), long ones near 0.
	if minSched < 0.5 || maxRandom >= 0.25 || maxRandomLong > 0.1 {
		t.Errorf("weakest jittered schedule %.2f, most bounded random series %.2f (short) and %.2f (100 events or more): want >= 0.5, < 0.25, <= 0.1",
			minSched, maxRandom, maxRandomLong)
	}
}
