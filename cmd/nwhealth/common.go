package main

import (
	"fmt"
	"io"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pcapfilter"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/store"
	"github.com/spf13/cobra"
)

// parseTime accepts RFC 3339 (with or without fraction or zone; no zone
// means UTC), a date, a Unix timestamp, or a time relative to now: "-2h",
// "-30m", "-7d", "now".
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if s == "now" {
		return now, nil
	}
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		d, err := parseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("relative time %q: %w", s, err)
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 1e8 {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-03-02T09:00:00Z), a date, or relative (-2h, -7d)", s)
}

// parseDuration is time.ParseDuration plus days ("7d", "1d12h"). It takes
// no sign: callers that accept one ("-2h" as a time) strip it first, so
// "-3d" as a length is an error rather than a negative age.
func parseDuration(s string) (time.Duration, error) {
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("duration %q: want a length without a sign, like 30d or 12h", s)
	}
	var total time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || math.IsNaN(days) || days < 0 || days > maxDays {
			return 0, fmt.Errorf("duration %q: want days like 30d (at most %d)", s, maxDays)
		}
		total = time.Duration(days * 24 * float64(time.Hour))
		s = s[i+1:]
		if s == "" {
			return total, nil
		}
		if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
			return 0, fmt.Errorf("duration %q: sign after the days", s)
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d > math.MaxInt64-total {
		return 0, fmt.Errorf("duration %q: too long", s)
	}
	return total + d, nil
}

// maxDays keeps a day count inside time.Duration (292 years).
const maxDays = 100000

// parseAge reads the length of a flag that must be positive (--max-age).
func parseAge(flag, s string) (time.Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, usagef("%s: %v", flag, err)
	}
	if d <= 0 {
		return 0, usagef("%s %q: want a positive length like 30d", flag, s)
	}
	return d, nil
}

// parseSize reads "500M", "10G", "1.5T" (binary units) or plain bytes.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	if s == "" {
		return 0, nil
	}
	orig := s
	mult := int64(1)
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:n-1]
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	// NaN fails every comparison, so it is refused by the first one.
	if err != nil || !(f >= 0) || f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: want bytes or a number with K, M, G or T", orig)
	}
	return int64(f * float64(mult)), nil
}

// selectorFlags are the packet selectors shared by query, flows, replay,
// hunt and report.
type selectorFlags struct {
	from, to string
	hosts    []string
	nets     []string
	ports    []uint
	protos   []string
	vlans    []uint
	filter   string
}

func (f *selectorFlags) register(cmd *cobra.Command, withFilter bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.from, "from", "", "start time, inclusive (RFC 3339, date, or relative like -2h)")
	fl.StringVar(&f.to, "to", "", "end time, exclusive")
	fl.StringArrayVar(&f.hosts, "host", nil, "IP address (repeatable: any of them)")
	fl.StringArrayVar(&f.nets, "net", nil, "CIDR (repeatable)")
	fl.UintSliceVar(&f.ports, "port", nil, "TCP/UDP/SCTP port, source or destination (repeatable)")
	fl.StringArrayVar(&f.protos, "proto", nil, "tcp, udp, icmp, icmp6, sctp or a protocol number (repeatable)")
	fl.UintSliceVar(&f.vlans, "vlan", nil, "VLAN id anywhere in the tag stack (repeatable)")
	if withFilter {
		fl.StringVar(&f.filter, "filter", "", "tcpdump filter expression (pcap-filter(7)), applied exactly as tcpdump does")
	}
}

var protoNames = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "icmpv6": 58, "sctp": 132, "gre": 47, "esp": 50, "ah": 51}

func (f *selectorFlags) selector(now time.Time) (store.Selector, error) {
	var sel store.Selector
	var err error
	if sel.From, err = parseTime(f.from, now); err != nil {
		return sel, usagef("--from: %v", err)
	}
	if sel.To, err = parseTime(f.to, now); err != nil {
		return sel, usagef("--to: %v", err)
	}
	if !sel.From.IsZero() && !sel.To.IsZero() && !sel.From.Before(sel.To) {
		return sel, usagef("--from %s is not before --to %s", sel.From.Format(time.RFC3339), sel.To.Format(time.RFC3339))
	}
	for _, h := range f.hosts {
		a, err := netip.ParseAddr(h)
		if err != nil {
			return sel, usagef("--host %q: not an IP address", h)
		}
		sel.Hosts = append(sel.Hosts, a.Unmap())
	}
	for _, n := range f.nets {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return sel, usagef("--net %q: not a CIDR", n)
		}
		sel.Nets = append(sel.Nets, p.Masked())
	}
	for _, p := range f.ports {
		if p > 65535 {
			return sel, usagef("--port %d out of range", p)
		}
		sel.Ports = append(sel.Ports, uint16(p))
	}
	for _, p := range f.protos {
		if n, ok := protoNames[strings.ToLower(p)]; ok {
			sel.Protos = append(sel.Protos, n)
			continue
		}
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			return sel, usagef("--proto %q: want tcp, udp, icmp, icmp6, sctp or a number", p)
		}
		sel.Protos = append(sel.Protos, uint8(n))
	}
	for _, v := range f.vlans {
		if v > 4095 {
			return sel, usagef("--vlan %d out of range", v)
		}
		sel.VLANs = append(sel.VLANs, uint16(v))
	}
	if f.filter != "" {
		flt, err := pcapfilter.Compile(f.filter)
		if err != nil {
			return sel, usagef("--filter: %v", err)
		}
		sel.Filter = flt
	}
	return sel, nil
}

// openStores opens every --store directory for reading.
func openStores(dirs []string) ([]*store.Store, error) {
	if len(dirs) == 0 {
		return nil, usagef("--store is required")
	}
	var out []*store.Store
	for _, d := range dirs {
		st, err := store.Open(d)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// humanBytes prints a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// maxReported bounds the damaged places printed per command.
const maxReported = 10

// printDamage names the skipped input on stderr, the first places and a count.
func printDamage(w io.Writer, cmd string, d pipeline.Damage) {
	for _, u := range d.Unused {
		fmt.Fprintf(w, "%s: %s\n", cmd, u)
	}
	shown := 0
	for i, p := range d.Places {
		if i == maxReported {
			break
		}
		fmt.Fprintf(w, "%s: damaged input skipped: %s\n", cmd, p)
		if i < len(d.Counts) {
			shown += d.Counts[i]
		} else {
			shown++
		}
	}
	if more := d.Count - shown; more > 0 {
		fmt.Fprintf(w, "%s: ... %d more damaged places\n", cmd, more)
	}
}
