//go:build linux

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/internal/netns"
	"github.com/nwhealth/nwhealth/internal/testenv"
)

// TestReplayLive runs `replay -i` in a namespace while tcpreplay sends the
// PsExec capture into it at top speed, stops it as SIGINT would, and checks
// the operations printed as they completed and the stats line with the
// capture's drops.
func TestReplayLive(t *testing.T) {
	testenv.Root(t)
	tcpreplay := testenv.Tool(t, "tcpreplay")
	f := testenv.SharedFile(t, "pcaps", "remote-ops", "pcap-attack", "LM_psexec_smb_dcerpc_epm_svcctl.pcapng")
	p := netns.NewPair(t)

	var out, errOut syncBuffer
	o := &replayOptions{s: streams{in: strings.NewReader(""), out: &out, errOut: &errOut}, live: openLive,
		iface: p.DevB, ringSize: "8MiB", format: "jsonl", stats: true, statEvery: time.Hour}
	ready := make(chan struct{})
	o.ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	o.ctx = ctx
	done := make(chan error, 1)
	go func() { done <- p.B.Do(func() error { return runReplay(o) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("replay ended before starting: %v: %s", err, errOut.String())
	}
	if b, err := p.A.Command(context.Background(), tcpreplay, "--topspeed", "-i", p.DevA, f).CombinedOutput(); err != nil {
		t.Fatalf("tcpreplay: %v %s", err, b)
	}
	// Operations print as they complete, within a second of their last
	// packet, not when replay stops.
	deadline := time.Now().Add(time.Second)
	for !strings.Contains(out.String(), `"operation":"StartServiceW"`) {
		if time.Now().After(deadline) {
			t.Errorf("StartServiceW not printed a second after the capture was sent:\n%s", out.String())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("replay: %v: %s", err, errOut.String())
	}
	jsonltest.Check(t, []byte(out.String()))
	for _, want := range []string{`"type":"operation"`, `"user":"backdoor"`, `"operation":"StartServiceW"`, `"target":"PSEXESVC"`, `"type":"story"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("live output lacks %s:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), "kernel_drops=0") {
		t.Errorf("stats line without the capture drops: %s", errOut.String())
	}
}
