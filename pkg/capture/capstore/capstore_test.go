package capstore

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// TestSetRuntime: capture's scheduler threads and GOGC, unless the
// environment sets them (the cost harness relies on it to run as capture
// does).
func TestSetRuntime(t *testing.T) {
	procs0 := runtime.GOMAXPROCS(0)
	gc0 := debug.SetGCPercent(100)
	t.Cleanup(func() {
		runtime.GOMAXPROCS(procs0)
		debug.SetGCPercent(gc0)
	})
	for _, tc := range []struct {
		name            string
		maxprocs, gogc  string
		workers         int
		wantProcs, want int
	}{
		{"capture's", "", "", 3, 3, GCPercent},
		{"one worker", "", "", 1, 1, GCPercent},
		{"GOMAXPROCS set", "5", "", 2, 5, GCPercent},
		{"GOGC set", "", "200", 2, 2, 200},
		{"both set", "4", "150", 1, 4, 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tc.maxprocs)
			t.Setenv("GOGC", tc.gogc)
			// What the runtime took from the variables at start-up.
			runtime.GOMAXPROCS(tc.wantProcs)
			debug.SetGCPercent(tc.want)
			if tc.maxprocs == "" {
				runtime.GOMAXPROCS(7)
			}
			if tc.gogc == "" {
				debug.SetGCPercent(100)
			}
			SetRuntime(tc.workers)
			if got := runtime.GOMAXPROCS(0); got != tc.wantProcs {
				t.Errorf("GOMAXPROCS %d, want %d", got, tc.wantProcs)
			}
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Errorf("GOGC %d, want %d", got, tc.want)
			}
		})
	}
}
