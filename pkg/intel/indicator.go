package intel

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/hunt"
)

// Indicator is one indicator we can evaluate: a STIX indicator object (its
// pattern compiled) or a line of a plain list.
type Indicator struct {
	ID          string // the STIX id; "" for a list entry
	Name        string
	Description string
	Pattern     string // as written (a list entry: its value)
	Source      string // file it came from
	Pos         string // where in the file: "object 3", "line 12"
	ValidFrom   time.Time
	ValidUntil  time.Time // zero: no end
	Types       []string  // indicator_types
	Confidence  int       // 0-100; -1 when not given
	KillChain   []string  // mitre-attack phase names from kill_chain_phases
	CreatedBy   string    // created_by_ref: the partner's identity

	alts []conj
}

// STIX reports whether the indicator came from a STIX bundle (and so can
// be sighted by id).
func (ind *Indicator) STIX() bool { return ind.ID != "" }

// Ref names the indicator: its STIX id, or file:line for a list entry.
func (ind *Indicator) Ref() string {
	if ind.ID != "" {
		return ind.ID
	}
	return ind.Source + ":" + strings.TrimPrefix(ind.Pos, "line ")
}

// Label is its name, or its pattern when it has none.
func (ind *Indicator) Label() string {
	if ind.Name != "" {
		return ind.Name
	}
	return ind.Pattern
}

// ValidAt reports whether the indicator is valid for traffic between
// first and last: valid_from <= last and first < valid_until.
func (ind *Indicator) ValidAt(first, last time.Time) bool {
	if !ind.ValidFrom.IsZero() && last.Before(ind.ValidFrom) {
		return false
	}
	return ind.ValidUntil.IsZero() || first.Before(ind.ValidUntil)
}

// Severity grades a match of the indicator: from its confidence when the
// producer gave one (STIX's 0-100 scale, read as the None/Low/Med/High
// bands of its appendix), else from its types: benign is information,
// anomalous activity medium, anything else (malicious activity,
// compromised, attribution, plain lists) high.
func (ind *Indicator) Severity() hunt.Severity {
	if slices.Contains(ind.Types, "benign") {
		return hunt.Info
	}
	switch {
	case ind.Confidence < 0:
	case ind.Confidence == 0:
		return hunt.Info
	case ind.Confidence < 30:
		return hunt.Low
	case ind.Confidence < 70:
		return hunt.Medium
	default:
		return hunt.High
	}
	if len(ind.Types) > 0 && !slices.ContainsFunc(ind.Types, func(t string) bool { return t != "anomalous-activity" && t != "unknown" }) {
		return hunt.Medium
	}
	return hunt.High
}

// URLsObserved says whether the flow records matched carry request URLs.
// Flow format 2 keeps the first HTTP/1 request target of each connection
// (docs/format/flows.md); a source without URLs would set this false so
// URL comparisons are named as not evaluable rather than silently never
// matching.
var URLsObserved = true

// Problem is input we could not use in full: a file that is not JSON, a
// pattern with a syntax error, an indicator we cannot evaluate (or only in
// part), a garbage line. Pos says where.
type Problem struct {
	Source string // file
	Pos    string // "offset 1234", "object 3", "line 12"
	ID     string // the indicator, when known
	Reason string
	// Partial marks an indicator evaluated in part (some alternatives of
	// its pattern were left out); the others were not used at all.
	Partial bool
}

func (p Problem) String() string {
	s := p.Source
	if p.Pos != "" {
		s += ": " + p.Pos
	}
	if p.ID != "" {
		s += " (" + p.ID + ")"
	}
	if p.Partial {
		return s + ": evaluated in part: " + p.Reason
	}
	return s + ": " + p.Reason
}

// Set is the indicators read from every file, and what was left out.
type Set struct {
	Indicators []*Indicator
	Problems   []Problem
	// Counts of what was read but is not matched, and why.
	Revoked    int // revoked indicators (latest version)
	Superseded int // older versions of an indicator present in a newer one
	Other      int // STIX objects that are not indicators

	regexInsts int // of the indicators' regular expressions, at most maxSetRegexInsts
}

// Summary is one line for stderr.
func (s *Set) Summary() string {
	partial := len(s.Problems) - s.Unusable()
	return fmt.Sprintf("%d indicators read: %d evaluated (%d in part), %d not evaluable, %d revoked, %d superseded versions",
		len(s.Indicators)+s.Unusable()+s.Revoked, len(s.Indicators), partial, s.Unusable(), s.Revoked, s.Superseded)
}

// Unusable counts the problems that left an indicator or a line unused.
func (s *Set) Unusable() int {
	n := 0
	for _, p := range s.Problems {
		if !p.Partial {
			n++
		}
	}
	return n
}

// add compiles a parsed pattern into ind and keeps it when something of it
// can be evaluated; problems are recorded either way.
func (s *Set) add(ind *Indicator) {
	p, err := ParsePattern(ind.Pattern)
	if err != nil {
		s.Problems = append(s.Problems, Problem{Source: ind.Source, Pos: ind.Pos, ID: ind.ID, Reason: "pattern: " + err.Error()})
		return
	}
	alts, skipped := compile(p)
	if !URLsObserved {
		alts = slices.DeleteFunc(alts, func(c conj) bool {
			if c.needsURL() {
				skipped = addReason(skipped, "url:value: flow records carry no request URL yet")
				return true
			}
			return false
		})
	}
	n := 0
	for i := range alts {
		n += alts[i].regexInsts()
	}
	if n > 0 && s.regexInsts+n > maxSetRegexInsts {
		alts = nil
		skipped = addReason(skipped, fmt.Sprintf("regular expressions past the %d instructions all indicators may have", maxSetRegexInsts))
	}
	if len(alts) == 0 {
		s.Problems = append(s.Problems, Problem{Source: ind.Source, Pos: ind.Pos, ID: ind.ID, Reason: "not evaluable: " + strings.Join(skipped, "; ")})
		return
	}
	s.regexInsts += n
	if len(skipped) > 0 {
		s.Problems = append(s.Problems, Problem{Source: ind.Source, Pos: ind.Pos, ID: ind.ID, Reason: strings.Join(skipped, "; "), Partial: true})
	}
	ind.alts = alts
	s.Indicators = append(s.Indicators, ind)
}
