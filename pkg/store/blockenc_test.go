package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/capture/ringtest"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// TestBlocksReadByStockTools: shards written with capture's options, from
// floods of small frames (the record encoder's blocks) and from mixed
// traffic with payloads (the general encoder's), are read back by the
// reference zstd decoder into pcap that tcpdump reads whole and that holds
// every packet as written; floods shrink (tenfold with 64 flows, fourfold
// when every frame brings a random address and port).
func TestBlocksReadByStockTools(t *testing.T) {
	zstdCmd := testenv.Tool(t, "zstd")
	tcpdump := testenv.Tool(t, "tcpdump")
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	flood := func(flows int) []pcapio.Packet {
		fl := ringtest.NewFlood(flows, 64, start)
		out := make([]pcapio.Packet, 20000)
		for i := range out {
			f := fl.Frame(uint64(i))
			out[i] = pcapio.Packet{Timestamp: fl.Time(uint64(i)), Data: f, OrigLen: len(f)}
		}
		return out
	}
	for _, c := range []struct {
		name   string
		pkts   []pcapio.Packet
		shrink int // at least this factor
	}{
		{"64 flows", flood(64), 10},
		{"new flow every frame", flood(0), 4}, // random addresses and ports
		{"mixed", genPackets(20000, start), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := Create(dir)
			if err != nil {
				t.Fatal(err)
			}
			w, err := st.NewWriter(WriterOptions{ID: "c00", ShardSize: 1 << 20, BlockSize: 64 << 10, Compressors: 1, Inline: true, NewFlows: benchFlows})
			if err != nil {
				t.Fatal(err)
			}
			w.SetNanos(true)
			for _, p := range c.pkts {
				if err := w.Write(p.Timestamp, pkthdr.LinkEthernet, p.Data, p.OrigLen); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			ws := w.Stats()
			if ws.StoredRaw < uint64(c.shrink)*ws.Stored {
				t.Errorf("%d raw bytes stored in %d", ws.StoredRaw, ws.Stored)
			}
			shards, err := st.Shards()
			if err != nil || len(shards) < 2 {
				t.Fatalf("%d shards: %v", len(shards), err)
			}
			var got []pcapio.Packet
			for _, sh := range shards {
				plain, err := exec.Command(zstdCmd, "-dc", sh.ShardPath()).Output()
				if err != nil {
					t.Fatalf("zstd -dc %s: %v", sh.ShardPath(), err)
				}
				cmd := exec.Command(tcpdump, "--count", "-r", "-")
				cmd.Stdin = bytes.NewReader(plain)
				if out, err := cmd.Output(); err != nil {
					t.Fatalf("tcpdump -r on zstd -dc of %s: %v", sh.ShardPath(), err)
				} else {
					var lines int
					if _, err := fmt.Sscanf(string(out), "%d packets", &lines); err != nil {
						t.Fatalf("tcpdump --count: %q", out)
					}
					r, err := pcapio.NewReader(bytes.NewReader(plain))
					if err != nil {
						t.Fatal(err)
					}
					n := 0
					for {
						p, err := r.Next()
						if err != nil {
							break
						}
						got = append(got, pcapio.Packet{Timestamp: p.Timestamp, Data: bytes.Clone(p.Data), OrigLen: p.OrigLen})
						n++
					}
					if lines != n {
						t.Errorf("%s: tcpdump reads %d packets, our reader %d", sh.ShardPath(), lines, n)
					}
				}
			}
			if len(got) != len(c.pkts) {
				t.Fatalf("%d packets read back, %d written", len(got), len(c.pkts))
			}
			for i, p := range got {
				if w := c.pkts[i]; !p.Timestamp.Equal(w.Timestamp) || !bytes.Equal(p.Data, w.Data) || p.OrigLen != w.OrigLen {
					t.Fatalf("packet %d differs", i)
				}
			}
		})
	}
}

// TestIndexOncePerFlowBlock: recording a flow's keys once a block (the
// writer skips the index for a flow's later packets in the block) gives
// the same index files as indexing every packet, with one and two VLAN
// tags and non-IP frames in the mix.
func TestIndexOncePerFlowBlock(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(20000, start)
	for i := 0; i < len(pkts); i += 7 { // a second tag on some tagged frames
		f := pkts[i].Data
		if binary.BigEndian.Uint16(f[12:]) == 0x8100 {
			q := append(append(append([]byte{}, f[:12]...), 0x88, 0xa8, 0, byte(i%5)), f[12:]...)
			pkts[i].Data, pkts[i].OrigLen = q, len(q)
		}
	}
	for i := 3; i < len(pkts); i += 101 { // non-IP frames
		f := bytes.Clone(pkts[i].Data)
		binary.BigEndian.PutUint16(f[12:], 0x88cc)
		pkts[i].Data = f
	}
	write := func(flows func() FlowTable) map[string][]byte {
		dir := t.TempDir()
		st, err := Create(dir)
		if err != nil {
			t.Fatal(err)
		}
		w, err := st.NewWriter(WriterOptions{ID: "c00", ShardSize: 1 << 20, BlockSize: 8 << 10, Compressors: 1, Inline: true, NewFlows: flows})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			if err := w.Write(p.Timestamp, pkthdr.LinkEthernet, p.Data, p.OrigLen); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		shards, _ := st.Shards()
		out := map[string][]byte{}
		for _, sh := range shards {
			b, err := os.ReadFile(sh.Base + ".idx")
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(sh.Base)] = b
		}
		return out
	}
	with, without := write(benchFlows), write(nil)
	if len(with) < 2 || len(with) != len(without) {
		t.Fatalf("%d and %d index files", len(with), len(without))
	}
	for name, b := range with {
		if !bytes.Equal(b, without[name]) {
			t.Errorf("%s: the index differs when flows skip repeated keys", name)
		}
	}
}
