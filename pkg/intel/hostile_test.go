package intel

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// indicatorJSON is one STIX indicator with the pattern given (escaped
// for JSON by the caller when needed) and extra properties.
func indicatorJSON(i int, pattern, extra string) string {
	return fmt.Sprintf(`{"type": "indicator", "spec_version": "2.1", "id": "indicator--00000000-0000-4000-8000-%012d",
 "created": "2026-02-20T08:00:00.000Z", "modified": "2026-02-20T08:00:00.000Z", "pattern_type": "stix",
 "valid_from": "2026-01-01T00:00:00Z", "pattern": %q%s}`, i, pattern, extra)
}

// endlessString streams a bundle whose second object holds a string of n
// bytes, without building it.
type endlessString struct {
	head, tail string
	n          int64
	off        int64
}

func (e *endlessString) Read(p []byte) (int, error) {
	total := int64(len(e.head)) + e.n + int64(len(e.tail))
	if e.off >= total {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && e.off < total {
		switch {
		case e.off < int64(len(e.head)):
			p[k] = e.head[e.off]
		case e.off < int64(len(e.head))+e.n:
			p[k] = 'a'
		default:
			p[k] = e.tail[e.off-int64(len(e.head))-e.n]
		}
		k++
		e.off++
	}
	return k, nil
}

// TestHostileBundles: a feed is input from outside; each of these ends
// in bounded memory and time with a named problem, keeping what could be
// read.
func TestHostileBundles(t *testing.T) {
	good := indicatorJSON(1, "[domain-name:value = 'c2.example']", "")
	bomb := "[domain-name:value MATCHES '" + strings.Repeat("(?:x|y)?", 30000) + "z']"
	var many []string
	costly := "^" + strings.Repeat("[a-z]", 900) + "%d$"
	_, each, err := compileRegexp(fmt.Sprintf(costly, 100))
	if err != nil || each < 900 {
		t.Fatalf("%d instructions, %v", each, err)
	}
	for i := range 150 {
		many = append(many, indicatorJSON(10+i, "[domain-name:value MATCHES '"+fmt.Sprintf(costly, 100+i)+"']", ""))
	}
	tests := []struct {
		name    string
		in      func() io.Reader
		problem string
		kept    int // indicators evaluated
	}{
		{"an object of 256 MiB", func() io.Reader {
			return &endlessString{head: `{"type": "bundle", "id": "bundle--1", "objects": [` + good + `, {"type": "indicator", "description": "`,
				n: 256 << 20, tail: `"}]}`}
		}, "larger than 4 MiB", 1},
		{"a bundle member of 256 MiB", func() io.Reader {
			return &endlessString{head: `{"type": "bundle", "x_note": "`, n: 256 << 20, tail: `", "objects": [` + good + `]}`}
		}, "larger than 4 MiB", 0},
		{"deep nesting", func() io.Reader {
			return strings.NewReader(`{"type": "bundle", "objects": [` + good + `, ` + strings.Repeat("[", 200000) + strings.Repeat("]", 200000) + `]}`)
		}, "not JSON", 1},
		{"a MATCHES of 60,000 instructions", func() io.Reader {
			return strings.NewReader(`{"type": "bundle", "objects": [` + good + `, ` + indicatorJSON(2, bomb, "") + `]}`)
		}, "too costly", 1},
		{"many costly expressions", func() io.Reader {
			return strings.NewReader(`{"type": "bundle", "objects": [` + good + `, ` + strings.Join(many, ",") + `]}`)
		}, "past the 100000 instructions", 1 + maxSetRegexInsts/each},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			r := NewReader()
			r.Read(tc.in(), "feed.json")
			s := r.Finish()
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 96<<20 {
				t.Errorf("allocated %d MiB", alloc>>20)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v", d)
			}
			found := false
			for _, p := range s.Problems {
				found = found || strings.Contains(p.String(), tc.problem)
			}
			if !found {
				t.Errorf("problems %.300v, want one saying %q", s.Problems, tc.problem)
			}
			if len(s.Indicators) != tc.kept {
				t.Errorf("%d indicators kept, want %d", len(s.Indicators), tc.kept)
			}
			var insts int
			for _, ind := range s.Indicators {
				for i := range ind.alts {
					insts += ind.alts[i].regexInsts()
				}
			}
			if insts > maxSetRegexInsts {
				t.Errorf("%d regular expression instructions kept", insts)
			}
		})
	}
}
