package hunt

import (
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/nwhealth/nwhealth/pkg/periodicity"
)

// runs returns a channel's check-in times in seconds after base: one series
// while every event is kept, else the sampled runs of consecutive events.
// A run is split where a hole lies (bursts a connection's record dropped):
// no interval is measured across it.
func (c *channel) runs(base int64) [][]float64 {
	var rs [][]float64
	add := func(es []event) {
		ts := make([]int64, len(es))
		for i, e := range es {
			ts[i] = e.t
		}
		slices.Sort(ts)
		start := 0
		for i := 1; i <= len(ts); i++ {
			if i < len(ts) && !c.acrossHole(ts[i-1], ts[i]) {
				continue
			}
			out := make([]float64, i-start)
			for j, t := range ts[start:i] {
				out[j] = float64(t-base) / 1e9
			}
			rs = append(rs, out)
			start = i
		}
	}
	if !c.sampled() {
		add(c.events)
		return rs
	}
	for i := 0; i+runLen <= len(c.events); i += runLen {
		add(c.events[i : i+runLen])
	}
	if len(c.cur) > 1 {
		add(c.cur)
	}
	return rs
}

// acrossHole reports whether the interval from a to b spans a hole.
func (c *channel) acrossHole(a, b int64) bool {
	for _, h := range c.holes {
		if a <= h[0] && b >= h[1] {
			return true
		}
	}
	return false
}

// sample returns the stored events (all of them, or the sampled runs).
func (c *channel) sample() []event {
	if len(c.cur) == 0 {
		return c.events
	}
	return append(slices.Clip(c.events), c.cur...)
}

// sized returns the events that carry sizes: connection starts, not the
// bursts inside connections.
func sized(es []event) []event {
	out := make([]event, 0, len(es))
	for _, e := range es {
		if e.sized() {
			out = append(out, e)
		}
	}
	return out
}

// taskingEv describes occasional large transfers on a channel whose
// messages are otherwise small and steady: a controller handing out work
// (or an implant sending results) on an idle check-in channel.
type taskingEv struct {
	bursts   int     // check-ins that carried a large transfer (in the sample)
	n        int     // check-ins in the sample
	base     float64 // median bytes of the other check-ins (the larger direction)
	big      float64 // median bytes of the bursts
	steady   float64 // size regularity of the other check-ins
	evidence float64 // 0-1
}

// Tasking thresholds: a burst is larger than burstFactor times the median
// and at least burstMin bytes more; bursts must stay occasional (at most
// burstShare of the check-ins) on a channel that is steady otherwise.
const (
	burstFactor = 4
	burstMin    = 2048
	burstShare  = 0.25
)

func tasking(es []event) taskingEv {
	var t taskingEv
	t.n = len(es)
	if t.n < periodicity.MinEvents {
		return t
	}
	ob := make([]float64, len(es))
	rb := make([]float64, len(es))
	for i, e := range es {
		ob[i], rb[i] = float64(e.obytes), float64(e.resp)
	}
	medO, medR := medianOf(ob), medianOf(rb)
	var base, big []float64
	for i := range es {
		o, r := ob[i], rb[i]
		if o > burstFactor*medO && o > medO+burstMin || r > burstFactor*medR && r > medR+burstMin {
			t.bursts++
			big = append(big, o+r)
		} else {
			base = append(base, o+r)
		}
	}
	if len(base) < periodicity.MinEvents {
		return t
	}
	t.base, t.steady = medianOf(base), periodicity.SizeRegularity(base)
	if t.bursts == 0 || float64(t.bursts) > burstShare*float64(t.n) {
		return t
	}
	t.big = medianOf(big)
	// Two or three tasks make the pattern; one might be chance.
	t.evidence = (1 - math.Exp(-float64(t.bursts)/2)) * clamp01((t.steady-0.5)/0.3)
	return t
}

func medianOf(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// quietHours returns, per hour of day, whether the host is quiet then (its
// destinations per clock hour at most a quarter of its busiest hour's) and
// whether the data covers that hour at all. A host without a daily rhythm
// (a server) has no quiet hours.
func (m *Model) quietHours(h *host) (quiet uint32) {
	cover := m.hourCoverage()
	var rate [24]float64
	peak := 0.0
	for i := range 24 {
		if cover[i] > 0 {
			rate[i] = float64(h.hourDsts[i]) / float64(cover[i])
			peak = max(peak, rate[i])
		}
	}
	if peak == 0 {
		return 0
	}
	for i := range 24 {
		if cover[i] > 0 && rate[i] <= 0.25*peak {
			quiet |= 1 << i
		}
	}
	return quiet
}

// hourCoverage counts, per hour of day, the clock hours the data spans.
func (m *Model) hourCoverage() (cover [24]int) {
	first, last := m.first/int64(time.Hour), m.last/int64(time.Hour)
	if last-first >= 24*7 {
		for i := range cover {
			cover[i] = int((last - first) / 24)
		}
		return cover
	}
	for x := first; x <= last; x++ {
		cover[hourOfDay(x*int64(time.Hour))]++
	}
	return cover
}

// spanHours is the hour-of-day bitmap of the clock hours from first to last.
func spanHours(first, last int64) uint32 {
	a, b := first/int64(time.Hour), last/int64(time.Hour)
	if b-a >= 23 {
		return 1<<24 - 1
	}
	var m uint32
	for x := a; x <= b; x++ {
		m |= 1 << hourOfDay(x*int64(time.Hour))
	}
	return m
}

// diurnal measures whether a channel keeps to its host's waking hours: the
// share of the host's quiet hours (within the channel's span) in which the
// channel checked in. -1 when it cannot tell (no quiet hours in reach).
// Beacons keep running when the person at the machine stops; a periodic
// page a person keeps open does not.
func diurnal(chHours, quiet, span uint32) (share float64, inQuiet, quietN int) {
	q := quiet & span
	quietN = bits.OnesCount32(q)
	if quietN < 3 {
		return -1, 0, quietN
	}
	inQuiet = bits.OnesCount32(chHours & q)
	return float64(inQuiet) / float64(quietN), inQuiet, quietN
}
