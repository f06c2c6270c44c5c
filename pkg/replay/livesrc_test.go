package replay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// newTestLive is a Live without a capture engine behind it: the test plays
// the capture worker through the sink.
func newTestLive(batches, batchBytes int) *Live {
	l := &Live{
		linkType: pkthdr.LinkEthernet,
		queue:    make(chan *liveBatch, batches), free: make(chan *liveBatch, batches),
		done: make(chan struct{}), cancel: func() {},
	}
	for i := 0; i < batches; i++ {
		l.free <- &liveBatch{buf: make([]byte, 0, batchBytes)}
	}
	l.sink = &liveSink{l: l}
	return l
}

// TestLiveQueue: packets are copied out of the (reused) ring memory,
// come out in order, a full queue drops and counts instead of blocking
// the ring, and Next drains what was queued before reporting the end.
func TestLiveQueue(t *testing.T) {
	l := newTestLive(2, 100)
	ring := make([]byte, 60) // the ring block, reused by the kernel
	write := func(b byte) {
		for i := range ring {
			ring[i] = b
		}
		if err := l.sink.WritePacket(t0.Add(time.Duration(b)*time.Millisecond), ring, 64); err != nil {
			t.Fatal(err)
		}
	}
	// Two batches hold one 60-byte packet each; the pipeline reads none.
	for b := byte(1); b <= 4; b++ {
		write(b)
	}
	l.sink.Flush()
	if d := l.Drops(); d.Queue != 2 || d.Kernel != 0 {
		t.Fatalf("drops %+v, want 2 queue drops", d)
	}
	close(l.done) // the capture ended
	for want := byte(1); want <= 2; want++ {
		pk, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pk.Data, bytes.Repeat([]byte{want}, 60)) || pk.OrigLen != 64 || pk.LinkType != pkthdr.LinkEthernet ||
			!pk.Timestamp.Equal(t0.Add(time.Duration(want)*time.Millisecond)) {
			t.Fatalf("packet %d: %+v", want, pk)
		}
	}
	if _, err := l.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the queue drained: %v", err)
	}
	// Every batch went back to be filled again.
	if len(l.free) != 2 {
		t.Fatalf("free %d", len(l.free))
	}
}

// TestRunLiveBatches feeds a Live's batches to the pipeline without
// copying and reports its drops in the stats.
func TestRunLiveBatches(t *testing.T) {
	f, _ := psexecFlow()
	l := newTestLive(64, 4096)
	for _, pk := range f.pkts {
		l.sink.WritePacket(pk.Timestamp, pk.Data, pk.OrigLen)
	}
	l.sink.Flush()
	l.queueDrops.Add(3)
	close(l.done)
	var ops []Operation
	st, err := RunLive(context.Background(), l, Config{}, time.Hour, func(o Operation) { ops = append(ops, o) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets != uint64(len(f.pkts)) || st.QueueDrops != 3 || !st.Damaged() {
		t.Fatalf("stats %+v", st)
	}
	if find(ops, "rpc", "") == nil || find(ops, "file", "write file") == nil {
		t.Fatalf("operations %+v", ops)
	}
	if len(l.free) != 64 {
		t.Fatalf("%d of 64 batches recycled", len(l.free))
	}
}
