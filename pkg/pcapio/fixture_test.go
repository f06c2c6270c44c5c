package pcapio

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// TestShardFixtures reads the checked-in shards of each format version
// (written by the build that introduced it) and compares their packets
// with what the zstd command-line tool decompresses them to: a pcap file,
// whose packet count tcpdump confirms (but for version 2's record of
// 300,000 bytes, longer than tcpdump reads).
func TestShardFixtures(t *testing.T) {
	zstdCmd := testenv.Tool(t, "zstd")
	tcpdump := testenv.Tool(t, "tcpdump")
	for _, tc := range []struct {
		file    string
		version int
		sealed  bool
		big     bool // holds a record over 262,144 bytes, which tcpdump refuses
	}{
		{"testdata/v1.shard", 1, true, false},
		{"testdata/v1-open.shard", 1, false, false},
		{"testdata/v2.shard", 2, true, true},
	} {
		b, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		sh, got, errs := readShard(t, b)
		if len(errs) != 0 || sh.Sealed != tc.sealed || sh.Header.Version != tc.version || len(got) == 0 {
			t.Fatalf("%s: sealed %v, version %d, %d packets, errors %v", tc.file, sh.Sealed, sh.Header.Version, len(got), errs)
		}
		plain, err := exec.Command(zstdCmd, "-dc", tc.file).Output()
		if err != nil {
			t.Fatalf("zstd -dc %s: %v", tc.file, err)
		}
		want := readAllPackets(t, plain)
		if len(want) != len(got) {
			t.Fatalf("%s: %d packets, zstd -dc gives %d", tc.file, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i].Data, want[i].Data) || !got[i].Timestamp.Equal(want[i].Timestamp) || got[i].OrigLen != want[i].OrigLen {
				t.Fatalf("%s: packet %d differs from zstd -dc's", tc.file, i)
			}
		}
		if tc.big {
			if len(got[20].Data) != 300000 {
				t.Errorf("%s: the large record holds %d bytes", tc.file, len(got[20].Data))
			}
			continue
		}
		cmd := exec.Command(tcpdump, "-nn", "-r", "-")
		cmd.Stdin = bytes.NewReader(plain)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tcpdump: %v", err)
		}
		if n := strings.Count(string(out), "\n"); n != len(got) {
			t.Errorf("%s: tcpdump reads %d packets, we %d", tc.file, n, len(got))
		}
	}
}
