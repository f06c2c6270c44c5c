package intel

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// stixObject holds the properties of a STIX object we read.
type stixObject struct {
	Type            string   `json:"type"`
	SpecVersion     string   `json:"spec_version"`
	ID              string   `json:"id"`
	Name            string   `json:"name"`
	Description     string   `json:"description"`
	Pattern         string   `json:"pattern"`
	PatternType     string   `json:"pattern_type"`
	ValidFrom       string   `json:"valid_from"`
	ValidUntil      string   `json:"valid_until"`
	Modified        string   `json:"modified"`
	Revoked         bool     `json:"revoked"`
	Confidence      *int     `json:"confidence"`
	IndicatorTypes  []string `json:"-"`
	KillChainPhases []struct {
		KillChainName string `json:"kill_chain_name"`
		PhaseName     string `json:"phase_name"`
	} `json:"kill_chain_phases"`
	CreatedByRef string `json:"created_by_ref"`
}

// UnmarshalJSON reads indicator_types (older producers write "labels").
func (o *stixObject) UnmarshalJSON(b []byte) error {
	type plain stixObject
	var aux struct {
		plain
		IndicatorTypes []string `json:"indicator_types"`
		Labels         []string `json:"labels"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*o = stixObject(aux.plain)
	o.IndicatorTypes = aux.IndicatorTypes
	if len(o.IndicatorTypes) == 0 {
		o.IndicatorTypes = aux.Labels
	}
	return nil
}

// version is one version of an indicator as read, before versions are
// settled across files.
type version struct {
	ind      *Indicator
	modified time.Time
	revoked  bool
}

// Reader reads indicator files into a Set: STIX bundles and plain lists.
// Versions of one indicator (same id) are settled when Finish is called,
// across all the files read: the latest `modified` wins, and a revoked
// latest version removes the indicator.
type Reader struct {
	set      Set
	versions map[string]version
	order    []string
}

// NewReader starts an empty set.
func NewReader() *Reader { return &Reader{versions: map[string]version{}} }

// Finish settles versions, compiles the patterns and returns the set.
func (r *Reader) Finish() *Set {
	for _, id := range r.order {
		v := r.versions[id]
		if v.revoked {
			r.set.Revoked++
			continue
		}
		r.set.add(v.ind)
	}
	r.order, r.versions = nil, map[string]version{}
	return &r.set
}

func (r *Reader) problem(source, pos, id, format string, a ...any) {
	r.set.Problems = append(r.set.Problems, Problem{Source: source, Pos: pos, ID: id, Reason: fmt.Sprintf(format, a...)})
}

// ReadBundle reads a STIX 2.1 bundle (or one STIX object, or a JSON array
// of objects) from in. What cannot be read is a Problem naming its place;
// a file that stops being JSON keeps the objects before the break.
func (r *Reader) ReadBundle(in io.Reader, source string) {
	lim := &objectBudget{r: bufio.NewReaderSize(in, 64<<10)}
	dec := json.NewDecoder(lim)
	// Each value the decoder takes whole (an object, a key, another
	// member of the bundle) may take maxObject bytes from where it starts.
	next := func() { lim.limit = dec.InputOffset() + maxObject }
	next()
	syntax := func(err error) {
		var se *json.SyntaxError
		switch {
		case errors.Is(err, errObjectTooLarge):
			r.problem(source, fmt.Sprintf("offset %d", dec.InputOffset()), "", "%v: the rest of the file is not read", err)
		case errors.As(err, &se):
			r.problem(source, fmt.Sprintf("offset %d", se.Offset), "", "not JSON: %v", err)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			r.problem(source, fmt.Sprintf("offset %d", dec.InputOffset()), "", "not JSON: ends early")
		default:
			r.problem(source, fmt.Sprintf("offset %d", dec.InputOffset()), "", "not JSON: %v", err)
		}
	}
	tok, err := dec.Token()
	if err != nil {
		syntax(err)
		return
	}
	n := 0
	switch tok {
	case json.Delim('['):
		if err := r.objects(dec, lim, source, &n); err != nil {
			syntax(err)
		}
		return
	case json.Delim('{'):
	default:
		r.problem(source, "offset 0", "", "not a STIX bundle: starts with %v", tok)
		return
	}
	// A bundle streams its objects; other keys are kept for the case the
	// document is one object rather than a bundle.
	top := map[string]json.RawMessage{}
	for next(); dec.More(); next() {
		kt, err := dec.Token()
		if err != nil {
			syntax(err)
			return
		}
		key, _ := kt.(string)
		if key == "objects" {
			t, err := dec.Token()
			if err != nil {
				syntax(err)
				return
			}
			if t != json.Delim('[') {
				r.problem(source, fmt.Sprintf("offset %d", dec.InputOffset()), "", "bundle objects is not a list")
				return
			}
			if err := r.objects(dec, lim, source, &n); err != nil {
				syntax(err)
				return
			}
			continue
		}
		next()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			syntax(err)
			return
		}
		if len(top) < 64 {
			top[key] = raw
		}
	}
	if _, err := dec.Token(); err != nil {
		syntax(err)
		return
	}
	var typ string
	json.Unmarshal(top["type"], &typ)
	switch typ {
	case "bundle":
	case "":
		r.problem(source, "offset 0", "", "not a STIX bundle: no type")
	default:
		b, _ := json.Marshal(top)
		r.object(b, source, "object 1")
	}
}

// objects reads the elements of a JSON array, after its '['.
func (r *Reader) objects(dec *json.Decoder, lim *objectBudget, source string, n *int) error {
	for lim.limit = dec.InputOffset() + maxObject; dec.More(); lim.limit = dec.InputOffset() + maxObject {
		var raw json.RawMessage
		off := dec.InputOffset()
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		*n++
		r.object(raw, source, fmt.Sprintf("object %d (offset %d)", *n, off))
	}
	_, err := dec.Token()
	return err
}

// maxObject bounds one value of a bundle (an object, a member of the
// bundle): json.Decoder holds a whole value in memory before it returns,
// and a pattern is at most 1 MiB (maxPatternLen), the rest of an
// indicator small.
const maxObject = 4 << 20

var errObjectTooLarge = fmt.Errorf("an object or value larger than %d MiB", maxObject>>20)

// objectBudget lets the decoder read up to limit bytes of the input.
type objectBudget struct {
	r     io.Reader
	n     int64
	limit int64
}

func (b *objectBudget) Read(p []byte) (int, error) {
	if b.n >= b.limit {
		return 0, errObjectTooLarge
	}
	if int64(len(p)) > b.limit-b.n {
		p = p[:b.limit-b.n]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// object takes one STIX object; only indicators are kept.
func (r *Reader) object(raw []byte, source, pos string) {
	var o stixObject
	if err := json.Unmarshal(raw, &o); err != nil {
		var head struct {
			ID string `json:"id"`
		}
		json.Unmarshal(raw, &head)
		r.problem(source, pos, head.ID, "not a STIX object: %v", err)
		return
	}
	if o.Type != "indicator" {
		r.set.Other++
		return
	}
	if !strings.HasPrefix(o.ID, "indicator--") {
		r.problem(source, pos, o.ID, "indicator id must start with indicator--")
		return
	}
	if o.PatternType == "" && o.SpecVersion == "" {
		// STIX 2.0 had no pattern_type: its patterns are STIX patterns.
		o.PatternType = "stix"
	}
	if o.PatternType != "stix" {
		r.problem(source, pos, o.ID, "pattern_type %q: only stix patterns are evaluated", o.PatternType)
		return
	}
	if o.Pattern == "" {
		r.problem(source, pos, o.ID, "indicator has no pattern")
		return
	}
	ind := &Indicator{ID: o.ID, Name: o.Name, Description: o.Description, Pattern: o.Pattern, Source: source, Pos: pos,
		Types: o.IndicatorTypes, Confidence: -1, CreatedBy: o.CreatedByRef}
	if o.Confidence != nil {
		ind.Confidence = min(max(*o.Confidence, 0), 100)
	}
	var err error
	if ind.ValidFrom, err = stixTime(o.ValidFrom); err != nil || ind.ValidFrom.IsZero() {
		r.problem(source, pos, o.ID, "valid_from %q is not a STIX timestamp", o.ValidFrom)
		return
	}
	if o.ValidUntil != "" {
		if ind.ValidUntil, err = stixTime(o.ValidUntil); err != nil {
			r.problem(source, pos, o.ID, "valid_until %q is not a STIX timestamp", o.ValidUntil)
			return
		}
		if !ind.ValidUntil.After(ind.ValidFrom) {
			r.problem(source, pos, o.ID, "valid_until is not after valid_from")
			return
		}
	}
	for _, k := range o.KillChainPhases {
		if k.KillChainName == "mitre-attack" || k.KillChainName == "lockheed-martin-cyber-kill-chain" {
			ind.KillChain = append(ind.KillChain, k.PhaseName)
		}
	}
	mod, _ := stixTime(o.Modified)
	r.version(version{ind: ind, modified: mod, revoked: o.Revoked})
}

func (r *Reader) version(v version) {
	id := v.ind.ID
	old, ok := r.versions[id]
	if !ok {
		r.order = append(r.order, id)
		r.versions[id] = v
		return
	}
	r.set.Superseded++
	if v.modified.After(old.modified) || v.modified.Equal(old.modified) && v.revoked {
		r.versions[id] = v
	}
}

func stixTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// Read reads one indicator file, telling a STIX bundle (JSON: it starts
// with '{' or '[') from a plain list by its first bytes.
func (r *Reader) Read(in io.Reader, source string) {
	br := bufio.NewReaderSize(in, 64<<10)
	head, _ := br.Peek(512)
	head = bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\ufeff")), " \t\r\n")
	if len(head) > 0 && (head[0] == '{' || head[0] == '[') {
		r.ReadBundle(br, source)
		return
	}
	r.ReadList(br, source)
}

// Load reads indicator files ("-" is in, standard input); a file that
// cannot be opened is an error, anything wrong inside one is a Problem.
func Load(paths []string, in io.Reader) (*Set, error) {
	r := NewReader()
	for _, p := range paths {
		if p == "-" {
			r.Read(in, "stdin")
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("indicators: %w", err)
		}
		r.Read(f, p)
		f.Close()
	}
	return r.Finish(), nil
}
