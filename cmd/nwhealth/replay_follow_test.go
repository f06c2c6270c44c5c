package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// TestReplayFollowStopsCleanly stops `replay --store --follow` (as SIGINT
// does, by its context) while a writer keeps adding shards, many times
// over: runReplay must not return, and close the follower, while its
// reader goroutine is still inside the follower (go test -race reported it).
func TestReplayFollowStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	st := tempStore(t)
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var files []string
	for i := range 8 {
		p := filepath.Join(dir, fmt.Sprintf("part%d.pcap", i))
		genCapture(t, p, pkthdr.LinkEthernet, 4000, start.Add(time.Duration(i)*time.Minute), false)
		files = append(files, p)
	}
	if code, _, e := nwh(t, nil, "import", "--store", st, "--block-size", "4K", files[0]); code != 0 {
		t.Fatalf("import: %s", e)
	}
	writerDone := make(chan struct{})
	// The writer reports through t: wait for it however the test ends.
	defer func() { <-writerDone }()
	go func() {
		defer close(writerDone)
		for _, f := range files[1:] {
			if code, _, e := nwh(t, nil, "import", "--store", st, "--block-size", "4K", f); code != 0 {
				t.Errorf("import while following: %s", e)
				return
			}
		}
	}()
	for round := 0; round < 20; round++ {
		var out, errOut syncBuffer
		ctx, cancel := context.WithCancel(context.Background())
		o := &replayOptions{s: streams{in: strings.NewReader(""), out: &out, errOut: &errOut}, store: []string{st},
			follow: true, format: "jsonl", statEvery: time.Minute, ringSize: "32MiB", ctx: ctx}
		o.sel.from = start.Format(time.RFC3339) // read from the start: the follower is busy when stopped
		ready := make(chan struct{})
		o.ready = func() { close(ready) }
		done := make(chan error, 1)
		go func() { done <- runReplay(o) }()
		select {
		case <-ready:
		case err := <-done:
			cancel()
			t.Fatalf("replay ended before starting: %v: %s", err, errOut.String())
		}
		time.Sleep(time.Duration(round%5) * 7 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: %v: %s", round, err, errOut.String())
			}
			jsonltest.Check(t, []byte(out.String()))
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: replay --follow did not stop", round)
		}
	}
}
