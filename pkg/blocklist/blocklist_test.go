package blocklist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/netns"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/intel"
	"github.com/nwhealth/nwhealth/pkg/report"
)

var hdr = Header{Generated: time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC), From: []string{"store s1"}}

func pfx(s string) netip.Prefix {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a := netip.MustParseAddr(s)
		return netip.PrefixFrom(a, a.BitLen())
	}
	return p
}

func sample() *List {
	l := New(nil)
	l.AddPrefix(pfx("203.0.113.77"), "I1 indicator indicator--aaa")
	l.AddPrefix(pfx("203.0.113.77"), "F2: block for 10.1.1.5")
	l.AddPrefix(pfx("198.51.100.0/24"), "I2 indicator partner.txt:3")
	l.AddPrefix(pfx("198.51.100.9"), "F3: block for 10.1.1.6") // inside the /24
	l.AddPrefix(pfx("2001:db8:bad::/48"), "I3 indicator indicator--bbb")
	l.AddPrefix(pfx("::ffff:192.0.2.10"), `I4 "quoted" \ evidence`)
	l.AddPrefix(pfx("10.1.2.3"), "I5 inside")                     // refused
	l.AddPrefix(pfx("0.0.0.0/0"), "I6 a feed listing everything") // refused: overlaps inside
	l.AddName("update.bad-cdn.example", "I7 indicator indicator--ccc")
	l.AddName("*.tracker.example", "I8 indicator partner.txt:5")
	l.AddName("a.tracker.example", "I9 under the wildcard")
	l.AddName("tracker.example", "I9 the wildcard's domain")
	return l
}

func TestEntries(t *testing.T) {
	l := sample()
	var got []string
	for _, e := range l.Entries() {
		got = append(got, e.Value()+" ["+strings.Join(e.Evidence, " | ")+"]")
	}
	want := []string{
		"192.0.2.10 [I4 \"quoted\" \\ evidence]",
		"198.51.100.0/24 [I2 indicator partner.txt:3 | F3: block for 10.1.1.6]",
		"203.0.113.77 [I1 indicator indicator--aaa | F2: block for 10.1.1.5]",
		"2001:db8:bad::/48 [I3 indicator indicator--bbb]",
		"*.tracker.example [I8 indicator partner.txt:5 | I9 the wildcard's domain | I9 under the wildcard]",
		"update.bad-cdn.example [I7 indicator indicator--ccc]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries\n %q\nwant\n %q", got, want)
	}
	if len(l.Refused) != 2 {
		t.Errorf("refused %q, want the inside address and 0.0.0.0/0", l.Refused)
	}
}

// The plain list is the list format nwhealth reads: what we write, we read
// back as the same entries.
func TestPlainRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := WritePlain(&b, sample().Entries(), hdr); err != nil {
		t.Fatal(err)
	}
	r := intel.NewReader()
	r.ReadList(&b, "blocklist.txt")
	s := r.Finish()
	if len(s.Problems) != 0 {
		t.Fatalf("problems reading our own list: %v\n%s", s.Problems, b.String())
	}
	var got []string
	for _, ind := range s.Indicators {
		got = append(got, ind.Name)
	}
	want := []string{"192.0.2.10", "198.51.100.0/24", "203.0.113.77", "2001:db8:bad::/48", "*.tracker.example", "update.bad-cdn.example"}
	if !slices.Equal(got, want) {
		t.Errorf("read back %q, want %q", got, want)
	}
}

