//go:build linux

package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/netns"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"golang.org/x/sys/unix"
)

// TestRecordRealBlock reads one block straight from a live ring after
// trafgen sent realBlockPackets frames, every other one VLAN-tagged, and
// checks the walker on it. With -update it saves the block (trimmed to the
// bytes the kernel used) as the fixture TestWalkRealBlock and the fuzz
// seed use, so those run anywhere.
func TestRecordRealBlock(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "trafgen")
	p := netns.NewPair(t)
	var c *Capture
	if err := p.B.Do(func() (err error) {
		c, err = Open(Config{Interface: p.DevB, RingSize: 4 << 20, BlockSize: 1 << 16, BlockTimeout: 10 * time.Millisecond})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	frames := make([][]byte, realBlockPackets)
	for i := range frames {
		frames[i] = frame(64, byte(i))
		if i%2 == 1 {
			tagged := append([]byte{}, frames[i][:12]...)
			tagged = append(tagged, 0x81, 0x00, 0x00, 42)
			frames[i] = append(tagged, frames[i][12:]...)
		}
	}
	if _, err := p.A.Trafgen(context.Background(), t, p.DevA, netns.TrafgenFrames(frames...), netns.TrafgenOptions{Count: realBlockPackets}); err != nil {
		t.Fatal(err)
	}
	w := c.workers[0]
	blk := w.block(0)
	deadline := time.Now().Add(3 * time.Second)
	for !w.ready(blk) {
		if time.Now().After(deadline) {
			t.Fatal("no block retired within 3 s")
		}
		if _, err := unix.Poll([]unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}, 100); err != nil && err != unix.EINTR {
			t.Fatal(err)
		}
	}
	used := binary.NativeEndian.Uint32(blk[blkLen:])
	saved := bytes.Clone(blk[:used])
	w.release(blk)

	var s recordSink
	if _, err := walkBlock(bytes.Clone(saved), maxSnapLen, true, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.pkts) != realBlockPackets {
		t.Fatalf("block holds %d packets, want %d", len(s.pkts), realBlockPackets)
	}
	for i, g := range s.pkts {
		if !bytes.Equal(g.data, frames[i]) || g.origLen != len(frames[i]) {
			t.Errorf("packet %d: got % x (orig %d), sent % x", i, g.data, g.origLen, frames[i])
		}
	}
	if *update {
		writeGolden(t, realBlock, saved)
	}
}
