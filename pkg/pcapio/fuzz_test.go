package pcapio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// fuzzRead drains a reader over arbitrary bytes: it must make progress, never
// panic, and never hand out a packet larger than MaxRecord.
func fuzzRead(t *testing.T, in []byte) {
	r, err := NewReader(bytes.NewReader(in))
	if err != nil {
		return
	}
	defer r.Close()
	stuck := 0
	for {
		before := r.off
		p, err := r.Next()
		// Calls must consume input (one final error may not), or the
		// caller's loop never ends.
		if err != io.EOF && r.off == before {
			if stuck++; stuck > 1 {
				t.Fatalf("Next made no progress at byte %d (err %v)", before, err)
			}
		}
		if err == io.EOF {
			return
		}
		var ce *CorruptError
		if errors.As(err, &ce) {
			continue
		}
		if err != nil {
			return
		}
		if len(p.Data) > MaxRecord {
			t.Fatalf("packet of %d bytes", len(p.Data))
		}
	}
}

func FuzzPcapReader(f *testing.F) {
	good := pcapBytes(testPackets(6), binary.LittleEndian, false)
	f.Add(good)
	f.Add(pcapBytes(testPackets(4), binary.BigEndian, true))
	f.Add(good[:len(good)-3])
	f.Add(append(bytes.Clone(good[:60]), bytes.Repeat([]byte{0xff}, 40)...))
	f.Add(gz(good))
	f.Fuzz(fuzzRead)
}

func FuzzPcapngReader(f *testing.F) {
	good := pcapngBytes(testPackets(6))
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add(zst(good))
	b := bytes.Clone(good)
	binary.BigEndian.PutUint32(b[4:], 0xffffff00)
	f.Add(b)
	f.Fuzz(fuzzRead)
}

// FuzzReaderSmallBuffer is both readers with a 64-byte buffer, so that
// records and blocks take the path of those longer than the buffer:
// read into a buffer of their own, and put back when found damaged.
func FuzzReaderSmallBuffer(f *testing.F) {
	f.Add(pcapBytes(testPackets(6), binary.LittleEndian, false))
	ng := pcapngBytes(testPackets(8))
	f.Add(ng)
	bad := bytes.Clone(ng)
	binary.BigEndian.PutUint32(bad[200:], 4096)
	f.Add(bad)
	f.Fuzz(func(t *testing.T, in []byte) {
		defer func(n int) { readBuffer = n }(readBuffer)
		readBuffer = 64
		fuzzRead(t, in)
	})
}