func writeFile(t *testing.T, name string, write func(*bytes.Buffer) error) string {
	t.Helper()
	var b bytes.Buffer
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Squid's own parser reads a configuration that includes the ACL.
func TestSquidParses(t *testing.T) {
	squid := testenv.Tool(t, "squid")
	acl := writeFile(t, "nwhealth-block.conf", func(b *bytes.Buffer) error { return WriteSquid(b, sample().Entries(), hdr) })
	conf := filepath.Join(filepath.Dir(acl), "squid.conf")
	// A minimal proxy: the block list is included before the rule that
	// allows the local network, as the header asks.
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`http_port 127.0.0.1:3128
acl localnet src 10.0.0.0/8
include %s
http_access allow localnet
http_access deny all
pid_filename none
cache_log /dev/null
`, acl)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(squid, "-k", "parse", "-f", conf).CombinedOutput()
	if err != nil {
		t.Fatalf("squid -k parse: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "error") || strings.Contains(l, "warning") || strings.Contains(l, "fatal") {
			t.Errorf("squid: %s", line)
		}
	}
	for _, want := range []string{"dstdomain .tracker.example", "dst 198.51.100.0/24", "dst 2001:db8:bad::/48"} {
		if !strings.Contains(string(out), strings.Fields(want)[1]) {
			t.Errorf("squid did not read %q:\n%s", want, out)
		}
	}
	// A negative control: the same parse refuses an ACL name reused with
	// another type.
	bad := strings.Replace(string(mustRead(t, acl)), "dstdomain .tracker.example", "dst .tracker.example", 1)
	os.WriteFile(acl, []byte(bad), 0o644)
	if out, err := exec.Command(squid, "-k", "parse", "-f", conf).CombinedOutput(); err == nil {
		t.Errorf("squid accepted a broken ACL:\n%s", out)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The nft script loads into a namespace's nftables and drops traffic to a
// listed address while traffic to another address of the same host
// passes.
func TestNFTDropsListedTraffic(t *testing.T) {
	testenv.Root(t)
	testenv.Tool(t, "nft")
	p := netns.NewPair(t)
	// B answers on its pair address and on a second one; A reaches the
	// second through the veth as well.
	other := p.AddrB.Next().Next().Next().Next() // 198.18.n.6: outside the /30
	if out, err := exec.Command("ip", "-n", p.B.Name, "addr", "add", other.String()+"/32", "dev", p.DevB).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("ip", "-n", p.A.Name, "route", "add", other.String()+"/32", "dev", p.DevA).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var ln net.Listener
	if err := p.B.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", ":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	dial := func(a netip.Addr) error {
		return p.A.Do(func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(a, uint16(port)).String(), 700*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	for _, a := range []netip.Addr{p.AddrB, other} {
		if err := dial(a); err != nil {
			t.Fatalf("before the block list, %s: %v", a, err)
		}
	}
	l := sample()
	l.AddPrefix(netip.PrefixFrom(p.AddrB, 32), "I10 indicator indicator--test")
	var script bytes.Buffer
	if err := WriteNFT(&script, l.Entries(), hdr); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nftInA := []string{"ip", "netns", "exec", p.A.Name, "nft"}
	if err := ApplyNFT(ctx, script.Bytes(), nftInA); err != nil {
		t.Fatalf("%v\n%s", err, script.String())
	}
	// Loading twice replaces the table (the script is idempotent).
	if err := ApplyNFT(ctx, script.Bytes(), nftInA); err != nil {
		t.Fatalf("second load: %v", err)
	}
	err := dial(p.AddrB)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("to the listed %s: %v, want a time-out (dropped)", p.AddrB, err)
	}
	if err := dial(other); err != nil {
		t.Errorf("to %s, not listed: %v", other, err)
	}
	out, err := p.A.Command(ctx, "nft", "list", "table", "inet", Table).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{p.AddrB.String() + ` comment "I10 indicator indicator--test"`, `198.51.100.0/24 comment "I2 indicator partner.txt:3; F3: block for 10.1.1.6"`,
		`2001:db8:bad::/48 comment "I3 indicator indicator--bbb"`, `192.0.2.10 comment "I4 _quoted_ _ evidence"`, "daddr @block4 counter packets"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nft list lacks %q:\n%s", want, out)
		}
	}
	// The host's own nftables were never touched.
	if out, err := exec.Command("nft", "list", "table", "inet", Table).CombinedOutput(); err == nil {
		t.Errorf("table inet %s exists outside the namespace:\n%s", Table, out)
	}
}

func TestNFTEmpty(t *testing.T) {
	var b bytes.Buffer
	if err := WriteNFT(&b, nil, hdr); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "elements") {
		t.Errorf("empty sets with elements:\n%s", b.String())
	}
	if nft, err := exec.LookPath("nft"); err == nil && os.Geteuid() == 0 {
		p := filepath.Join(t.TempDir(), "empty.nft")
		os.WriteFile(p, b.Bytes(), 0o644)
		// -c checks the script without loading it.
		if out, err := exec.Command(nft, "-c", "-f", p).CombinedOutput(); err != nil {
			t.Errorf("nft -c: %v\n%s\n%s", err, out, b.String())
		}
	}
}

// Names reach the lists from packets (DNS, SNI, Host) and from feeds; a
// name that is no host name must not add a line of its own to the nft
// script or the squid configuration (nft -f runs as root).
func TestHostileNames(t *testing.T) {
	hostile := []string{
		"evil.example\nflush ruleset",
		"evil.example\nflush",                 // no blank: one word a line of its own
		"*.evil.example\r\nshutdown_lifetime", // squid: an unknown directive, a broken configuration
		"evil.example\r\nhttp_access allow all",
		"evil.example }\ntable ip x { chain y { type filter hook input priority 0; policy drop; } }",
		"*.evil.example\ninclude \"/etc/shadow\"",
		"evil.example#x",
		"evil.example\x00.good.example",
		"ev\u0131l.example", // dotless i: not ASCII
		"-evil.example",
		strings.Repeat("a", 64) + ".example",
		strings.Repeat("a.", 127) + "example",
		"*.",
	}
	l := New(nil)
	l.AddName("ok.example", "I1")
	for i, n := range hostile {
		switch i % 3 {
		case 0:
			l.AddName(n, fmt.Sprintf("I%d", i))
		case 1:
			l.AddMatch(fmt.Sprintf("I%d", i), &intel.Match{Indicator: &intel.Indicator{ID: "indicator--x"}, Values: []string{n}})
		case 2:
			l.AddSubjects([]report.Subject{{Host: netip.MustParseAddr("10.1.1.5"), Severity: report.SevHigh, Score: 0.9, Beacon: true,
				Dest: netip.MustParseAddr("203.0.113.9"), DestName: n}})
		}
	}
	entries := l.Entries()
	var names []string
	for _, e := range entries {
		if e.Name != "" {
			names = append(names, e.Name)
		}
	}
	if !slices.Equal(names, []string{"ok.example"}) {
		t.Errorf("names %q, want only ok.example", names)
	}
	if len(l.Refused) != len(hostile) {
		t.Errorf("%d refused, want %d: %q", len(l.Refused), len(hostile), l.Refused)
	}
	for _, r := range l.Refused {
		if strings.ContainsAny(r, "\n\r\x00") {
			t.Errorf("refusal message holds a control character: %q", r)
		}
	}
	h := Header{Generated: hdr.Generated, From: []string{"capture\nflush ruleset.pcap"}}
	for _, as := range []string{"nft", "squid", "plain"} {
		var b bytes.Buffer
		if err := Write(&b, as, entries, h); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(b.String(), "\n") {
			line = strings.TrimSpace(line)
			for _, bad := range []string{"flush", "shutdown_lifetime", "http_access allow", "table ip x", "include"} {
				if strings.HasPrefix(line, bad) {
					t.Errorf("%s: injected line %q:\n%s", as, line, b.String())
				}
			}
		}
		if as == "nft" {
			if nft, err := exec.LookPath("nft"); err == nil && os.Geteuid() == 0 {
				p := filepath.Join(t.TempDir(), "hostile.nft")
				os.WriteFile(p, b.Bytes(), 0o644)
				if out, err := exec.Command(nft, "-c", "-f", p).CombinedOutput(); err != nil {
					t.Errorf("nft -c: %v\n%s\n%s", err, out, b.String())
				}
			}
		}
	}
}

// nft gets nwhealth's environment without its credentials.
func TestApplyNFTEnvironment(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "blocklist-secret-0123456789")
	t.Setenv("CLICKHOUSE_PASSWORD", "blocklist-password-0123456789")
	out := filepath.Join(t.TempDir(), "env")
	// Stands in for nft: writes its environment (the script path
	// follows as "-f FILE").
	if err := ApplyNFT(context.Background(), []byte("table inet nwhealth\n"), []string{"sh", "-c", "env > " + out, "sh"}); err != nil {
		t.Fatal(err)
	}
	env := string(mustRead(t, out))
	if strings.Contains(env, "blocklist-secret") || strings.Contains(env, "blocklist-password") || !strings.Contains(env, "PATH=") {
		t.Errorf("nft's environment:\n%s", env)
	}
}
