package replay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// newTestLive is a Live without a capture engine behind it: the test plays
// the capture worker through the sink, and end (also what Close calls)
// ends the capture as Run would: a last Flush, then done.
func newTestLive(batches, batchBytes, batchPackets int) (l *Live, end func()) {
	l = &Live{
		linkType: pkthdr.LinkEthernet,
		queue:    make(chan *liveBatch, batches), free: make(chan *liveBatch, batches),
		done: make(chan struct{}), closing: make(chan struct{}),
	}
	for i := 0; i < batches; i++ {
		l.free <- &liveBatch{buf: make([]byte, 0, batchBytes), pkts: make([]Packet, 0, batchPackets)}
	}
	l.sink = &liveSink{l: l}
	var once sync.Once
	end = func() { once.Do(func() { l.sink.Flush(); close(l.done) }) }
	l.cancel = end
	return l, end
}

// TestLiveQueue: packets are copied out of the (reused) ring memory and
// come out in order; when every batch waits for the pipeline the capture
// worker waits too (so the ring, not the queue, absorbs the burst), and
// Close releases it; Next drains what was queued, then reports the end.
func TestLiveQueue(t *testing.T) {
	l, end := newTestLive(2, 100, 16)
	ring := make([]byte, 60) // the ring block, reused by the kernel
	write := func(b byte) {
		for i := range ring {
			ring[i] = b
		}
		if err := l.sink.WritePacket(t0.Add(time.Duration(b)*time.Millisecond), ring, 64); err != nil {
			t.Error(err)
		}
	}
	// Each 60-byte packet takes a 100-byte batch of its own: the third
	// must wait until the pipeline has emptied the first batch.
	write(1)
	write(2)
	wrote3 := make(chan struct{})
	go func() { write(3); close(wrote3) }()
	select {
	case <-wrote3:
		t.Fatal("the capture worker did not wait for a free batch")
	case <-time.After(50 * time.Millisecond):
	}
	next := func(want byte) {
		t.Helper()
		pk, err := l.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pk.Data, bytes.Repeat([]byte{want}, 60)) || pk.OrigLen != 64 || pk.LinkType != pkthdr.LinkEthernet ||
			!pk.Timestamp.Equal(t0.Add(time.Duration(want)*time.Millisecond)) {
			t.Fatalf("packet %d: %+v", want, pk)
		}
	}
	next(1)
	next(2) // recycles the first batch: the third packet goes in
	<-wrote3
	// The fourth packet closes the batch holding the third and waits for
	// another (Next still holds the second). Nobody reads any more: Close
	// must release the worker, the fourth packet discarded.
	closed := make(chan struct{})
	go func() { write(4); close(closed) }()
	time.Sleep(20 * time.Millisecond)
	l.cancel = func() { <-closed; end() } // the worker ends after its last packet
	go l.Close()
	select {
	case <-closed:
	case <-time.After(time.Second):
		t.Fatal("the capture worker still waits after Close")
	}
	next(3)
	if _, err := l.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the queue drained: %v", err)
	}
}

// TestLiveBatchPacketCap: a batch closes at its packet limit as well as
// its byte limit.
func TestLiveBatchPacketCap(t *testing.T) {
	l, end := newTestLive(4, 1<<10, 2)
	for i := 0; i < 5; i++ {
		l.sink.WritePacket(t0, []byte{byte(i)}, 1)
	}
	end()
	sizes := []int{}
	for b := range len(l.queue) {
		_ = b
		sizes = append(sizes, len((<-l.queue).pkts))
	}
	if len(sizes) != 3 || sizes[0] != 2 || sizes[1] != 2 || sizes[2] != 1 {
		t.Fatalf("batch sizes %v", sizes)
	}
}

// TestRunLiveBatches feeds a Live's batches to the pipeline without
// copying, recycles them, and ends with the source.
func TestRunLiveBatches(t *testing.T) {
	f, _ := psexecFlow()
	l, end := newTestLive(4, 4096, 8)
	go func() {
		for _, pk := range f.pkts {
			l.sink.WritePacket(pk.Timestamp, pk.Data, pk.OrigLen)
		}
		end()
	}()
	var ops []Operation
	st, err := RunLive(context.Background(), l, Config{}, time.Hour, func(o Operation) { ops = append(ops, o) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Packets != uint64(len(f.pkts)) || st.KernelDrops != 0 || st.Damaged() {
		t.Fatalf("stats %+v", st)
	}
	if find(ops, "rpc", "") == nil || find(ops, "file", "write file") == nil {
		t.Fatalf("operations %+v", ops)
	}
	if len(l.free) != 4 {
		t.Fatalf("%d of 4 batches recycled", len(l.free))
	}
}
