// Package texttable renders tables for people at a terminal, with the
// settings every nwhealth table shares: cells are never wrapped (a line
// per row, so grep and less -S work) and headers are printed as given or
// upper-cased.
//
// It uses tablewriter v0.0.5 rather than v1: v1's package initialisation
// allocates a 660 KB width cache, paid by every nwhealth command at
// start-up whether or not it prints a table.
package texttable

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/olekukonko/tablewriter"
)

// Table collects rows and renders them at Render.
type Table struct {
	t *tablewriter.Table
}

// New starts a table on w. With upper, headers are upper-cased.
func New(w io.Writer, upper bool, header ...string) *Table {
	t := tablewriter.NewWriter(w)
	t.SetAutoWrapText(false)
	t.SetAutoFormatHeaders(upper)
	t.SetHeader(header)
	return &Table{t: t}
}

// Append adds a row. Cells hold strings from packets (names, commands,
// user names): control characters, invalid UTF-8 and bidirectional
// overrides are shown as Go escapes (\x1b, \u202e), so that a cell can
// neither drive the terminal (escape sequences setting its title,
// clipboard or hiding lines) nor break the row or reorder what is shown.
func (t *Table) Append(cells ...string) {
	for i, c := range cells {
		cells[i] = Clean(c)
	}
	t.t.Append(cells)
}

// Clean makes s safe to print to a terminal on one line (see Append).
func Clean(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f {
		i++
	}
	if i == len(s) {
		return s // printable ASCII: the common case, no copy
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for _, r := range s[i:] {
		switch {
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Render writes the table. tablewriter reports no write errors; callers
// that need them wrap w.
func (t *Table) Render() { t.t.Render() }
