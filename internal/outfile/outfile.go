// Package outfile writes a command's output on a goroutine of its own, so
// that producing the output and the kernel's side of writing it overlap.
//
// Two costs hide this way. Creating a file over an existing one frees the
// old blocks and page-cache pages: 5 ms for a 14 MiB file on the machines
// we measure, as long as the whole query that fills it (see create for
// how that work leaves the critical path). And each write copies into the
// page cache, which here runs while the next buffer fills instead of
// between buffers.
package outfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/nwhealth/nwhealth/internal/bigbuf"
	"github.com/nwhealth/nwhealth/internal/safepath"
	"golang.org/x/term"
)

const (
	bufSize = 128 << 10
	nbufs   = 3 // one filling, one being written, one spare
)

// Writer buffers writes and hands full buffers to its goroutine. It is an
// io.Writer for one goroutine; Close must be called.
type Writer struct {
	cur    []byte
	free   chan []byte
	full   chan []byte
	done   chan struct{}
	failed atomic.Bool
	err    error // the goroutine's first error; read after done
	closed bool
}

// ErrTerminal is returned for an output that is a terminal: outputs are
// binary (pcap), and binary is never written to a terminal.
var ErrTerminal = errors.New("is a terminal: binary output is not written to one")

// CheckPath refuses, before anything is opened for writing, a path that
// names a terminal (/dev/tty, a pts, a link to one). Create checks the
// file it opened again.
func CheckPath(path string) error {
	if err := safepath.CheckLinks(path); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOCTTY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil // not openable: Create will say so
	}
	defer f.Close()
	if term.IsTerminal(int(f.Fd())) {
		return fmt.Errorf("%s %w", path, ErrTerminal)
	}
	return nil
}

// Create starts creating (or replacing) the file at path and returns at
// once. An error opening it is returned by a later Write or by Close; a
// terminal is refused (ErrTerminal) before a byte is written.
func Create(path string) *Writer {
	return start(func() (io.Writer, func() error, error) {
		if err := safepath.CheckLinks(path); err != nil {
			return nil, nil, err
		}
		f, release, err := create(path)
		if err != nil {
			return nil, nil, err
		}
		if term.IsTerminal(int(f.Fd())) {
			f.Close()
			if release != nil {
				release()
			}
			return nil, nil, fmt.Errorf("%s %w", path, ErrTerminal)
		}
		if release == nil {
			return f, f.Close, nil
		}
		released := make(chan struct{})
		go func() {
			defer close(released)
			release()
		}()
		return f, func() error {
			err := f.Close()
			<-released
			return err
		}, nil
	})
}

// New writes to w, which Close leaves open.
func New(w io.Writer) *Writer {
	return start(func() (io.Writer, func() error, error) { return w, nil, nil })
}

func start(open func() (io.Writer, func() error, error)) *Writer {
	w := &Writer{
		free: make(chan []byte, nbufs),
		full: make(chan []byte, nbufs),
		done: make(chan struct{}),
	}
	for range nbufs {
		w.free <- bigbuf.Get(bufSize)[:0]
	}
	w.cur = <-w.free
	go w.run(open)
	return w
}

func (w *Writer) run(open func() (io.Writer, func() error, error)) {
	defer close(w.done)
	out, closeFn, err := open()
	w.setErr(err)
	for b := range w.full {
		if w.err == nil {
			_, err := out.Write(b)
			w.setErr(err)
		}
		w.free <- b[:0]
	}
	if closeFn != nil {
		w.setErr(closeFn())
	}
}

func (w *Writer) setErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
		w.failed.Store(true)
	}
}

// Write copies p into the current buffer, handing full ones over. After
// the goroutine has failed it returns an error at once; the error itself
// comes from Close.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("outfile: write after Close")
	}
	n := 0
	for len(p) > 0 {
		if len(w.cur) == cap(w.cur) {
			if err := w.handOver(); err != nil {
				return n, err
			}
		}
		c := copy(w.cur[len(w.cur):cap(w.cur)], p)
		w.cur = w.cur[:len(w.cur)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

var errFailed = errors.New("output failed")

func (w *Writer) handOver() error {
	if w.failed.Load() {
		return errFailed
	}
	w.full <- w.cur
	w.cur = <-w.free
	return nil
}

// Close writes what is buffered, waits for the goroutine and closes the
// file (not a writer given to New). It returns the first error of
// opening, writing or closing.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if len(w.cur) > 0 {
		w.full <- w.cur
	} else {
		bigbuf.Put(w.cur)
	}
	w.cur = nil
	close(w.full)
	<-w.done
	for range len(w.free) {
		bigbuf.Put(<-w.free)
	}
	return w.err
}
