package blocklist

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/internal/childenv"
)

// Table is the nftables table the nft output defines (family inet, so
// one table covers IPv4 and IPv6).
const Table = "nwhealth"

// maxComment is below nftables' limit of 128 bytes for an element comment.
const maxComment = 120

// Header says what a list is and when it was made.
type Header struct {
	Generated time.Time
	From      []string // inputs
}

func (h Header) lines(w *bufio.Writer, prefix string, entries []Entry) {
	// The inputs are file and store names: a newline in one must not end
	// the comment.
	fmt.Fprintf(w, "%snwhealth blocklist, generated %s from %s\n", prefix, h.Generated.UTC().Format(time.RFC3339), orNone(printable(strings.Join(h.From, ", "))))
	var addrs, names int
	for _, e := range entries {
		if e.Name != "" {
			names++
		} else {
			addrs++
		}
	}
	fmt.Fprintf(w, "%s%d addresses or networks, %d domains; each with its evidence (finding and indicator ids)\n", prefix, addrs, names)
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printable replaces everything but printable ASCII, quotes and
// backslashes with '_' (the nft grammar has no escapes in strings).
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// safeComment keeps printable ASCII without quotes or backslashes and
// clips it.
func safeComment(parts []string) string {
	s := printable(strings.Join(parts, "; "))
	if len(s) > maxComment {
		s = s[:maxComment-3] + "..."
	}
	return s
}

// WriteNFT writes an nftables script (load it with `nft -f`) defining
// table inet nwhealth: sets block4 and block6 (interval sets: addresses
// and networks, a comment per element naming its evidence) and chains
// dropping traffic to them (output, forward) and from them (input,
// forward). Loading it again replaces the table whole, in one
// transaction. Domains are not in it: nftables matches addresses, so
// names go to the Squid ACL.
func WriteNFT(out io.Writer, entries []Entry, h Header) error {
	w := bufio.NewWriter(out)
	h.lines(w, "# ", entries)
	fmt.Fprintf(w, "# load: nft -f FILE (replaces table inet %s); remove: nft delete table inet %s\n", Table, Table)
	// Declaring the table first makes the delete valid when it does not
	// exist yet; the whole file is one transaction.
	fmt.Fprintf(w, "table inet %s\ndelete table inet %s\ntable inet %s {\n", Table, Table, Table)
	for _, fam := range []struct {
		set, typ string
		v4       bool
	}{{"block4", "ipv4_addr", true}, {"block6", "ipv6_addr", false}} {
		fmt.Fprintf(w, "\tset %s {\n\t\ttype %s\n\t\tflags interval\n", fam.set, fam.typ)
		var elems []string
		for _, e := range entries {
			if e.Name != "" || e.Prefix.Addr().Is4() != fam.v4 {
				continue
			}
			elems = append(elems, fmt.Sprintf("\t\t\t%s comment \"%s\"", e.Value(), safeComment(e.Evidence)))
		}
		if len(elems) > 0 {
			fmt.Fprintf(w, "\t\telements = {\n%s\n\t\t}\n", strings.Join(elems, ",\n"))
		}
		fmt.Fprintf(w, "\t}\n")
	}
	for _, ch := range []struct {
		name, hook string
		dirs       []string
	}{{"input", "input", []string{"saddr"}}, {"output", "output", []string{"daddr"}}, {"forward", "forward", []string{"saddr", "daddr"}}} {
		fmt.Fprintf(w, "\tchain %s {\n\t\ttype filter hook %s priority filter; policy accept;\n", ch.name, ch.hook)
		for _, d := range ch.dirs {
			fmt.Fprintf(w, "\t\tip %s @block4 counter drop\n\t\tip6 %s @block6 counter drop\n", d, d)
		}
		fmt.Fprintf(w, "\t}\n")
	}
	fmt.Fprintf(w, "}\n")
	for _, e := range entries {
		if e.Name != "" {
			fmt.Fprintf(w, "# not in the sets (a domain; see the squid list): %s\n", e.Name)
		}
	}
	return w.Flush()
}

// ACL names of the Squid output.
const (
	SquidDstACL    = "nwhealth_block_dst"
	SquidDomainACL = "nwhealth_block_domain"
)

// WriteSquid writes Squid configuration lines to include in squid.conf
// before the http_access rules that allow traffic: acl dst (addresses and
// networks) and acl dstdomain (".domain" for *.domain), each element
// after a comment naming its evidence, and http_access deny for each ACL
// that has elements.
func WriteSquid(out io.Writer, entries []Entry, h Header) error {
	w := bufio.NewWriter(out)
	h.lines(w, "# ", entries)
	fmt.Fprintf(w, "# include in squid.conf before the http_access rules that allow traffic\n")
	var dst, dom bool
	for _, e := range entries {
		fmt.Fprintf(w, "# %s\n", safeComment(e.Evidence))
		if e.Name == "" {
			fmt.Fprintf(w, "acl %s dst %s\n", SquidDstACL, e.Prefix)
			dst = true
			continue
		}
		n := e.Name
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			n = "." + rest
		}
		fmt.Fprintf(w, "acl %s dstdomain %s\n", SquidDomainACL, n)
		dom = true
	}
	if dst {
		fmt.Fprintf(w, "http_access deny %s\n", SquidDstACL)
	}
	if dom {
		fmt.Fprintf(w, "http_access deny %s\n", SquidDomainACL)
	}
	return w.Flush()
}

// WritePlain writes one entry a line, each after a comment with its
// evidence: the plain list format nwhealth reads with --indicators.
func WritePlain(out io.Writer, entries []Entry, h Header) error {
	w := bufio.NewWriter(out)
	h.lines(w, "# ", entries)
	for _, e := range entries {
		fmt.Fprintf(w, "%s # %s\n", e.Value(), safeComment(e.Evidence))
	}
	return w.Flush()
}

// Write writes entries in the format named by as: nft, squid or plain.
func Write(out io.Writer, as string, entries []Entry, h Header) error {
	switch as {
	case "nft":
		return WriteNFT(out, entries, h)
	case "squid":
		return WriteSquid(out, entries, h)
	case "plain":
		return WritePlain(out, entries, h)
	}
	return fmt.Errorf("blocklist format %q: want nft, squid or plain", as)
}

// ApplyNFT loads an nft script with `nft -f` (the caller asked for it:
// nothing is applied otherwise). nft is the command to run, nil for
// "nft" ("ip netns exec NS nft" loads it in a namespace). nft's own
// message is in the error.
func ApplyNFT(ctx context.Context, script []byte, nft []string) error {
	if len(nft) == 0 {
		nft = []string{"nft"}
	}
	f, err := os.CreateTemp("", "nwhealth-block-*.nft")
	if err != nil {
		return fmt.Errorf("apply nft: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(script); err != nil {
		f.Close()
		return fmt.Errorf("apply nft: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("apply nft: %w", err)
	}
	args := append(append([]string{}, nft[1:]...), "-f", f.Name())
	cmd := exec.CommandContext(ctx, nft[0], args...)
	cmd.Env = childenv.Environ()
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apply nft: %s -f: %v: %s", strings.Join(nft, " "), err, strings.TrimSpace(string(msg)))
	}
	return nil
}
