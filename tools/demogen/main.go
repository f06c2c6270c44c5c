// Command demogen writes nwhealth's demo sample: a few hours of a small
// Windows network with an intrusion in it, as a pcap, with its ground
// truth as JSON (docs/demo.md describes both).
//
//	go run ./tools/demogen -o out/demo/sample.pcap -labels out/demo/labels.json
//
// It lives outside cmd/ so the product binary carries no generator.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/internal/demogen"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// options are the flags.
type options struct {
	out, labels, assets string
	cfg                 demogen.Config
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demogen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var start string
	fs.StringVar(&o.out, "o", "", "write the sample pcap here (- for standard output)")
	fs.StringVar(&o.labels, "labels", "", "write the ground truth JSON here")
	fs.StringVar(&o.assets, "assets", "", "write an asset inventory for hunt --assets here")
	fs.Uint64Var(&o.cfg.Seed, "seed", 1, "seed: the same seed gives the same bytes")
	fs.StringVar(&start, "start", demogen.DefaultStart.Format(time.RFC3339), "start of the sample (RFC 3339)")
	fs.DurationVar(&o.cfg.Duration, "duration", demogen.DefaultDuration, "length of the sample (at least 1h)")
	fs.IntVar(&o.cfg.Workstations, "workstations", demogen.DefaultWorkstations, "number of workstations (8-200)")
	var shapes string
	fs.StringVar(&shapes, "shapes", "", "more command-and-control shapes, comma-separated: keepalive, proxy, inbound")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: demogen -o FILE [-labels FILE] [-assets FILE] [-seed N] [-start T] [-duration D] [-workstations N] [-shapes LIST]")
		return 2
	}
	t, err := time.Parse(time.RFC3339, start)
	if err != nil {
		fmt.Fprintf(stderr, "demogen: -start: %v\n", err)
		return 2
	}
	o.cfg.Start = t
	for _, sh := range strings.Split(shapes, ",") {
		switch strings.TrimSpace(sh) {
		case "":
		case "keepalive":
			o.cfg.Shapes.KeepAlive = true
		case "proxy":
			o.cfg.Shapes.Proxy = true
		case "inbound":
			o.cfg.Shapes.Inbound = true
		default:
			fmt.Fprintf(stderr, "demogen: -shapes: unknown shape %q (keepalive, proxy, inbound)\n", sh)
			return 2
		}
	}
	if err := generate(o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "demogen:", err)
		return 1
	}
	return 0
}

func generate(o options, stdout, stderr io.Writer) error {
	began := time.Now()
	var l *demogen.Labels
	err := writeFile(o.out, stdout, func(w io.Writer) error {
		var err error
		l, err = demogen.Generate(w, o.cfg)
		return err
	})
	if err != nil {
		return err
	}
	if o.labels != "" {
		if err := writeFile(o.labels, stdout, l.WriteJSON); err != nil {
			return err
		}
	}
	if o.assets != "" {
		if err := writeFile(o.assets, stdout, l.WriteAssets); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "demogen: %d packets, %d connections, %d labelled operations, %s to %s in %.1fs -> %s\n",
		l.Packets, l.Connections, len(l.Operations), l.Start.Format(time.RFC3339), l.End.Format(time.RFC3339),
		time.Since(began).Seconds(), o.out)
	return nil
}

// writeFile writes through fn to path ("-": stdout), creating its
// directory, and publishes it by renaming a temporary file so a reader
// never sees half a sample.
func writeFile(path string, stdout io.Writer, fn func(io.Writer) error) error {
	if path == "-" {
		return fn(stdout)
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
