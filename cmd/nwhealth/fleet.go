package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flowdb"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/store"
	"github.com/spf13/cobra"
)

// fleetFlags are the flags of commands that talk to the flow database.
type fleetFlags struct {
	ca     string
	sensor string
}

func (f *fleetFlags) register(cmd *cobra.Command, withSensor bool) {
	cmd.Flags().StringVar(&f.ca, "ca", "", "PEM file of the CA that signed the ClickHouse server's certificate (with ?secure=true)")
	if withSensor {
		cmd.Flags().StringVar(&f.sensor, "sensor", "", "this sensor's name in the flow database (default: the host name)")
	}
}

// sensorName is --sensor or the host name.
func (f *fleetFlags) sensorName() (string, error) {
	s := f.sensor
	if s == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return "", usagef("--sensor is required (no host name: %v)", err)
		}
		s = h
	}
	if len(s) > 255 {
		return "", usagef("--sensor: at most 255 bytes")
	}
	return s, nil
}

// openFlowDB parses a clickhouse:// URL (password from the URL or
// CLICKHOUSE_PASSWORD) and connects. A bad URL is a usage error.
func openFlowDB(ctx context.Context, url string, f *fleetFlags) (*flowdb.DB, error) {
	cfg, err := flowdb.ParseURL(url, os.Getenv)
	if err != nil {
		return nil, usageError{err}
	}
	cfg.CAFile = f.ca
	if f.ca != "" && !cfg.Secure {
		return nil, usagef("--ca needs ?secure=true in the URL")
	}
	return flowdb.Open(ctx, cfg)
}

// runExport is flows --export: every sealed shard of the stores in the
// time range that the database lacks, then retention.
func runExport(o *flowsOptions, sel store.Selector) error {
	if sel.Filter != nil || len(sel.Hosts) > 0 || len(sel.Nets) > 0 || len(sel.Ports) > 0 || len(sel.Protos) > 0 || len(sel.VLANs) > 0 {
		return usagef("--export takes whole shards: only --from and --to apply")
	}
	sensor, err := o.fleet.sensorName()
	if err != nil {
		return err
	}
	var maxAge time.Duration
	if o.maxAge != "" {
		if maxAge, err = parseDuration(o.maxAge); err != nil || maxAge <= 0 {
			return usagef("--max-age %q: want a duration like 90d", o.maxAge)
		}
	}
	stores, err := openStores(o.stores)
	if err != nil {
		return err
	}
	ctx := o.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	db, err := openFlowDB(ctx, o.export, &o.fleet)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Ensure(ctx, int(maxAge/(24*time.Hour))); err != nil {
		return err
	}
	ex := &pipeline.Exporter{Sink: db, Sensor: sensor, Stores: stores, Selector: sel, BatchRows: o.batchRows}
	start := time.Now()
	st, dmg, err := ex.Run(ctx)
	fmt.Fprintf(o.errOut, "export to %s as sensor %q: %d shards (%d flow records) exported, %d already there, %d damaged, %.1f s\n",
		db.Name(), sensor, st.Shards, st.Records, st.Skipped, st.Damaged, time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("export (re-run to export the rest): %w", err)
	}
	if maxAge > 0 {
		newest, err := db.Newest(ctx)
		if err != nil {
			return err
		}
		if !newest.IsZero() {
			days, err := db.DropBefore(ctx, newest.Add(-maxAge))
			if err != nil {
				return err
			}
			if len(days) > 0 {
				fmt.Fprintf(o.errOut, "retention: dropped %d days (%s … %s)\n", len(days), days[0], days[len(days)-1])
			}
		}
	}
	if !dmg.Empty() {
		printDamage(o.errOut, "flows", dmg)
		return partialError{fmt.Sprintf("%d damaged shards not exported (repair the store and export again)", dmg.Count)}
	}
	return nil
}

// openFleet connects to the flow database for reading (hunt, report): the
// schema must be one this nwhealth reads; sensors and the selector's time
// range pick rows.
func openFleet(ctx context.Context, url string, f *fleetFlags, sensors []string, sel store.Selector) (*pipeline.Fleet, func(), error) {
	if ctx == nil {
		ctx = context.Background()
	}
	db, err := openFlowDB(ctx, url, f)
	if err != nil {
		return nil, nil, err
	}
	if err := db.Check(ctx); err != nil {
		db.Close()
		return nil, nil, err
	}
	q := flowdb.Query{Sensors: sensors, From: sel.From, To: sel.To}
	return &pipeline.Fleet{DB: db, Query: q}, func() { db.Close() }, nil
}

// flowDBName names a flow database URL without its password (for reports).
func flowDBName(url string) string {
	cfg, err := flowdb.ParseURL(url, nil)
	if err != nil {
		return flowdb.Redact(url)
	}
	return cfg.String()
}
