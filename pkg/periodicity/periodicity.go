// Package periodicity measures how regularly a series of events (the start
// times of a channel's connections) repeats, in a way that survives what
// beacons do to hide: jitter of up to ±50% of the period (uniform, normal
// or exponential), missed check-ins (intervals of 2-4 periods), sleep
// windows and off-hours (long gaps), and sub-second timestamps.
//
// The estimate works on intervals between consecutive events, not on the
// phase of each event, because a beacon sleeps for a jittered time after
// each check-in: its phase drifts like a random walk, so phase coherence
// over hours is lost while every interval stays close to the period.
//
//   - Events closer than a merge window are one check-in (a beacon may open
//     several connections at once).
//   - The period is found near the mode of the intervals: start from their
//     median, take three times the median of the intervals within
//     [P/2, 3P/2), then the mean of those within [P/2, 2P) (the mode of a
//     skewed jitter lies below its mean).
//   - Each interval is then on-beat ([P/2, 3P/2)), short (< P/2: an event
//     the period does not explain), a multiple (a missed check-in: 1.5-4.5
//     periods, credited when close to a whole number of periods) or a gap
//     (longer: sleep windows and nights, neither credit nor blame, unless
//     they are many).
//   - Jitter is twice the median absolute deviation of on-beat intervals
//     over the period: ±0.2 for a uniform ±20% jitter.
//   - Regularity is the share of intervals the period explains, sharpened
//     by jitter, and pulled towards what an unscheduled (Poisson) series
//     scores when there are few intervals, so that four lucky events do not
//     look like a beacon.
//   - Bounded is evidence of a schedule from the shape of the intervals
//     rather than their beat, for jitter too wide for a beat (±50-100%:
//     intervals anywhere from nearly 0 to twice the delay): the intervals
//     are bounded (coefficient of variation at most ~0.6, none much beyond
//     twice the median, where a Poisson series has 1 and a fifth of its
//     intervals there, and human traffic more), and the series is
//     persistent (a check-in in nearly every window of a few intervals
//     over its span, where bursts of activity leave most windows empty).
package periodicity

import (
	"math"
	"slices"
)

// Result describes one series.
type Result struct {
	Events     int     // check-ins after merging
	Period     float64 // seconds; 0 when there are too few events
	Jitter     float64 // relative spread of on-beat intervals (±fraction of the period)
	Regularity float64 // 0 (no schedule) to 1 (clockwork), adjusted for the number of intervals
	Fit        float64 // share of intervals (long gaps aside) that the period explains
	Short      float64 // share of intervals shorter than half the period
	Missed     int     // check-ins missing inside multiples of the period
	Gaps       int     // intervals longer than 4.5 periods (sleep, nights)
	Span       float64 // seconds from the first to the last event

	// Shape of the intervals, for schedules whose jitter hides the beat
	// (set from MinBoundedIntervals intervals on).
	Spread      float64 // coefficient of variation of the intervals, long pauses aside
	Tail        float64 // share of those intervals longer than TailFactor times the median
	Lo, Hi      float64 // shortest and longest of those intervals, seconds
	Persistence float64 // share of BinSec windows over the series' stretches with a check-in
	BinSec      float64 // window width: a minute, 5 or 15 minutes, an hour, 6 hours or a day
	// Bounded is the schedule evidence from that shape (0-1): bounded
	// intervals, a persistent series, pulled towards 0 for few intervals.
	Bounded float64
}

// Bounded-jitter shape. Uniform jitter of ±f around a delay D has a
// coefficient of variation of f/√3 (0.58 at ±100%) and no interval beyond
// (1+f)·D, twice the median at most; a Poisson series has a coefficient
// of variation of 1 (about 0.9 once check-ins closer than the merge
// window are one) and 18% of its intervals beyond 2.5 medians; bursty
// human or event traffic has more of both. Evidence is full up to
// spreadFull and gone from spreadNone; a tail share of tailNone clears it.
const (
	MinBoundedIntervals = 10
	TailFactor          = 2.5
	spreadFull          = 0.6
	spreadNone          = 0.8
	// Missed check-ins put a few intervals of a jittered schedule in the
	// tail (two sleeps in one): up to tailFull is no sign against it.
	tailFull = 0.03
	tailNone = 0.1
	// An interval longer than gapFactor medians is a pause (as for the
	// beat); at most one in pauseShare of them (or 2) is excused.
	gapFactor  = 4.5
	pauseShare = 32
	// A schedule is active in nearly every window of a few intervals:
	// windows at least binFactor medians wide (a bounded series leaves
	// none empty); persistence from persistNone to persistFull.
	binFactor    = 3
	persistNone  = 0.5
	persistFull  = 0.9
	persistPrior = 4.0
	boundedPrior = 16.0 // intervals' worth of pull towards no evidence
)

