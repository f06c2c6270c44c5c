package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/nwhealth/nwhealth/internal/safepath"
	"github.com/nwhealth/nwhealth/pkg/objstore"
	"github.com/nwhealth/nwhealth/pkg/sensor"
	"github.com/nwhealth/nwhealth/pkg/store"
	"github.com/spf13/pflag"
)

// remoteFlags are the flags of commands whose --store may be an object
// store (s3://BUCKET/PREFIX) or that read the flow database
// (--clickhouse): endpoint, credentials and region of the object store
// come from the AWS_* variables (docs/fleet.md). --sensor globs pick the
// same sensors from both (sensor.Match); --ca is trusted by both.
type remoteFlags struct {
	sensors   []string // readers: globs
	cache     string
	cacheSize string
	ca        string
}

// registerRead adds the flags of commands that read stores.
func (f *remoteFlags) registerRead(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.sensors, "sensor", nil, "sensors to read from an s3:// store or the flow database, a glob like 'dc1-*' (repeatable; default all)")
	fs.StringVar(&f.cache, "cache", "", "with an s3:// store: local cache of manifests, indexes and tables of contents (default "+store.DefaultCacheDir()+")")
	fs.StringVar(&f.cacheSize, "cache-size", "2G", "with an s3:// store: bound of the cache; least recently used files go first")
	f.registerCA(fs)
}

func (f *remoteFlags) registerCA(fs *pflag.FlagSet) {
	fs.StringVar(&f.ca, "ca", "", "PEM file of a private CA for an https s3:// endpoint or a ?secure=true ClickHouse (TLS is always verified)")
}

// config is the object store configuration from the environment and --ca.
func (f *remoteFlags) config() objstore.Config {
	c := objstore.ConfigFromEnv()
	c.CAFile = f.ca
	return c
}

// openStores opens every --store, a directory or an s3:// URL, for reading.
func openStores(ctx context.Context, dirs []string, f *remoteFlags) ([]store.Reader, error) {
	if len(dirs) == 0 {
		return nil, usagef("--store is required")
	}
	var size int64
	if f != nil && f.cacheSize != "" {
		var err error
		if size, err = parseSize(f.cacheSize); err != nil || size < 1<<20 {
			return nil, usagef("--cache-size %q: want at least 1M", f.cacheSize)
		}
	}
	var out []store.Reader
	for _, d := range dirs {
		if objstore.IsURL(d) {
			if f == nil {
				return nil, usagef("--store %s: this command works on local stores only", d)
			}
			if _, err := objstore.ParseURL(d); err != nil {
				return nil, usagef("--store: %v", err)
			}
			r, err := store.OpenRemote(d, store.RemoteOptions{Config: f.config(), Sensors: f.sensors, CacheDir: f.cache, CacheSize: size, Context: ctx})
			if err != nil {
				return nil, err
			}
			out = append(out, r)
			continue
		}
		st, err := store.Open(d)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	if f != nil && len(f.sensors) > 0 && len(out) == len(store.Locals(out)) {
		return nil, usagef("--sensor selects the sensors of an s3:// store; a local store is read whole")
	}
	return out, nil
}

// checkSensors checks the syntax of the --sensor globs.
func (f *remoteFlags) checkSensors() error {
	for _, g := range f.sensors {
		if err := sensor.CheckGlob(g); err != nil {
			return usagef("--sensor: %v", err)
		}
	}
	return nil
}

// uploadFlags are the flags of writers (capture, import) whose --store is
// an object store: they write into a local spool and upload each shard
// as it seals. --sensor names this sensor, in the bucket's layout and in
// the flow database (capture --flows-to) alike.
type uploadFlags struct {
	remoteFlags
	sensor     string
	spool      string
	spoolMax   string
	uploadWait time.Duration
}

func (f *uploadFlags) register(fs *pflag.FlagSet, wait time.Duration) {
	fs.StringVar(&f.sensor, "sensor", "", "this sensor's name in an s3:// store and the flow database (default: the host name)")
	fs.StringVar(&f.spool, "spool", "", "with an s3:// store: local store the shards are written to before upload (default under "+spoolRoot()+")")
	fs.StringVar(&f.spoolMax, "spool-max", "", "with an s3:// store: most bytes of shards waiting for upload; past it the oldest are dropped and counted (default: no bound but the disk)")
	fs.DurationVar(&f.uploadWait, "upload-wait", wait, "with an s3:// store: how long to wait at the end for uploads still to do")
	f.registerCA(fs)
}

// sensorName is --sensor, or the host name made a sensor name; it fills
// the flag in.
func (f *uploadFlags) sensorName() (string, error) {
	if f.sensor == "" {
		f.sensor = sensor.Default()
	}
	if err := sensor.Check(f.sensor); err != nil {
		return "", usagef("--sensor: %v", err)
	}
	return f.sensor, nil
}

func spoolRoot() string { return filepath.Join(store.DefaultDir(), "spool") }

// prepare checks the flags for url and fills the defaults; it returns the
// options and the spool directory. cmd names the writer (each writer its
// own spool: a spool has one writer at a time).
func (f *uploadFlags) prepare(url, cmd string) (store.UploadOptions, string, error) {
	var o store.UploadOptions
	if _, err := objstore.ParseURL(url); err != nil {
		return o, "", usagef("--store: %v", err)
	}
	if _, err := f.sensorName(); err != nil {
		return o, "", err
	}
	spool := f.spool
	if spool != "" {
		// As for any output: not through another user's link in /tmp.
		if err := safepath.CheckLinks(spool); err != nil {
			return o, "", fmt.Errorf("--spool: %w", err)
		}
	}
	if spool == "" {
		if err := store.PrepareDefaultDir(); err != nil {
			return o, "", err
		}
		h := sha256.Sum256([]byte(objstore.ConfigFromEnv().Endpoint + "\x00" + url))
		spool = filepath.Join(spoolRoot(), cmd+"-"+f.sensor+"-"+hex.EncodeToString(h[:6]))
	}
	var err error
	if o.SpoolMax, err = parseSize(f.spoolMax); err != nil {
		return o, "", usagef("--spool-max: %v", err)
	}
	if f.uploadWait < 0 {
		return o, "", usagef("--upload-wait: want zero or a positive length")
	}
	o.Config, o.Sensor = f.config(), f.sensor
	return o, spool, nil
}

// printUpload says what an uploader did.
func printUpload(w io.Writer, to string, st store.UploadStats) {
	fmt.Fprintf(w, "uploaded %d shards (%s) to %s", st.Shards, humanBytes(st.Bytes), to)
	if st.Present > 0 {
		fmt.Fprintf(w, ", %d objects already there", st.Present)
	}
	if st.Retries > 0 {
		fmt.Fprintf(w, ", %d attempts retried", st.Retries)
	}
	fmt.Fprintln(w)
	if st.Dropped > 0 {
		fmt.Fprintf(w, "spool full: %d shards (%s) dropped without upload\n", st.Dropped, humanBytes(st.DroppedBytes))
	}
	if st.Conflicts > 0 {
		fmt.Fprintf(w, "%d shards not uploaded (named above), kept in the spool\n", st.Conflicts)
	}
	if st.Removed > 0 {
		fmt.Fprintf(w, "retention removed %d partitions\n", st.Removed)
	}
}
