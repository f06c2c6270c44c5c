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
	// The ring's retire timer runs from the ring's set-up, not from the
	// first frame, so it may close a block between two of trafgen's frames
	// (seen under load): the frames are read from as many blocks as hold
	// them, in ring order.
	w := c.workers[0]
	var s recordSink
	var saved []byte
	blocks := 0
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; len(s.pkts) < realBlockPackets && i < w.nblocks; i++ {
		blk := w.block(i)
		for !w.ready(blk) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d frames in retired blocks after 5 s", len(s.pkts), realBlockPackets)
			}
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}, 100); err != nil && err != unix.EINTR {
				t.Fatal(err)
			}
		}
		used := binary.NativeEndian.Uint32(blk[blkLen:])
		b := bytes.Clone(blk[:used])
		w.release(blk)
		blocks++
		if i == 0 {
			saved = b
		}
		if _, err := walk(bytes.Clone(b), maxSnapLen, true, &s); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.pkts) != realBlockPackets {
		t.Fatalf("blocks hold %d packets, want %d", len(s.pkts), realBlockPackets)
	}
	t.Logf("%d frames in %d blocks", len(s.pkts), blocks)
	for i, g := range s.pkts {
		if !bytes.Equal(g.data, frames[i]) || g.origLen != len(frames[i]) {
			t.Errorf("packet %d: got % x (orig %d), sent % x", i, g.data, g.origLen, frames[i])
		}
	}
	if *update {
		if n := binary.NativeEndian.Uint32(saved[blkNumPkts:]); n != realBlockPackets {
			t.Fatalf("the first block holds %d of the %d frames: run -update again for a fixture of one block", n, realBlockPackets)
		}
		writeGolden(t, realBlock, saved)
	}
}
