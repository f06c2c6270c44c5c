package ringtest

import (
	"testing"
	"time"
)

func TestFloodTimeJitter(t *testing.T) {
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		gap, jitter time.Duration
		wantSpread  bool // offsets take more than one value
	}{
		{"even", 500 * time.Nanosecond, 0, false},
		{"live-like", 1700 * time.Nanosecond, 40 * time.Nanosecond, true},
		{"jitter equal to gap", 500 * time.Nanosecond, 500 * time.Nanosecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFlood(0, 64, start)
			f.Gap, f.Jitter = tc.gap, tc.jitter
			again := NewFlood(0, 64, start)
			again.Gap, again.Jitter = tc.gap, tc.jitter
			seen := map[time.Duration]bool{}
			prev := f.Time(0)
			for i := uint64(0); i < 100_000; i++ {
				ts := f.Time(i)
				off := ts.Sub(start.Add(time.Duration(i) * tc.gap))
				if off < 0 || (tc.jitter > 0 && off >= tc.jitter) || (tc.jitter == 0 && off != 0) {
					t.Fatalf("frame %d: offset %v outside [0, %v)", i, off, tc.jitter)
				}
				if ts.Before(prev) {
					t.Fatalf("frame %d: %v before frame %d's %v", i, ts, i-1, prev)
				}
				if !again.Time(i).Equal(ts) {
					t.Fatalf("frame %d: time %v, then %v", i, ts, again.Time(i))
				}
				seen[off] = true
				prev = ts
			}
			if tc.wantSpread && len(seen) < int(tc.jitter/time.Nanosecond)/2 {
				t.Errorf("%d distinct offsets below %v, want most of them", len(seen), tc.jitter)
			}
			if !tc.wantSpread && len(seen) != 1 {
				t.Errorf("%d distinct offsets, want 1", len(seen))
			}
		})
	}
}
