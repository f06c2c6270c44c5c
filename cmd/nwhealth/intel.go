package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/nwhealth/nwhealth/pkg/blocklist"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/intel"
)

// intelFlags are the threat-intelligence flags hunt and report share:
// indicators in, block lists out.
type intelFlags struct {
	files []string
	as    string // blocklist flavour
	apply string // "nft": load the nft set
	// nft is the command --apply runs (tests run it in a namespace).
	nft []string

	set  *intel.Set
	coll *intel.Collector
}

func (f *intelFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.files, "indicators", nil, "retro-hunt shared indicators: STIX 2.1 bundles or plain lists (IP, CIDR, domain, URL a line): several after one --indicators, or repeat it")
	multiValue(fl, "indicators")
	fl.StringVar(&f.as, "as", "nft", "with --format blocklist: nft, squid or plain")
	fl.StringVar(&f.apply, "apply", "", "load what is to be blocked into the firewall: nft (runs nft -f)")
}

// check validates the flags; format is the command's --format.
func (f *intelFlags) check(format string) error {
	if f.as == "" { // options built without the flags (tests): the flag's default
		f.as = "nft"
	}
	switch f.as {
	case "nft", "squid", "plain":
	default:
		return usagef("--as must be nft, squid or plain, not %q", f.as)
	}
	if f.as != "nft" && format != "blocklist" {
		return usagef("--as goes with --format blocklist")
	}
	if f.apply != "" && f.apply != "nft" {
		return usagef("--apply takes nft, not %q", f.apply)
	}
	return nil
}

// load reads the indicator files and starts a collector; every problem is
// named on stderr.
func (f *intelFlags) load(in io.Reader, errOut io.Writer, cmd string) error {
	if len(f.files) == 0 {
		return nil
	}
	set, err := intel.Load(f.files, in)
	if err != nil {
		return err
	}
	f.set = set
	f.coll = intel.NewCollector(intel.NewMatcher(set))
	fmt.Fprintf(errOut, "%s: %s\n", cmd, set.Summary())
	for i, p := range set.Problems {
		if i == maxReported {
			fmt.Fprintf(errOut, "%s: ... %d more indicator problems\n", cmd, len(set.Problems)-i)
			break
		}
		fmt.Fprintf(errOut, "%s: indicators: %s\n", cmd, p)
	}
	return nil
}

// tee adds the collector to a flow sink.
func (f *intelFlags) tee(sink func(*flow.Record)) func(*flow.Record) {
	if f.coll == nil {
		return sink
	}
	return func(r *flow.Record) {
		sink(r)
		f.coll.Add(r)
	}
}

// matches are the indicators that fired (none without --indicators).
func (f *intelFlags) matches() []intel.Match {
	if f.coll == nil {
		return nil
	}
	return f.coll.Matches()
}

// report tells what the retro-hunt found and what it could not use;
// the error is a partialError when indicators were left out.
func (f *intelFlags) report(errOut io.Writer, cmd string, shown int) error {
	if f.set == nil {
		return nil
	}
	fmt.Fprintf(errOut, "%s: %d indicators matched over %d flow records", cmd, shown, f.coll.Records)
	if f.coll.Invalid > 0 {
		fmt.Fprintf(errOut, "; %d flow records matched an indicator outside its valid_from/valid_until", f.coll.Invalid)
	}
	fmt.Fprintln(errOut)
	if n := len(f.set.Problems); n > 0 {
		return partialError{fmt.Sprintf("%d indicators or lines could not be used in full (named above)", n)}
	}
	return nil
}

// writeBlocklist writes the list in the --as flavour and, with --apply
// nft, loads it; refused entries are named on stderr.
func (f *intelFlags) writeBlocklist(ctx context.Context, w, errOut io.Writer, l *blocklist.List, h blocklist.Header, write bool) error {
	for _, r := range l.Refused {
		fmt.Fprintf(errOut, "blocklist: not listed: %s\n", r)
	}
	entries := l.Entries()
	if write {
		if err := blocklist.Write(w, f.as, entries, h); err != nil {
			return err
		}
	}
	if f.apply != "nft" {
		return nil
	}
	var script bytes.Buffer
	if err := blocklist.WriteNFT(&script, entries, h); err != nil {
		return err
	}
	if err := blocklist.ApplyNFT(ctx, script.Bytes(), f.nft); err != nil {
		return err
	}
	fmt.Fprintf(errOut, "blocklist: loaded %d entries into table inet %s with nft\n", countAddrs(entries), blocklist.Table)
	return nil
}

func countAddrs(es []blocklist.Entry) int {
	n := 0
	for _, e := range es {
		if e.Name == "" {
			n++
		}
	}
	return n
}

func blockHeader(now time.Time, inputs []string) blocklist.Header {
	return blocklist.Header{Generated: now.UTC(), From: inputs}
}