// MinEvents is the fewest check-ins a period is estimated from.
const MinEvents = 4

// MinPeriod is the shortest period, in seconds, taken for a schedule:
// series faster than that are bursts of parallel connections or a stream,
// which no implant sleeps between (and a period printed as 0.0s says
// nothing to an analyst).
const MinPeriod = 0.5

// Random-series baseline: a Poisson series scores about this much raw
// regularity; few intervals are pulled towards it with this weight.
const (
	baseline    = 0.15
	priorWeight = 4.0
)

// Analyze measures the series of event times ts (seconds, any order; the
// slice is sorted in place).
func Analyze(ts []float64) Result {
	return AnalyzeRuns([][]float64{ts})
}

// AnalyzeRuns measures a series known only as runs of consecutive events
// (a bounded sample of a long series: each run is a stretch of the series
// without holes, the runs themselves may come from anywhere in it). Only
// intervals inside a run are measured; Events counts the events of all
// runs; Span is from the earliest to the latest event. Each run is sorted
// in place.
func AnalyzeRuns(runs [][]float64) Result {
	var res Result
	lo, hi := math.Inf(1), math.Inf(-1)
	var d []float64
	for i, ts := range runs {
		// Times that are not numbers cannot be placed: drop them.
		ts = slices.DeleteFunc(ts, func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) })
		runs[i] = ts
		if len(ts) == 0 {
			continue
		}
		slices.Sort(ts)
		lo, hi = min(lo, ts[0]), max(hi, ts[len(ts)-1])
		for i := 1; i < len(ts); i++ {
			if x := ts[i] - ts[i-1]; x > 0 {
				d = append(d, x)
			}
		}
	}
	if math.IsInf(lo, 1) {
		return res
	}
	res.Span = hi - lo
	// Merge window: one second, or a tenth of the upper-quartile interval
	// for fast series (the upper quartile stays between check-ins when
	// each check-in is a burst of connections).
	win := 1.0
	if len(d) > 0 {
		s := slices.Clone(d)
		slices.Sort(s)
		win = min(win, s[len(s)*3/4]/10)
	}
	d = d[:0]
	events := 0
	for _, ts := range runs {
		if len(ts) == 0 {
			continue
		}
		last := ts[0]
		events++
		for _, t := range ts[1:] {
			if t-last <= win {
				continue
			}
			d = append(d, t-last)
			last = t
			events++
		}
	}
	res.Events = events
	if events < MinEvents || len(d) < MinEvents-1 {
		return res
	}
	sorted := slices.Clone(d)
	slices.Sort(sorted)
	bounded(sorted, runs, &res)
	return analyzeIntervals(d, sorted, res)
}

// bounded measures the shape of the (merged, sorted) intervals and the
// persistence of the series over its runs of raw event times.
func bounded(sorted []float64, runs [][]float64, res *Result) {
	n := len(sorted)
	if n < MinBoundedIntervals {
		return
	}
	med := medianSorted(sorted)
	if med < MinPeriod {
		return
	}
	// A few long pauses (sleep windows, nights, an implant busy with a
	// task) are excused, as for the beat, but fewer than there: a Poisson
	// series has 4% of its intervals beyond 4.5 medians, so most of its
	// tail stays in view; a series made of pauses is judged with them.
	kept := sorted
	for excused := 0; excused < max(2, n/pauseShare) && kept[len(kept)-1] > gapFactor*med; excused++ {
		kept = kept[:len(kept)-1]
	}
	var sum, sq float64
	tail := 0
	for _, x := range kept {
		sum += x
		if x > TailFactor*med {
			tail++
		}
	}
	mean := sum / float64(len(kept))
	for _, x := range kept {
		sq += (x - mean) * (x - mean)
	}
	spread := math.Sqrt(sq/float64(len(kept))) / mean
	if math.IsNaN(spread) || math.IsInf(spread, 0) {
		return // intervals near the largest float: no shape to measure
	}
	res.Spread = spread
	res.Tail = float64(tail) / float64(len(kept))
	res.Lo, res.Hi = kept[0], kept[len(kept)-1]

	// Windows are counted in floats: times are whatever the input says.
	w := binWidth(binFactor * med)
	var active, total float64
	for _, ts := range runs {
		if len(ts) == 0 {
			continue
		}
		start := ts[0]
		total += math.Floor((ts[len(ts)-1]-start)/w) + 1
		last := -1.0
		for _, t := range ts {
			if b := math.Floor((t - start) / w); b != last {
				active++
				last = b
			}
		}
	}
	if !(total >= 1) || math.IsInf(total, 0) {
		return
	}
	res.BinSec = w
	res.Persistence = active / total
	// A span of few windows says little about persistence: their share is
	// pulled towards persistNone (no evidence) by persistPrior windows.
	pers := (active + persistNone*persistPrior) / (total + persistPrior)

	shape := clamp01((spreadNone-res.Spread)/(spreadNone-spreadFull)) *
		clamp01((tailNone-res.Tail)/(tailNone-tailFull)) *
		clamp01((pers-persistNone)/(persistFull-persistNone))
	res.Bounded = shape * float64(n) / (float64(n) + boundedPrior)
}

