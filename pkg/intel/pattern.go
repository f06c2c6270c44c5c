// Package intel reads shared threat intelligence (STIX 2.1 bundles and
// plain lists of addresses, networks, domains and URLs) and matches it
// against flow records: the retro-hunt of docs/intel.md. It parses the
// whole STIX pattern grammar, evaluates the comparisons that name network
// observables, and names every pattern it cannot evaluate.
package intel

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxPatternLen bounds a pattern we parse: the longest real ones are a few
// kilobytes (hash lists); a megabyte one is hostile or broken.
const maxPatternLen = 1 << 20

// maxDepth bounds nesting, so a hostile pattern cannot exhaust the stack.
const maxDepth = 100

// SyntaxError is a pattern that does not follow the grammar
// (STIXPattern.g4), with the byte offset where parsing stopped.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("pattern offset %d: %s", e.Offset, e.Msg) }

// Pattern is a parsed STIX pattern: observation expressions joined by
// observation operators, as the grammar builds them.
type Pattern struct {
	Root ObsExpr
}

// ObsExpr is an observation expression: either a simple one (Comparison
// set), a compound (Op with Left and Right), with qualifiers.
type ObsExpr struct {
	Op          string   // "", "AND", "OR", "FOLLOWEDBY"
	Left, Right *ObsExpr // when Op != ""
	Cmp         *CmpExpr // when Op == ""
	Qualifiers  []Qualifier
}

// Qualifier is WITHIN n SECONDS, REPEATS n TIMES or START t STOP t.
type Qualifier struct {
	Kind        string // "WITHIN", "REPEATS", "START"
	Seconds     float64
	Times       int
	Start, Stop time.Time
}

// CmpExpr is a comparison expression: comparisons joined by AND and OR.
type CmpExpr struct {
	Op          string // "", "AND", "OR"
	Left, Right *CmpExpr
	Test        *PropTest // when Op == ""
}

// PropTest is one comparison: an object path, an operator and a value.
type PropTest struct {
	Path   ObjectPath
	Not    bool
	Op     string // "=", "!=", "<", "<=", ">", ">=", "IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET", "EXISTS"
	Values []Literal
}

// ObjectPath is type:property.property[index]...; index steps are "[*]"
// or "[n]" in Steps.
type ObjectPath struct {
	Type  string
	Steps []string
}

