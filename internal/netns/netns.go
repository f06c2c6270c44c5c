//go:build linux

// Package netns builds throw-away network namespaces joined by veth pairs for
// tests that need real traffic: live capture now, live replay later. Nothing
// it creates is reachable from the host's own interfaces, so test traffic
// never leaves the machine.
//
// Namespaces are made with ip(8) (so `ip netns exec` works for the tools the
// tests run inside them) and named "nwh-<pid>-<n>"; each is deleted by
// t.Cleanup, and ones left behind by a test binary that was killed are swept
// the next time any test here creates one.
//
// Code that must itself open sockets inside a namespace uses (*NS).Do, which
// runs a function on an OS thread switched into it; sockets opened there
// stay in that namespace after the thread switches back.
package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// namePrefix starts every namespace this package makes; the pid after it
// lets a later run find namespaces whose creator died.
const namePrefix = "nwh-"

// runDir is where ip(8) keeps named namespaces.
const runDir = "/run/netns"

var seq atomic.Uint32

// NS is one network namespace.
type NS struct {
	Name string
}

// Available reports why namespaces cannot be made here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("ip (iproute2) not installed: %w", err)
	}
	return nil
}

// New creates an empty namespace with loopback up and IPv6 off (so the
// kernel sends no router solicitations or MLD reports that would add
// packets a test did not send). It is deleted when the test ends. The test
// is skipped when namespaces cannot be made.
func New(t testing.TB) *NS {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	sweep()
	ns := &NS{Name: fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), seq.Add(1))}
	if err := ip("netns", "add", ns.Name); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := ip("netns", "del", ns.Name); err != nil {
			t.Errorf("delete namespace: %v", err)
		}
	})
	for _, p := range []string{"all", "default"} {
		if err := ns.sysctl("net/ipv6/conf/"+p+"/disable_ipv6", "1"); err != nil {
			t.Fatalf("namespace %s: %v", ns.Name, err)
		}
	}
	if err := ip("-n", ns.Name, "link", "set", "lo", "up"); err != nil {
		t.Fatalf("namespace %s: %v", ns.Name, err)
	}
	return ns
}

// sysctl writes a per-namespace setting from a thread inside ns: /proc/sys/net
// shows the namespace of the thread that opens it.
func (ns *NS) sysctl(key, value string) error {
	return ns.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
}

// Do runs fn on an OS thread switched into the namespace, then switches the
// thread back. Sockets fn opens belong to the namespace for their lifetime
// and may be used from any goroutine afterwards. If the thread cannot be
// switched back it is left locked, so the runtime discards it.
func (ns *NS) Do(fn func() error) error {
	target, err := os.Open(filepath.Join(runDir, ns.Name))
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", ns.Name, err)
	}
	defer target.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("open current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter namespace %s: %w", ns.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the goroutine exits and the thread dies with it.
			done <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", ns.Name, err))
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// Command returns a command that runs inside the namespace.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// LinkStats are an interface's kernel counters.
type LinkStats struct {
	RxPackets, RxDropped, TxPackets, TxDropped uint64
}

// Stats reads an interface's counters inside the namespace.
func (ns *NS) Stats(dev string) (LinkStats, error) {
	out, err := exec.Command("ip", "-n", ns.Name, "-j", "-s", "link", "show", "dev", dev).Output()
	if err != nil {
		return LinkStats{}, fmt.Errorf("link stats %s/%s: %w", ns.Name, dev, exitDetail(err))
	}
	var links []struct {
		Stats64 struct {
			Rx struct{ Packets, Dropped uint64 }
			Tx struct{ Packets, Dropped uint64 }
		}
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return LinkStats{}, fmt.Errorf("link stats %s/%s: unexpected output %q", ns.Name, dev, out)
	}
	s := links[0].Stats64
	return LinkStats{RxPackets: s.Rx.Packets, RxDropped: s.Rx.Dropped, TxPackets: s.Tx.Packets, TxDropped: s.Tx.Dropped}, nil
}

// Pair is two namespaces joined by a veth pair: traffic sent on DevA in A
// arrives on DevB in B.
type Pair struct {
	A, B         *NS
	DevA, DevB   string
	MACA, MACB   net.HardwareAddr
	AddrA, AddrB netip.Addr // from 198.18.0.0/15, the range set aside for benchmarking (RFC 2544)
}

// NewPair creates two namespaces and a veth pair between them, both ends up
// and addressed. Everything is removed when the test ends.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	a, b := New(t), New(t)
	n := seq.Add(1)
	p := &Pair{
		A: a, B: b,
		// Interface names are at most 15 bytes; the pid and sequence keep
		// them unique even if namespaces were shared.
		DevA: fmt.Sprintf("nw%x%xa", os.Getpid()&0xfffff, n&0xfff),
		DevB: fmt.Sprintf("nw%x%xb", os.Getpid()&0xfffff, n&0xfff),
		// Locally administered unicast addresses.
		MACA:  net.HardwareAddr{0x02, 0x6e, 0x77, 0x68, byte(n >> 8), 0x0a},
		MACB:  net.HardwareAddr{0x02, 0x6e, 0x77, 0x68, byte(n >> 8), 0x0b},
		AddrA: netip.AddrFrom4([4]byte{198, 18, byte(n), 1}),
		AddrB: netip.AddrFrom4([4]byte{198, 18, byte(n), 2}),
	}
	if err := ip("link", "add", p.DevA, "netns", a.Name, "address", p.MACA.String(), "type", "veth",
		"peer", "name", p.DevB, "netns", b.Name, "address", p.MACB.String()); err != nil {
		t.Fatalf("create veth pair: %v", err)
	}
	for _, side := range []struct {
		ns   *NS
		dev  string
		addr netip.Addr
	}{{a, p.DevA, p.AddrA}, {b, p.DevB, p.AddrB}} {
		if err := ip("-n", side.ns.Name, "addr", "add", netip.PrefixFrom(side.addr, 30).String(), "dev", side.dev); err != nil {
			t.Fatal(err)
		}
		if err := ip("-n", side.ns.Name, "link", "set", side.dev, "up"); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// ip runs ip(8) and folds its stderr into the error.
func ip(args ...string) error {
	cmd := exec.Command("ip", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// sweep deletes namespaces made by test processes that no longer exist
// (killed by a timeout before their cleanup ran).
func sweep() {
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		_ = ip("netns", "del", e.Name())
	}
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// exitDetail adds a failed command's stderr to its error.
func exitDetail(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
