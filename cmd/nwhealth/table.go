package main

import (
	"io"

	"github.com/nwhealth/nwhealth/internal/texttable"
)

// writeTable renders rows for people at a terminal.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	t := texttable.New(w, true, header...)
	for _, r := range rows {
		t.Append(r...)
	}
	t.Render()
	return nil
}
