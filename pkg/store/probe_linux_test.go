package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReadNoWait(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Data past 4 GiB (a sparse file): the offset must reach the kernel
	// whole.
	want := []byte("beyond four gibibytes")
	const far = 5 << 30
	for _, off := range []int64{0, 4095, far} {
		if _, err := f.WriteAt(want, off); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		// Just written, so cached: the read takes it without waiting.
		n, err := readNoWait(int(f.Fd()), got, off)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
			t.Skipf("no RWF_NOWAIT on this kernel or file system: %v", err)
		}
		if err != nil || n != len(want) || !bytes.Equal(got, want) {
			t.Fatalf("offset %d: read %d bytes %q, %v", off, n, got[:n], err)
		}
	}
	// At the end of the file: nothing, no error.
	if n, err := readNoWait(int(f.Fd()), make([]byte, 8), far+int64(len(want))); n != 0 || err != nil {
		t.Fatalf("at end: %d, %v", n, err)
	}
}
