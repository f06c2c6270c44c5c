// Command fleetbench measures nwhealth against ClickHouse on a private
// server (scripts/bench-fleet.sh runs it):
//
//   - export: `nwhealth flows --export` of a store's flow records against
//     clickhouse-client inserting the same rows from a TSV file;
//   - hunt: `nwhealth hunt --clickhouse` against `hunt --store` over the
//     same flows, wall time and the nwhealth process's peak RSS.
//
// Runs alternate between the two sides and the medians are compared, so
// load from other work on the machine hits both alike.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nwhealth/nwhealth/internal/chserver"
)

func main() {
	nwh := flag.String("nwhealth", "bin/nwhealth", "nwhealth binary")
	exportStore := flag.String("export-store", "", "store whose flows the export part exports")
	huntStore := flag.String("hunt-store", "", "store the hunt part hunts over (exported first)")
	runs := flag.Int("runs", 3, "runs of each side")
	flag.Parse()
	dir, err := os.MkdirTemp("", "fleetbench")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	srv, err := chserver.Launch(dir, 0, chserver.Options{})
	if err != nil {
		fatal(fmt.Errorf("start clickhouse-server: %w", err))
	}
	defer srv.Stop()
	b := &bench{nwh: *nwh, srv: srv, dir: dir}
	status := 0
	if *exportStore != "" {
		if err := b.export(*exportStore, *runs); err != nil {
			fmt.Fprintln(os.Stderr, "fleetbench export:", err)
			status = 1
		}
	}
	if *huntStore != "" {
		if err := b.hunt(*huntStore, *runs); err != nil {
			fmt.Fprintln(os.Stderr, "fleetbench hunt:", err)
			status = 1
		}
	}
	srv.Stop()
	os.RemoveAll(dir)
	os.Exit(status)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fleetbench:", err)
	os.Exit(1)
}

type bench struct {
	nwh string
	srv *chserver.Server
	dir string
}

func (b *bench) url(db string) string { return b.srv.URL("", "", db) }

// sql runs a query through clickhouse-client.
func (b *bench) sql(q string) (string, error) {
	out, err := b.srv.ClientCmd(context.Background(), q).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("clickhouse-client %q: %v: %s", q, err, out)
	}
	return string(out), nil
}

// result is one timed run of a process.
type result struct {
	wall  time.Duration
	rssMB float64
}

// timed runs a command, with stdin from a file when in is set, and returns
// its wall time and peak RSS.
func timed(in string, name string, args ...string) (result, error) {
	cmd := exec.Command(name, args...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errOut.String())
	}
	r := result{wall: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rssMB = float64(ru.Maxrss) / 1024
	}
	return r, nil
}

func median(rs []result) result {
	ws := make([]result, len(rs))
	copy(ws, rs)
	slices.SortFunc(ws, func(a, b result) int { return int(a.wall - b.wall) })
	m := ws[len(ws)/2]
	rss := make([]float64, len(rs))
	for i, r := range rs {
		rss[i] = r.rssMB
	}
	slices.Sort(rss)
	m.rssMB = rss[len(rss)/2]
	return m
}

// export: nwhealth flows --export into an empty database against
// clickhouse-client inserting the same rows as TSV into a table of the
// same schema.
func (b *bench) export(store string, runs int) error {
	// The rows to insert, as ClickHouse itself writes them.
	if _, err := timed("", b.nwh, "flows", "--store", store, "--export", b.url("tsvsrc"), "--sensor", "bench"); err != nil {
		return err
	}
	tsv := filepath.Join(b.dir, "flows.tsv")
	f, err := os.Create(tsv)
	if err != nil {
		return err
	}
	cmd := b.srv.ClientCmd(context.Background(), "SELECT * FROM tsvsrc.flows FORMAT TabSeparated")
	cmd.Stdout = f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dump TSV: %w", err)
	}
	f.Close()
	n, err := b.sql("SELECT count() FROM tsvsrc.flows")
	if err != nil {
		return err
	}
	fi, _ := os.Stat(tsv)
	fmt.Printf("export: %s flow records, TSV %.0f MB\n", strings.TrimSpace(n), float64(fi.Size())/1e6)
	var ours, theirs []result
	for i := 0; i < runs; i++ {
		if _, err := b.sql("DROP DATABASE IF EXISTS ex"); err != nil {
			return err
		}
		r, err := timed("", b.nwh, "flows", "--store", store, "--export", b.url("ex"), "--sensor", "bench")
		if err != nil {
			return err
		}
		ours = append(ours, r)
		for _, q := range []string{"DROP DATABASE IF EXISTS tsv", "CREATE DATABASE tsv", "CREATE TABLE tsv.flows AS tsvsrc.flows"} {
			if _, err := b.sql(q); err != nil {
				return err
			}
		}
		r, err = timed(tsv, "clickhouse-client", "--host", "127.0.0.1", "--port", fmt.Sprint(b.srv.Port), "--query", "INSERT INTO tsv.flows FORMAT TabSeparated")
		if err != nil {
			return err
		}
		theirs = append(theirs, r)
		fmt.Printf("  run %d: nwhealth --export %.2f s, clickhouse-client TSV %.2f s\n", i+1, ours[i].wall.Seconds(), r.wall.Seconds())
	}
	o, t := median(ours), median(theirs)
	fmt.Printf("export: nwhealth %.2f s (%.0f MB peak RSS), clickhouse-client %.2f s: %.2fx clickhouse-client's time (target: at most 2x)\n",
		o.wall.Seconds(), o.rssMB, t.wall.Seconds(), o.wall.Seconds()/t.wall.Seconds())
	return nil
}

// hunt: hunt --clickhouse against hunt --store over the same flows.
func (b *bench) hunt(store string, runs int) error {
	if _, err := timed("", b.nwh, "flows", "--store", store, "--export", b.url("hunt"), "--sensor", "bench"); err != nil {
		return err
	}
	n, err := b.sql("SELECT count() FROM hunt.flows")
	if err != nil {
		return err
	}
	fmt.Printf("hunt: %s flow records\n", strings.TrimSpace(n))
	var ch, st []result
	for i := 0; i < runs; i++ {
		r, err := timed("", b.nwh, "hunt", "--store", store, "--format", "jsonl", "--min-severity", "info")
		if err != nil {
			return err
		}
		st = append(st, r)
		r, err = timed("", b.nwh, "hunt", "--clickhouse", b.url("hunt"), "--format", "jsonl", "--min-severity", "info")
		if err != nil {
			return err
		}
		ch = append(ch, r)
		fmt.Printf("  run %d: hunt --store %.2f s %.0f MB, hunt --clickhouse %.2f s %.0f MB\n", i+1,
			st[i].wall.Seconds(), st[i].rssMB, r.wall.Seconds(), r.rssMB)
	}
	c, s := median(ch), median(st)
	fmt.Printf("hunt: --clickhouse %.2f s %.0f MB peak RSS, --store %.2f s %.0f MB: %.2fx the time (target at most 2x), %.2fx the memory (target at most 0.5x)\n",
		c.wall.Seconds(), c.rssMB, s.wall.Seconds(), s.rssMB, c.wall.Seconds()/s.wall.Seconds(), c.rssMB/s.rssMB)
	return nil
}
