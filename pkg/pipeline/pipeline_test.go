package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/demogen"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/store"
)

// sample writes an hour of the demo network and returns its path and
// packets.
func sample(t *testing.T, dir string) (string, []pcapio.Packet) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := demogen.Generate(&buf, demogen.Config{Duration: time.Hour, Workstations: 8}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "all.pcap")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := pcapio.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var pkts []pcapio.Packet
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p.Data = slices.Clone(p.Data)
		pkts = append(pkts, p)
	}
	return path, pkts
}

// writeCapture writes packets as a pcap file.
func writeCapture(t *testing.T, path string, pkts []pcapio.Packet) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	w, err := pcapio.NewWriter(bw, pkts[0].LinkType, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(p.Timestamp, p.Data, p.OrigLen); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// key identifies a flow record for comparison: its 5-tuple, start and
// counts.
func key(r *flow.Record) string {
	return fmt.Sprintf("%d %s:%d>%s:%d %d %d/%d %d/%d", r.Proto, r.Orig, r.OrigPort, r.Resp, r.RespPort,
		r.First.UnixNano(), r.OrigPkts, r.RespPkts, r.OrigBytes, r.RespBytes)
}

func collectFlows(t *testing.T, in Input) []string {
	t.Helper()
	var got []string
	dmg, err := Flows(context.Background(), in, func(r *flow.Record) { got = append(got, key(r)) })
	if err != nil {
		t.Fatal(err)
	}
	if !dmg.Empty() {
		t.Fatalf("damage on clean input: %v", dmg.Places)
	}
	slices.Sort(got)
	return got
}

// A capture split into two files gives the same flows as the whole one
// (the files are merged by time, so connections spanning both are one
// record), and reading packets with a flow sink gives those flows too.
func TestFlowsSplitCaptureEqualsWhole(t *testing.T) {
	dir := t.TempDir()
	whole, pkts := sample(t, dir)
	var a, b []pcapio.Packet
	for i, p := range pkts {
		if i%3 == 0 {
			a = append(a, p)
		} else {
			b = append(b, p)
		}
	}
	pa, pb := filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcap")
	writeCapture(t, pa, a)
	writeCapture(t, pb, b)

	want := collectFlows(t, Input{Pcaps: []string{whole}})
	if len(want) < 100 {
		t.Fatalf("only %d flows in the sample", len(want))
	}
	if got := collectFlows(t, Input{Pcaps: []string{pa, pb}}); !slices.Equal(got, want) {
		t.Fatalf("split capture: %d flows, whole: %d", len(got), len(want))
	}

	var teed []string
	pk, err := OpenPackets(context.Background(), Input{Pcaps: []string{pb, pa}}, PacketOptions{Flows: func(r *flow.Record) { teed = append(teed, key(r)) }})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var last time.Time
	for {
		p, err := pk.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Timestamp.Before(last) {
			t.Fatalf("packet %d out of time order", n)
		}
		last = p.Timestamp
		n++
	}
	pk.Finish()
	pk.Close()
	if n != len(pkts) {
		t.Fatalf("OpenPackets gave %d packets, want %d", n, len(pkts))
	}
	slices.Sort(teed)
	if !slices.Equal(teed, want) {
		t.Fatalf("packets with a flow sink: %d flows, want %d", len(teed), len(want))
	}
}

// A store holding a capture gives hunt the same flows as the capture, and
// its packets all come back through OpenPackets.
func TestStoreFlowsEqualCapture(t *testing.T) {
	dir := t.TempDir()
	whole, pkts := sample(t, dir)
	st, err := store.Create(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.NewWriter(store.WriterOptions{ID: "t", NewFlows: NewFlowTable})
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapio.OpenFile(whole)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Import(w, whole, r, nil); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	want := collectFlows(t, Input{Pcaps: []string{whole}})
	if got := collectFlows(t, Input{Stores: []*store.Store{st}}); !slices.Equal(got, want) {
		t.Fatalf("store: %d flows, capture: %d", len(got), len(want))
	}
	var viaPackets []string
	pk, err := OpenPackets(context.Background(), Input{Stores: []*store.Store{st}}, PacketOptions{Flows: func(r *flow.Record) { viaPackets = append(viaPackets, key(r)) }})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := pk.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	pk.Finish()
	pk.Close()
	if n != len(pkts) {
		t.Fatalf("store packets: %d, want %d", n, len(pkts))
	}
	slices.Sort(viaPackets)
	if !slices.Equal(viaPackets, want) {
		t.Fatalf("store flows with packets: %d, want %d", len(viaPackets), len(want))
	}
}

// Damaged capture records are skipped and named; the valid packets around
// them still make their flows.
func TestFlowsDamagedCaptureNamed(t *testing.T) {
	dir := t.TempDir()
	whole, _ := sample(t, dir)
	data, err := os.ReadFile(whole)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the file in the middle of a record: the tail is damage.
	cut := filepath.Join(dir, "cut.pcap")
	if err := os.WriteFile(cut, data[:len(data)/2+7], 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	dmg, err := Flows(context.Background(), Input{Pcaps: []string{cut}}, func(*flow.Record) { n++ })
	if err != nil {
		t.Fatal(err)
	}
	if dmg.Empty() || len(dmg.Places) == 0 {
		t.Fatal("a cut capture reported no damage")
	}
	if !bytes.Contains([]byte(dmg.Places[0]), []byte("cut.pcap")) {
		t.Fatalf("damage does not name the file: %q", dmg.Places[0])
	}
	if n == 0 {
		t.Fatal("no flows from the valid half")
	}
}
