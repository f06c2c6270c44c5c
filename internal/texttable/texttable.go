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
	"io"

	"github.com/olekukonko/tablewriter"

	"github.com/nwhealth/nwhealth/internal/termsafe"
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

// Append adds a row. Cells come from captured traffic: each is made safe
// for a terminal on one line (Clean) before it is measured and printed.
func (t *Table) Append(cells ...string) {
	clean := make([]string, len(cells))
	for i, c := range cells {
		clean[i] = Clean(c)
	}
	t.t.Append(clean)
}

// Clean makes s safe to print to a terminal on one line: control
// characters, bidirectional controls and line separators as Go escapes,
// invalid UTF-8 as \ufffd (internal/termsafe).
func Clean(s string) string { return termsafe.String(s) }

// Render writes the table. tablewriter reports no write errors; callers
// that need them wrap w.
func (t *Table) Render() { t.t.Render() }
