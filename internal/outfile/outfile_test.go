package outfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

func TestCreateWritesEverything(t *testing.T) {
	// Sizes around the buffer boundary, written in pieces of many sizes.
	for _, total := range []int{0, 1, bufSize - 1, bufSize, bufSize + 1, 5*bufSize + 17} {
		path := filepath.Join(t.TempDir(), "out")
		if err := os.WriteFile(path, bytes.Repeat([]byte("old"), 3*bufSize), 0o644); err != nil {
			t.Fatal(err)
		}
		want := make([]byte, total)
		for i := range want {
			want[i] = byte(i * 7)
		}
		w := Create(path)
		for p, step := want, 1; len(p) > 0; step = step*3 + 1 {
			n := min(step, len(p))
			if m, err := w.Write(p[:n]); err != nil || m != n {
				t.Fatalf("Write: %d, %v", m, err)
			}
			p = p[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("total %d: file has %d bytes, differs from what was written", total, len(got))
		}
	}
}

func TestNewLeavesWriterOpen(t *testing.T) {
	var buf bytes.Buffer
	w := New(&buf)
	w.Write([]byte("hello "))
	w.Write([]byte("world"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "hello world" {
		t.Fatalf("got %q", buf.String())
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestOpenErrorReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "out")
	w := Create(path)
	// Enough to hand buffers over: a failed open must stop the writer
	// instead of letting it buffer without bound.
	var werr error
	chunk := make([]byte, 64<<10)
	for i := 0; i < 4*nbufs*bufSize/len(chunk) && werr == nil; i++ {
		_, werr = w.Write(chunk)
	}
	if werr == nil {
		t.Fatal("writes after a failed open kept succeeding")
	}
	err := w.Close()
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Close: %v, want the open error naming the path", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errors.New("device full")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriteErrorReported(t *testing.T) {
	w := New(&failAfter{n: bufSize})
	chunk := make([]byte, 4096)
	var werr error
	for i := 0; i < 10*bufSize/len(chunk) && werr == nil; i++ {
		_, werr = w.Write(chunk)
	}
	if werr == nil {
		t.Fatal("writes after a failed write kept succeeding")
	}
	if err := w.Close(); err == nil || err.Error() != "device full" {
		t.Fatalf("Close: %v", err)
	}
}

// query -w /tmp/x.pcap as root must not truncate the file another user's
// link there names.
func TestSharedDirLinkNotFollowed(t *testing.T) {
	testenv.Root(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "shadow")
	os.WriteFile(victim, []byte("root:secret"), 0o600)
	link := testenv.ForeignLink(t, dir, "out.pcap", victim)
	cerr := CheckPath(link)
	w := Create(link)
	w.Write([]byte("pcap"))
	err := w.Close()
	if b, _ := os.ReadFile(victim); string(b) != "root:secret" || err == nil || cerr == nil {
		t.Errorf("output through another user's link: check %v, close %v; the file it names holds %q", cerr, err, b)
	}
}
