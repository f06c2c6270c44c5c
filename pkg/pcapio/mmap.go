package pcapio

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// Mapped is a read-only memory map of a file. Reading blocks through it
// saves the copy a pread would make: queries touch many blocks. Only
// sealed shards are mapped, since they are never truncated (a truncated
// mapping faults on access).
type Mapped struct {
	data []byte
}

// MapFile maps the whole file read-only.
func MapFile(f *os.File) (*Mapped, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() == 0 {
		return &Mapped{}, nil
	}
	if fi.Size() != int64(int(fi.Size())) {
		return nil, fmt.Errorf("%s: too large to map", f.Name())
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", f.Name(), err)
	}
	return &Mapped{data: b}, nil
}

// Size is the mapped length.
func (m *Mapped) Size() int64 { return int64(len(m.data)) }

// ReadAt implements io.ReaderAt.
func (m *Mapped) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Slice returns n bytes at off without copying, or false if out of range.
func (m *Mapped) Slice(off int64, n int) ([]byte, bool) {
	if off < 0 || n < 0 || off+int64(n) > int64(len(m.data)) {
		return nil, false
	}
	return m.data[off : off+int64(n) : off+int64(n)], true
}

// Close unmaps the file.
func (m *Mapped) Close() error {
	if m.data == nil {
		return nil
	}
	err := syscall.Munmap(m.data)
	m.data = nil
	return err
}
