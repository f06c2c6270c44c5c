package hunt

// DNS and ICMP findings (covert channels judged apart from the channels)
// are scored and closed alike.

// covertScore turns the evidence e of a DNS or ICMP finding into its
// score: rarity among the inside hosts (fleet software is popular), high
// at most without corroboration, as a channel is, and, when there are too
// few hosts to tell fleet software from an implant (w < 1), held towards
// singleCap. own is the evidence that stands by itself (a tunnel's
// volume; 0 when none): it counts as its own rarity and lifts the cap.
func covertScore(e float64, hosts int, scaleN, w, own, singleCap float64) float64 {
	r := rarity(hosts, scaleN)
	ru := w*r + (1-w)*0.5
	if own > 0 {
		ru = max(ru, own*r)
	}
	score := min(e*(0.3+0.7*ru), uncorroborated)
	if w < 1 && own == 0 {
		score = min(score, singleCap*(1-w)+score*w)
	}
	return score
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
