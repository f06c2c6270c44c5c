package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nwhealth/nwhealth/pkg/flowdb"
	"github.com/nwhealth/nwhealth/pkg/hunt"
	"github.com/nwhealth/nwhealth/pkg/intel"
	"github.com/nwhealth/nwhealth/pkg/objstore"
	"github.com/nwhealth/nwhealth/pkg/pipeline"
	"github.com/nwhealth/nwhealth/pkg/sensor"
	"github.com/nwhealth/nwhealth/pkg/store"
)

// The flow database's flags are the fleet's: --sensor is the same name
// (writers) or glob (readers) as for an s3:// store, and --ca the same
// private CA, for an https object store and a ?secure=true ClickHouse
// alike (remoteFlags).

// flowDBConfig parses the clickhouse:// URL given to flag, before
// anything connects (a bad URL is a usage error), and finds its password:
// in the URL (warned about on errOut: every local user sees a command
// line), else CLICKHOUSE_PASSWORD, else the file CLICKHOUSE_PASSWORD_FILE
// names (warned about when others may read it). ca (a PEM file) is
// trusted besides the system's CAs for ?secure=true. No message holds
// the password.
func flowDBConfig(flag, url, ca string, errOut io.Writer, cmd string) (flowdb.Config, error) {
	cfg, err := flowdb.ParseURL(url, os.Getenv)
	if err != nil {
		return cfg, usageError{err}
	}
	if cfg.Secure {
		cfg.CAFile = ca
	}
	if flowdb.HasPassword(url) {
		fmt.Fprintf(errOut, "%s: warning: %s %s: a password in the URL is seen by every local user (ps, /proc/PID/cmdline) and kept in shell history; set %s, or %s to a file holding it\n",
			cmd, flag, cfg.String(), flowdb.PasswordEnv, flowdb.PasswordFileEnv)
		return cfg, nil
	}
	path := os.Getenv(flowdb.PasswordFileEnv)
	if path == "" {
		return cfg, nil
	}
	if os.Getenv(flowdb.PasswordEnv) != "" {
		return cfg, usagef("%s and %s are both set: give the password one way", flowdb.PasswordEnv, flowdb.PasswordFileEnv)
	}
	pw, loose, err := flowdb.ReadPasswordFile(path)
	if loose {
		warnLoose(errOut, cmd, path, "a ClickHouse password")
	}
	if errors.Is(err, flowdb.ErrPasswordFile) {
		return cfg, usagef("%s: %v", flowdb.PasswordFileEnv, err)
	}
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", flowdb.PasswordFileEnv, err)
	}
	cfg.Password = pw
	return cfg, nil
}

// openFlowDB connects to the flow database cfg names (flowDBConfig).
func openFlowDB(ctx context.Context, cfg flowdb.Config) (*flowdb.DB, error) {
	return flowdb.Open(ctx, cfg)
}

// runExport is flows --export: every sealed shard of the stores in the
// time range that the database lacks, then retention. A shard of an
// s3:// store goes under the sensor that wrote it (--sensor globs pick
// sensors there); a local store's shards under --sensor NAME, or the
// host name.
func runExport(o *flowsOptions, sel store.Selector) error {
	if sel.Filter != nil || len(sel.Hosts) > 0 || len(sel.Nets) > 0 || len(sel.Ports) > 0 || len(sel.Protos) > 0 || len(sel.VLANs) > 0 {
		return usagef("--export takes whole shards: only --from and --to apply")
	}
	local := false
	for _, d := range o.stores {
		local = local || !objstore.IsURL(d)
	}
	localSensor := sensor.Default()
	if local && len(o.remote.sensors) > 0 {
		// A name is a glob matching itself: --sensor dc1-a names a local
		// store's sensor and picks the same sensor from a bucket.
		if len(o.remote.sensors) != 1 || sensor.IsGlob(o.remote.sensors[0]) {
			return usagef("--export: a local store's shards need one sensor name (--sensor NAME), not %q", o.remote.sensors)
		}
		localSensor = o.remote.sensors[0]
	}
	if err := sensor.Check(localSensor); err != nil {
		return usagef("--sensor: %v", err)
	}
	var maxAge time.Duration
	var err error
	if o.maxAge != "" {
		if maxAge, err = parseDuration(o.maxAge); err != nil || maxAge <= 0 {
			return usagef("--max-age %q: want a duration like 90d", o.maxAge)
		}
	}
	ctx := o.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	rf := o.remote
	if !anyURL(o.stores) {
		rf.sensors = nil // local stores only: --sensor named them
	}
	cfg, err := flowDBConfig("--export", o.export, o.remote.ca, o.errOut, "flows")
	if err != nil {
		return err
	}
	stores, err := openStores(ctx, o.stores, &rf)
	if err != nil {
		return err
	}
	db, err := openFlowDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Ensure(ctx, int(maxAge/(24*time.Hour))); err != nil {
		return err
	}
	ex := &pipeline.Exporter{Sink: db, Sensor: localSensor, Stores: stores, Selector: sel, BatchRows: o.batchRows}
	start := time.Now()
	st, dmg, err := ex.Run(ctx)
	as := ""
	if local {
		as = fmt.Sprintf(" (local stores as sensor %q)", localSensor)
	}
	fmt.Fprintf(o.errOut, "export to %s%s: %d shards (%d flow records) exported, %d already there, %d damaged, %.1f s\n",
		db.Name(), as, st.Shards, st.Records, st.Skipped, st.Damaged, time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("export (re-run to export the rest): %w", err)
	}
	if maxAge > 0 {
		newest, err := db.Newest(ctx, time.Now().Add(store.FutureSkew))
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
func openFleet(ctx context.Context, cfg flowdb.Config, f *remoteFlags, sel store.Selector) (*pipeline.Fleet, func(), error) {
	if ctx == nil {
		ctx = context.Background()
	}
	db, err := openFlowDB(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := db.Check(ctx); err != nil {
		db.Close()
		return nil, nil, err
	}
	q := flowdb.Query{Sensors: f.sensors, From: sel.From, To: sel.To}
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

func anyURL(dirs []string) bool {
	for _, d := range dirs {
		if objstore.IsURL(d) {
			return true
		}
	}
	return false
}

// huntClickHouse fills the hunt model from the flow database (the heavy
// part runs in ClickHouse, docs/fleet.md), and the indicators' retro-hunt
// (coll, when set) from the same rows, whole. Rows that are not valid
// records are skipped and come back as damage.
func huntClickHouse(ctx context.Context, cfg flowdb.Config, f *remoteFlags, sel store.Selector, m *hunt.Model, coll *intel.Collector) (pipeline.Damage, error) {
	var dmg pipeline.Damage
	fleet, closeDB, err := openFleet(ctx, cfg, f, sel)
	if err != nil {
		return dmg, err
	}
	defer closeDB()
	if err := pipeline.FleetDamage(&dmg, pipeline.HuntFleet(ctx, fleet, m)); err != nil {
		return dmg, err
	}
	if coll != nil {
		// The same bad rows again, whole: counted once.
		var again pipeline.Damage
		if err := pipeline.FleetDamage(&again, pipeline.FleetRecords(ctx, fleet, coll.Add)); err != nil {
			return dmg, err
		}
		if dmg.Empty() {
			dmg = again
		}
	}
	return dmg, nil
}
