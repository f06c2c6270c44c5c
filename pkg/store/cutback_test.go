package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// TestCutBack: after a batch write that failed part way (a full disk), the
// shard file is cut back to its whole blocks and the next block lands
// right after them, not after the cut-off bytes (the file is not opened
// for appending, so its offset still pointed past them).
func TestCutBack(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	sw, err := pcapio.NewShardWriter(f, pcapio.ShardHeader{LinkType: pkthdr.LinkEthernet, Snaplen: 65535, Nanos: true, Created: time.Unix(1, 0), Writer: "t"}, enc)
	if err != nil {
		t.Fatal(err)
	}
	block := func(n int) pcapio.EncodedBlock {
		raw := pcapio.AppendRecord(nil, time.Unix(int64(n), 0), bytes.Repeat([]byte{byte(n)}, 100), 100, true)
		return pcapio.EncodeBlock(nil, enc, raw, n, int64(n)*1e9, int64(n)*1e9, 1)
	}
	if err := sw.Append(block(0)); err != nil {
		t.Fatal(err)
	}
	whole := sw.Size()
	if _, err := f.Write([]byte("part of a batch the disk had no room for")); err != nil {
		t.Fatal(err)
	}
	sh := &openShard{file: f, sw: sw}
	if err := cutBack(sh); err != nil {
		t.Fatal(err)
	}
	b := block(1)
	if err := sw.Append(b); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(b.Bytes))
	if _, err := f.ReadAt(got, whole); err != nil {
		t.Fatal(err)
	}
	if fi.Size() != sw.Size() || !bytes.Equal(got, b.Bytes) || sw.Blocks()[1].Offset != whole {
		t.Errorf("file %d bytes, shard %d; block at %d, after the cut %d; its bytes there: %v",
			fi.Size(), sw.Size(), sw.Blocks()[1].Offset, whole, bytes.Equal(got, b.Bytes))
	}
}
