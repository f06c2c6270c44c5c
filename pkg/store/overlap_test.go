package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// TestManyOverlappingBlocks queries a store where more blocks overlap in
// time than a query reads ahead: a capture's fanout workers each write
// their own shards, so with many workers every instant is covered by as
// many blocks. The merge must still deliver every packet in time order.
func TestManyOverlappingBlocks(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(24000, start)
	dir := t.TempDir()
	st, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 40
	var ws []*Writer
	for i := range writers {
		w, err := st.NewWriter(WriterOptions{ID: fmt.Sprintf("w%02d", i), BlockSize: 4 << 10})
		if err != nil {
			t.Fatal(err)
		}
		w.SetNanos(true)
		ws = append(ws, w)
	}
	// Round robin: each writer's blocks span the same stretch of time as
	// every other writer's.
	for i, p := range pkts {
		if err := ws[i%writers].Write(p.Timestamp, p.LinkType, p.Data, p.OrigLen); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range ws {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan []pcapio.Packet)
	go func() {
		got, err := runQuery(t, []*Store{st}, Selector{})
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	select {
	case got := <-done:
		samePackets(t, got, pkts)
	case <-time.After(30 * time.Second):
		t.Fatal("query did not finish: the merge waits for more overlapping blocks than it reads ahead")
	}
}
