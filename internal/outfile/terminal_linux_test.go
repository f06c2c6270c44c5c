package outfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTerminalRefused: a terminal named by path is refused by CheckPath
// and, should one be swapped in after the check, by Create before a byte
// reaches it.
func TestTerminalRefused(t *testing.T) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	defer m.Close()
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	pts := fmt.Sprintf("/dev/pts/%d", n)
	if err := CheckPath(pts); !errors.Is(err, ErrTerminal) {
		t.Errorf("CheckPath(%s): %v", pts, err)
	}
	link := filepath.Join(t.TempDir(), "out.pcap")
	os.Symlink(pts, link)
	w := Create(link)
	w.Write([]byte("\xd4\xc3\xb2\xa1 binary"))
	if err := w.Close(); !errors.Is(err, ErrTerminal) {
		t.Errorf("Create on a terminal: %v", err)
	}
	unix.SetNonblock(int(m.Fd()), true)
	if k, _ := m.Read(make([]byte, 64)); k > 0 {
		t.Errorf("%d bytes reached the terminal", k)
	}
	if err := CheckPath(filepath.Join(t.TempDir(), "plain")); err != nil {
		t.Errorf("a plain path: %v", err)
	}
}
