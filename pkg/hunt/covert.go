package hunt

import (
	"math"
	"slices"

	"github.com/nwhealth/nwhealth/pkg/periodicity"
)

// DNS and ICMP findings (covert channels judged apart from the channels)
// are scored and closed alike.

// covertScore turns the evidence e of a DNS or ICMP finding into its
// score: rarity among the inside hosts (fleet software is popular), high
// at most without corroboration, as a channel is, and, when there are too
// few hosts to tell fleet software from an implant (w < 1), held towards
// singleCap. own is the evidence that stands by itself (a tunnel's
// volume; 0 when none): it counts as its own rarity and lifts the cap.
// strength is the score before either cap, which orders findings held at
// one.
func covertScore(e float64, hosts int, scaleN, w, own, singleCap float64) (score, strength float64) {
	r := rarity(hosts, scaleN)
	ru := w*r + (1-w)*0.5
	if own > 0 {
		ru = max(ru, own*r)
	}
	strength = e * (0.3 + 0.7*ru)
	score = min(strength, uncorroborated)
	if w < 1 && own == 0 {
		score = min(score, singleCap*(1-w)+score*w)
	}
	return score, strength
}

// closeCovert gives a DNS or ICMP finding its reasons, strongest first and
// the population's last, and its techniques: technique, and T1572 when
// the volume says tunnel.
func closeCovert(f *Finding, whys []why, pop, fleet string, w float64, technique string, tunnel bool) {
	f.Reasons = append(f.Reasons, strongestFirst(whys)...)
	if w < 1 {
		pop += " (too few hosts to tell " + fleet + " from an implant)"
	}
	f.Reasons = append(f.Reasons, pop)
	f.Attack = []string{technique}
	if tunnel {
		f.Attack = append(f.Attack, "T1572")
	}
}

// covertSchedule measures the schedule of a DNS or ICMP finding's events
// (nanosecond times): how sure a beat or a bounded jittered shape is,
// pulled towards none for few events, and the period; zero for fewer
// events than a schedule needs or a span too short.
func (m *Model) covertSchedule(times []int64) (schedule, period float64) {
	if len(times) < periodicity.MinEvents {
		return 0, 0
	}
	ts := make([]float64, len(times))
	for i, t := range times {
		ts[i] = float64(t-m.first) / 1e9
	}
	slices.Sort(ts)
	per := periodicity.Analyze(ts)
	if per.Span < minSpan.Seconds() {
		return 0, 0
	}
	if reg := max(per.Regularity, per.Bounded); reg > beaconCut {
		schedule = (1 - math.Exp(-(reg-beaconCut)/beaconScale)) * (1 - math.Exp(-float64(max(per.Events-3, 0))/6))
	}
	return schedule, per.Period
}