// Property is the path after the type, as written in patterns without
// indexes: "dst_ref.value", "resolves_to_refs[*].value".
func (p ObjectPath) Property() string {
	var b strings.Builder
	for i, s := range p.Steps {
		if i > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

func (p ObjectPath) String() string { return p.Type + ":" + p.Property() }

// Literal kinds.
const (
	LitString = iota
	LitInt
	LitFloat
	LitBool
	LitTime
	LitBinary
	LitHex
)

// Literal is a constant of the pattern.
type Literal struct {
	Kind  int
	Str   string // strings (unescaped), binary and hex text
	Int   int64
	Float float64
	Bool  bool
	Time  time.Time
}

func (l Literal) String() string {
	switch l.Kind {
	case LitInt:
		return strconv.FormatInt(l.Int, 10)
	case LitFloat:
		return strconv.FormatFloat(l.Float, 'g', -1, 64)
	case LitBool:
		return strconv.FormatBool(l.Bool)
	case LitTime:
		return "t'" + l.Time.Format(time.RFC3339Nano) + "'"
	case LitBinary:
		return "b'" + l.Str + "'"
	case LitHex:
		return "h'" + l.Str + "'"
	}
	return "'" + l.Str + "'"
}

// Token kinds of the lexer.
const (
	tEOF = iota
	tIdent
	tString
	tInt
	tFloat
	tBool
	tTime
	tBinary
	tHex
	tKeyword // AND OR NOT FOLLOWEDBY LIKE MATCHES ISSUPERSET ISSUBSET EXISTS LAST IN START STOP SECONDS WITHIN REPEATS TIMES
	tOp      // = == != <> < <= > >=
	tPunct   // : . , ( ) [ ] *
)

type token struct {
	kind int
	text string // keyword, operator, punctuation, identifier or raw literal
	lit  Literal
	off  int
}

var keywords = map[string]bool{"AND": true, "OR": true, "NOT": true, "FOLLOWEDBY": true, "LIKE": true, "MATCHES": true,
	"ISSUPERSET": true, "ISSUBSET": true, "EXISTS": true, "LAST": true, "IN": true, "START": true, "STOP": true,
	"SECONDS": true, "WITHIN": true, "REPEATS": true, "TIMES": true}

func isSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\r', '\n', '\v', '\f', 0x85, 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isIdent(c byte) bool      { return isIdentStart(c) || c >= '0' && c <= '9' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

// lex splits a pattern into tokens.
func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if isSpace(r) {
			i += size
			continue
		}
		if strings.HasPrefix(s[i:], "/*") {
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return nil, &SyntaxError{i, "unterminated comment"}
			}
			i += j + 4
			continue
		}
		if strings.HasPrefix(s[i:], "//") {
			j := strings.IndexAny(s[i:], "\r\n")
			if j < 0 {
				j = len(s) - i
			}
			i += j
			continue
		}
		start := i
		c := s[i]
		// Prefixed literals: t'...', b'...', h'...'.
		if (c == 't' || c == 'b' || c == 'h') && i+1 < len(s) && s[i+1] == '\'' {
			j := strings.IndexByte(s[i+2:], '\'')
			if j < 0 {
				return nil, &SyntaxError{i, "unterminated literal"}
			}
			body := s[i+2 : i+2+j]
			tok := token{off: start, text: s[i : i+3+j]}
			switch c {
			case 't':
				ts, err := parseTimestamp(body)
				if err != nil {
					return nil, &SyntaxError{i, err.Error()}
				}
				tok.kind, tok.lit = tTime, Literal{Kind: LitTime, Time: ts}
			case 'b':
				if !validBase64(body) {
					return nil, &SyntaxError{i, "binary literal is not base64"}
				}
				tok.kind, tok.lit = tBinary, Literal{Kind: LitBinary, Str: body}
			case 'h':
				if !validHex(body) {
					return nil, &SyntaxError{i, "hex literal needs pairs of hex digits"}
				}
				tok.kind, tok.lit = tHex, Literal{Kind: LitHex, Str: body}
			}
			toks = append(toks, tok)
			i += 3 + j
			continue
		}
		switch {
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, &SyntaxError{i, "unterminated string"}
				}
				if s[j] == '\\' {
					if j+1 < len(s) && (s[j+1] == '\'' || s[j+1] == '\\') {
						b.WriteByte(s[j+1])
						j += 2
						continue
					}
					return nil, &SyntaxError{j, `a backslash in a string escapes only ' or \`}
				}
				if s[j] == '\'' {
					break
				}
				b.WriteByte(s[j])
				j++
			}
			toks = append(toks, token{kind: tString, text: s[i : j+1], lit: Literal{Kind: LitString, Str: b.String()}, off: start})
			i = j + 1
		case isDigit(c) || (c == '+' || c == '-' || c == '.') && i+1 < len(s) && (isDigit(s[i+1]) || s[i+1] == '.'):
			j := i
			if s[j] == '+' || s[j] == '-' {
				j++
			}
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			isFloat := false
			if j < len(s) && s[j] == '.' {
				isFloat = true
				j++
				k := j
				for j < len(s) && isDigit(s[j]) {
					j++
				}
				if j == k {
					return nil, &SyntaxError{i, "a float needs digits after the point"}
				}
			}
			text := s[i:j]
			if isFloat {
				f, err := strconv.ParseFloat(text, 64)
				if err != nil {
					return nil, &SyntaxError{i, "bad float " + text}
				}
				toks = append(toks, token{kind: tFloat, text: text, lit: Literal{Kind: LitFloat, Float: f}, off: start})
			} else {
				digits := strings.TrimLeft(text, "+-")
				if len(digits) > 1 && digits[0] == '0' {
					return nil, &SyntaxError{i, "an integer has no leading zero"}
				}
				n, err := strconv.ParseInt(text, 10, 64)
				if err != nil {
					return nil, &SyntaxError{i, "integer out of range " + text}
				}
				toks = append(toks, token{kind: tInt, text: text, lit: Literal{Kind: LitInt, Int: n}, off: start})
			}
			i = j
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && (isIdent(s[j]) || s[j] == '-') {
				j++
			}
			word := s[i:j]
			switch {
			case keywords[word]:
				toks = append(toks, token{kind: tKeyword, text: word, off: start})
			case word == "true" || word == "false":
				toks = append(toks, token{kind: tBool, text: word, lit: Literal{Kind: LitBool, Bool: word == "true"}, off: start})
			default:
				toks = append(toks, token{kind: tIdent, text: word, off: start})
			}
			i = j
		default:
			two := ""
			if i+1 < len(s) {
				two = s[i : i+2]
			}
			switch {
			case two == "==" || two == "!=" || two == "<>" || two == "<=" || two == ">=":
				toks = append(toks, token{kind: tOp, text: two, off: start})
				i += 2
			case c == '=' || c == '<' || c == '>':
				toks = append(toks, token{kind: tOp, text: string(c), off: start})
				i++
			case strings.IndexByte(":.,()[]*", c) >= 0:
				toks = append(toks, token{kind: tPunct, text: string(c), off: start})
				i++
			default:
				return nil, &SyntaxError{i, fmt.Sprintf("unexpected character %q", r)}
			}
		}
	}
	return append(toks, token{kind: tEOF, off: len(s)}), nil
}

// parseTimestamp reads the grammar's timestamp: RFC 3339 in UTC with a Z,
// optional fraction, leap second 60 allowed.
func parseTimestamp(s string) (time.Time, error) {
	if len(s) < 20 || s[len(s)-1] != 'Z' || s[10] != 'T' {
		return time.Time{}, fmt.Errorf("bad timestamp %q", s)
	}
	leap := false
	if s[17:19] == "60" {
		// time.Parse refuses second 60; a leap second is the next second's start.
		s = s[:17] + "59" + s[19:]
		leap = true
	}
	t, err := time.Parse("2006-01-02T15:04:05.999999999Z", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q", s)
	}
	if leap {
		t = t.Add(time.Second)
	}
	return t, nil
}

func validBase64(s string) bool {
	if len(s)%4 != 0 || len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := isIdent(c) && c != '_' || c == '+' || c == '/'
		if c == '=' {
			ok = i >= len(s)-2 && (i == len(s)-1 || s[len(s)-1] == '=')
		}
		if !ok {
			return false
		}
	}
	return true
}

func validHex(s string) bool {
	if len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

type parser struct {
	toks  []token
	pos   int
	depth int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) is(kind int, text string) bool {
	t := p.peek()
	return t.kind == kind && t.text == text
}

func (p *parser) expect(kind int, text string) error {
	if !p.is(kind, text) {
		return p.errorf("expected %q", text)
	}
	p.next()
	return nil
}

func (p *parser) errorf(format string, a ...any) error {
	t := p.peek()
	found := t.text
	if t.kind == tEOF {
		found = "end of pattern"
	}
	return &SyntaxError{t.off, fmt.Sprintf(format, a...) + ", found " + strconv.Quote(found)}
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errorf("nested deeper than %d", maxDepth)
	}
	return nil
}

// ParsePattern parses a STIX 2.1 pattern.
func ParsePattern(s string) (*Pattern, error) {
	if len(s) > maxPatternLen {
		return nil, &SyntaxError{maxPatternLen, "pattern longer than 1 MiB"}
	}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	root, err := p.observations()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tEOF {
		return nil, p.errorf("expected an observation operator")
	}
	return &Pattern{Root: *root}, nil
}

// observations: FOLLOWEDBY binds loosest, then OR, then AND (all left
// associative).
func (p *parser) observations() (*ObsExpr, error) {
	return p.obsBinary(0)
}

var obsOps = []string{"FOLLOWEDBY", "OR", "AND"}

func (p *parser) obsBinary(level int) (*ObsExpr, error) {
	if level == len(obsOps) {
		return p.observation()
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	left, err := p.obsBinary(level + 1)
	if err != nil {
		return nil, err
	}
	for p.is(tKeyword, obsOps[level]) {
		p.next()
		right, err := p.obsBinary(level + 1)
		if err != nil {
			return nil, err
		}
		left = &ObsExpr{Op: obsOps[level], Left: left, Right: right}
	}
	return left, nil
}

func (p *parser) observation() (*ObsExpr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	var o *ObsExpr
	switch {
	case p.is(tPunct, "["):
		p.next()
		c, err := p.comparison()
		if err != nil {
			return nil, err
		}
		if err := p.expect(tPunct, "]"); err != nil {
			return nil, err
		}
		o = &ObsExpr{Cmp: c}
	case p.is(tPunct, "("):
		p.next()
		inner, err := p.observations()
		if err != nil {
			return nil, err
		}
		if err := p.expect(tPunct, ")"); err != nil {
			return nil, err
		}
		o = inner
		if o.Op == "" && len(o.Qualifiers) == 0 {
			break
		}
		// A parenthesised expression takes its own qualifiers: keep the
		// group as a unit.
		o = &ObsExpr{Op: "()", Left: inner}
	default:
		return nil, p.errorf("expected '[' or '('")
	}
	for {
		q, ok, err := p.qualifier()
		if err != nil {
			return nil, err
		}
		if !ok {
			return o, nil
		}
		o.Qualifiers = append(o.Qualifiers, q)
	}
}

func (p *parser) qualifier() (Qualifier, bool, error) {
	switch {
	case p.is(tKeyword, "WITHIN"):
		p.next()
		t := p.next()
		var secs float64
		switch {
		case t.kind == tInt && t.lit.Int > 0 && !strings.HasPrefix(t.text, "-"):
			secs = float64(t.lit.Int)
		case t.kind == tFloat && t.lit.Float > 0:
			secs = t.lit.Float
		default:
			p.pos--
			return Qualifier{}, false, p.errorf("WITHIN needs a positive number")
		}
		if err := p.expect(tKeyword, "SECONDS"); err != nil {
			return Qualifier{}, false, err
		}
		return Qualifier{Kind: "WITHIN", Seconds: secs}, true, nil
	case p.is(tKeyword, "REPEATS"):
		p.next()
		t := p.next()
		if t.kind != tInt || t.lit.Int <= 0 || strings.HasPrefix(t.text, "-") {
			p.pos--
			return Qualifier{}, false, p.errorf("REPEATS needs a positive integer")
		}
		if err := p.expect(tKeyword, "TIMES"); err != nil {
			return Qualifier{}, false, err
		}
		return Qualifier{Kind: "REPEATS", Times: int(min(t.lit.Int, 1<<31-1))}, true, nil
	case p.is(tKeyword, "START"):
		p.next()
		a := p.next()
		if a.kind != tTime {
			p.pos--
			return Qualifier{}, false, p.errorf("START needs a timestamp t'...'")
		}
		if err := p.expect(tKeyword, "STOP"); err != nil {
			return Qualifier{}, false, err
		}
		b := p.next()
		if b.kind != tTime {
			p.pos--
			return Qualifier{}, false, p.errorf("STOP needs a timestamp t'...'")
		}
		return Qualifier{Kind: "START", Start: a.lit.Time, Stop: b.lit.Time}, true, nil
	}
	return Qualifier{}, false, nil
}

func (p *parser) comparison() (*CmpExpr, error) { return p.cmpBinary(0) }

var cmpOps = []string{"OR", "AND"}

func (p *parser) cmpBinary(level int) (*CmpExpr, error) {
	if level == len(cmpOps) {
		return p.propTest()
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	left, err := p.cmpBinary(level + 1)
	if err != nil {
		return nil, err
	}
	for p.is(tKeyword, cmpOps[level]) {
		p.next()
		right, err := p.cmpBinary(level + 1)
		if err != nil {
			return nil, err
		}
		left = &CmpExpr{Op: cmpOps[level], Left: left, Right: right}
	}
	return left, nil
}

func (p *parser) propTest() (*CmpExpr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if p.is(tPunct, "(") {
		p.next()
		c, err := p.comparison()
		if err != nil {
			return nil, err
		}
		if err := p.expect(tPunct, ")"); err != nil {
			return nil, err
		}
		return c, nil
	}
	not := false
	if p.is(tKeyword, "NOT") {
		p.next()
		not = true
		if !p.is(tKeyword, "EXISTS") {
			return nil, p.errorf("NOT before a path goes with EXISTS")
		}
	}
	if p.is(tKeyword, "EXISTS") {
		p.next()
		path, err := p.objectPath()
		if err != nil {
			return nil, err
		}
		return &CmpExpr{Test: &PropTest{Path: path, Not: not, Op: "EXISTS"}}, nil
	}
	path, err := p.objectPath()
	if err != nil {
		return nil, err
	}
	t := &PropTest{Path: path}
	if p.is(tKeyword, "NOT") {
		p.next()
		t.Not = true
	}
	op := p.next()
	switch {
	case op.kind == tOp:
		t.Op = op.text
		switch t.Op {
		case "==":
			t.Op = "="
		case "<>":
			t.Op = "!="
		}
		lit := p.next()
		if !isLiteral(lit.kind) {
			p.pos--
			return nil, p.errorf("expected a literal after %s", op.text)
		}
		if lit.kind == tBool && t.Op != "=" && t.Op != "!=" {
			p.pos--
			return nil, p.errorf("%s needs an orderable literal, not a boolean", op.text)
		}
		t.Values = []Literal{lit.lit}
	case op.kind == tKeyword && op.text == "IN":
		t.Op = "IN"
		if err := p.expect(tPunct, "("); err != nil {
			return nil, err
		}
		for !p.is(tPunct, ")") {
			if len(t.Values) > 0 {
				if err := p.expect(tPunct, ","); err != nil {
					return nil, err
				}
			}
			lit := p.next()
			if !isLiteral(lit.kind) {
				p.pos--
				return nil, p.errorf("expected a literal in the set")
			}
			t.Values = append(t.Values, lit.lit)
		}
		p.next()
	case op.kind == tKeyword && (op.text == "LIKE" || op.text == "MATCHES" || op.text == "ISSUBSET" || op.text == "ISSUPERSET"):
		t.Op = op.text
		lit := p.next()
		if lit.kind != tString {
			p.pos--
			return nil, p.errorf("%s needs a string literal", op.text)
		}
		t.Values = []Literal{lit.lit}
	default:
		p.pos--
		return nil, p.errorf("expected a comparison operator after %s", path)
	}
	return &CmpExpr{Test: t}, nil
}

func isLiteral(kind int) bool {
	switch kind {
	case tString, tInt, tFloat, tBool, tTime, tBinary, tHex:
		return true
	}
	return false
}

func (p *parser) objectPath() (ObjectPath, error) {
	t := p.next()
	if t.kind != tIdent {
		p.pos--
		return ObjectPath{}, p.errorf("expected an object type")
	}
	path := ObjectPath{Type: t.text}
	if err := p.expect(tPunct, ":"); err != nil {
		return path, err
	}
	first := p.next()
	switch {
	case first.kind == tIdent && !strings.Contains(first.text, "-"):
		path.Steps = append(path.Steps, first.text)
	case first.kind == tString:
		path.Steps = append(path.Steps, first.lit.Str)
	default:
		p.pos--
		return path, p.errorf("expected a property name (quote names with hyphens)")
	}
	for {
		switch {
		case p.is(tPunct, "."):
			p.next()
			k := p.next()
			switch {
			case k.kind == tIdent && !strings.Contains(k.text, "-"):
				path.Steps = append(path.Steps, k.text)
			case k.kind == tString:
				path.Steps = append(path.Steps, k.lit.Str)
			default:
				p.pos--
				return path, p.errorf("expected a property name after '.'")
			}
		case p.is(tPunct, "["):
			p.next()
			k := p.next()
			switch {
			case k.kind == tPunct && k.text == "*":
				path.Steps = append(path.Steps, "[*]")
			case k.kind == tInt:
				path.Steps = append(path.Steps, "["+strconv.FormatInt(k.lit.Int, 10)+"]")
			default:
				p.pos--
				return path, p.errorf("expected an index or * in a path")
			}
			if err := p.expect(tPunct, "]"); err != nil {
				return path, err
			}
		default:
			return path, nil
		}
	}
}