// binWidth rounds a window up to a unit people read: a minute up to a
// day, or whole days.
func binWidth(s float64) float64 {
	for _, u := range []float64{60, 120, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400} {
		if s <= u {
			return u
		}
	}
	return 86400 * math.Ceil(s/86400)
}

func clamp01(x float64) float64 { return math.Max(0, math.Min(1, x)) }

func analyzeIntervals(d, sorted []float64, res Result) Result {
	p := medianSorted(sorted)
	for range 3 {
		lo, _ := slices.BinarySearch(sorted, p/2)
		hi, _ := slices.BinarySearch(sorted, p*1.5)
		if hi-lo < 1 {
			break
		}
		p = medianSorted(sorted[lo:hi])
	}
	// The mean of the intervals near the mode is the period for skewed
	// (exponential) jitter too, whose mode sits below it.
	lo, _ := slices.BinarySearch(sorted, p/2)
	hi, _ := slices.BinarySearch(sorted, p*2)
	if hi > lo {
		sum := 0.0
		for _, x := range sorted[lo:hi] {
			sum += x
		}
		p = sum / float64(hi-lo)
	}
	if p < MinPeriod {
		return res
	}
	res.Period = p
	var on, short, multiNear, multiFar, gaps int
	dev := make([]float64, 0, len(d))
	for _, x := range d {
		r := x / p
		switch {
		case r < 0.5:
			short++
		case r < 1.5:
			on++
			dev = append(dev, math.Abs(r-1))
		case r < 4.5:
			k := math.Round(r)
			// A missed beat: sum of k jittered intervals, spread ~sqrt(k).
			if math.Abs(r-k) <= 0.25*math.Sqrt(k) {
				multiNear++
				res.Missed += int(k) - 1
			} else {
				multiFar++
			}
		default:
			gaps++
		}
	}
	res.Gaps = gaps
	n := len(d)
	// A few long gaps are sleep windows; a series made of gaps is not regular.
	excused := min(gaps, max(2, n/8))
	denom := float64(n - excused)
	if denom <= 0 {
		return res
	}
	res.Short = float64(short) / float64(n)
	fit := (float64(on) + 0.5*float64(multiNear)) / denom
	res.Fit = fit
	if len(dev) > 0 {
		res.Jitter = 2 * median(dev)
	}
	// Sharpness: ±50% jitter keeps 80% of the credit, clockwork all of it.
	// Regularity says how sure we are that a schedule exists, not how
	// precise the schedule is: C2 frameworks add jitter on purpose, so
	// precision is no sign of guilt; short intervals (below) are what a
	// random series has and a jittered beacon has not.
	sharp := 1 - 0.2*math.Min(res.Jitter/0.5, 1)
	// Short intervals are what tells a random series from a heavily
	// jittered beacon: a beacon sleeps at least half its period, a Poisson
	// series does not.
	raw := fit * fit * sharp * (1 - res.Short) * (1 - res.Short)
	res.Regularity = (raw*denom + baseline*priorWeight) / (denom + priorWeight)
	if raw < baseline { // shrinking must not lift an irregular series
		res.Regularity = raw
	}
	return res
}

// SizeRegularity is 1 minus a robust coefficient of variation of xs
// (median absolute deviation over median), in [0, 1]: 1 for constant
// sizes, near 0 for sizes spread over orders of magnitude.
func SizeRegularity(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	s := slices.Clone(xs)
	m := median(s)
	if m <= 0 {
		return 0
	}
	for i, x := range xs {
		s[i] = math.Abs(x - m)
	}
	cv := 1.4826 * median(s) / m
	return math.Max(0, 1-cv)
}

func median(x []float64) float64 {
	slices.Sort(x)
	return medianSorted(x)
}

func medianSorted(x []float64) float64 {
	n := len(x)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return x[n/2]
	}
	return (x[n/2-1] + x[n/2]) / 2
}
