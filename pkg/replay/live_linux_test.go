//go:build linux

package replay

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// TestLiveMatchesOffline replays the remote-operation captures at top
// speed over a veth pair into a namespace this test creates, runs live
// replay on the near end, and checks that it reports every operation that
// offline replay of the same file reports.
func TestLiveMatchesOffline(t *testing.T) {
	testenv.Root(t)
	tcpreplay := testenv.Tool(t, "tcpreplay")
	mergecap := testenv.Tool(t, "mergecap")
	editcap := testenv.Tool(t, "editcap")
	testenv.Tool(t, "ip")

	// One file of all captures (cut-short ones trimmed to whole packets).
	dir := t.TempDir()
	var clean []string
	for i, f := range sharedCaptures(t) {
		out := filepath.Join(dir, fmt.Sprintf("c%02d.pcap", i))
		exec.Command(editcap, "-F", "pcap", f, out).Run()
		if st, err := os.Stat(out); err == nil && st.Size() > 24 {
			clean = append(clean, out)
		}
	}
	merged := filepath.Join(dir, "all.pcap")
	// -a concatenates: the captures come from different years, and
	// tcpreplay --topspeed ignores the gaps anyway.
	if out, err := exec.Command(mergecap, append([]string{"-a", "-F", "pcap", "-w", merged}, clean...)...).CombinedOutput(); err != nil {
		t.Fatalf("mergecap: %v %s", err, out)
	}
	offline := opKeys(t, func(emit func(Operation)) {
		src, c, err := OpenFile(merged)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		Run(context.Background(), src, Config{}, emit)
	})

	ns, a, b := fmt.Sprintf("nwhreplay%d", os.Getpid()), fmt.Sprintf("nwhra%d", os.Getpid()%10000), fmt.Sprintf("nwhrb%d", os.Getpid()%10000)
	sh := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	sh("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", a).Run(); exec.Command("ip", "netns", "del", ns).Run() })
	sh("link", "add", a, "mtu", "65535", "type", "veth", "peer", "name", b, "mtu", "65535")
	sh("link", "set", b, "netns", ns)
	sh("link", "set", a, "up")
	sh("-n", ns, "link", "set", b, "up")

	src, err := OpenLive(LiveConfig{Interface: a})
	if err != nil {
		t.Fatalf("open %s: %v", a, err)
	}
	defer src.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []string)
	var st Stats
	go func() {
		var keys []string
		st, _ = RunLive(ctx, src, Config{}, 100*time.Millisecond, func(o Operation) { keys = append(keys, opKey(o)) }, nil)
		done <- keys
	}()
	time.Sleep(300 * time.Millisecond)
	if out, err := exec.Command("ip", "netns", "exec", ns, tcpreplay, "--topspeed", "-i", b, merged).CombinedOutput(); err != nil {
		t.Fatalf("tcpreplay: %v %s", err, out)
	}
	time.Sleep(time.Second)
	cancel()
	live := <-done
	sort.Strings(live)

	missing := diff(offline, live)
	if len(missing) > 0 {
		t.Errorf("live replay missed %d of %d operations, e.g. %v", len(missing), len(offline), missing[:min(5, len(missing))])
	}
	t.Logf("offline %d operations, live %d; %d packets, kernel drops %d", len(offline), len(live), st.Packets, st.KernelDrops)
}

// opKey names an operation independently of packet timestamps (live mode
// stamps packets on arrival).
func opKey(o Operation) string {
	return fmt.Sprintf("%s:%d>%s:%d %s %s %s %s %s", o.Src, o.SrcPort, o.Dst, o.DstPort, o.Account(), o.Interface, o.Operation, o.Target, o.Command)
}

func opKeys(t *testing.T, run func(func(Operation))) []string {
	var keys []string
	run(func(o Operation) { keys = append(keys, opKey(o)) })
	sort.Strings(keys)
	return keys
}

// diff returns the keys of want missing from got (both sorted, as multisets).
func diff(want, got []string) []string {
	var out []string
	i := 0
	for _, w := range want {
		for i < len(got) && got[i] < w {
			i++
		}
		if i < len(got) && got[i] == w {
			i++
			continue
		}
		out = append(out, w)
	}
	return out
}
