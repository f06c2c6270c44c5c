package main

import (
	"io"
	"os"

	"golang.org/x/term"

	"github.com/nwhealth/nwhealth/internal/termsafe"
)

// textOut is w for text meant for people (tables, stories, summaries):
// control characters taken from captured traffic cannot drive the
// terminal (internal/termsafe). Not for pcap or JSON output.
func textOut(w io.Writer) io.Writer { return termsafe.NewWriter(w) }

// checkedWriter remembers the first error writing to w and returns it for
// every later write, so a command that ignores one write's error still
// ends with it (run reports it; ENOSPC gives exit 5).
type checkedWriter struct {
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	c.err = err
	return n, err
}

// Unwrap gives the writer beneath, for isTerminal.
func (c *checkedWriter) Unwrap() io.Writer { return c.w }

// isTerminal reports whether w is a terminal (tables, progress and the
// refusal to write binary depend on it), looking through wrappers.
func isTerminal(w io.Writer) bool {
	for {
		u, ok := w.(interface{ Unwrap() io.Writer })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
