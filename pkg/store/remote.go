package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nwhealth/nwhealth/pkg/objstore"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/sensor"
)

// RemoteOptions say how to reach and read an object store.
type RemoteOptions struct {
	Config objstore.Config
	// Sensors are globs of the sensors to read (sensor.Match); none means
	// every sensor.
	Sensors   []string
	CacheDir  string // "" means DefaultCacheDir()
	CacheSize int64  // 0 means DefaultCacheSize
	Context   context.Context
}

// Remote is a store in an object store prefix (docs/format/object-store.md),
// read through ranged GETs and a local cache.
type Remote struct {
	c       *objstore.Client
	sensors []string
	cache   *objCache
	ctx     context.Context

	mu        sync.Mutex
	manifests map[string]*Manifest    // by shard key stem (Base)
	listed    map[string]*listedShard // by Base, from the last listing
	// early is the sensors and partitions listed while the marker was
	// read, for a first listing soon after (earlyUse); nil once taken.
	early   chan partsResult
	earlyAt time.Time

	// BytesRead counts the bytes fetched from the object store (cache
	// fills and block ranges); Requests the GETs made.
	BytesRead atomic.Int64
	Requests  atomic.Int64
}

// listedShard is what a listing found of a shard's objects.
type listedShard struct {
	size [4]int64 // shard, index, flows, manifest; -1 when not listed
}

var objectExts = [4]string{extShard, extIndex, extFlows, extManifest}

func extSlot(ext string) int {
	for i, e := range objectExts {
		if e == ext {
			return i
		}
	}
	return -1
}

// OpenRemote opens an object store for reading: the bucket must be
// reachable and the prefix hold the layout marker.
func OpenRemote(url string, opts RemoteOptions) (*Remote, error) {
	loc, err := objstore.ParseURL(url)
	if err != nil {
		return nil, err
	}
	for _, g := range opts.Sensors {
		if err := sensor.CheckGlob(g); err != nil {
			return nil, err
		}
	}
	c, err := objstore.New(opts.Config, loc)
	if err != nil {
		return nil, err
	}
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	dir := opts.CacheDir
	if dir == "" {
		if err := PrepareDefaultDir(); err != nil {
			return nil, err
		}
		dir = DefaultCacheDir()
	}
	// One cache directory per endpoint and bucket: keys are only unique
	// within a bucket.
	h := sha256.Sum256([]byte(c.Endpoint() + "\x00" + loc.Bucket))
	cache, err := openCache(dir, hex.EncodeToString(h[:8])+"/"+strings.TrimSuffix(loc.Prefix, "/"), opts.CacheSize)
	if err != nil {
		return nil, err
	}
	r := &Remote{c: c, sensors: opts.Sensors, cache: cache, ctx: ctx, manifests: map[string]*Manifest{}, listed: map[string]*listedShard{}}
	if opts.Config.Region == "" {
		// Without a region the client asks the bucket's location first:
		// once here, not by each of the two requests below.
		if _, err := c.Region(ctx); err != nil {
			return nil, err
		}
	}
	// The sensors and their partitions are listed while the marker is
	// read: the first listing then waits one round trip less. A prefix
	// that is no store costs one listing for nothing.
	early := make(chan partsResult, 1)
	r.early = early
	go func() {
		p, err := r.sensorPartitions()
		early <- partsResult{p, err}
	}()
	rc, _, err := c.Open(ctx, markerKey)
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w (no %s)", c, ErrNotStore, markerKey)
		}
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxMarkerSize+1))
	rc.Close()
	if err != nil {
		return nil, err
	}
	if err := checkMarker(b); err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	r.earlyAt = time.Now()
	return r, nil
}

// earlyUse bounds how long after opening the early listing of sensors and
// partitions may stand in for a fresh one: a query plans at once, while a
// capture that opened the store to export its flows lists it again much
// later, when a new day's partition may exist.
const earlyUse = time.Second

// Location is the store's URL.
func (r *Remote) Location() string { return r.c.Location().String() }

// Client is the object store client (for writers sharing it).
func (r *Remote) Client() *objstore.Client { return r.c }

// List lists every shard with a manifest.
func (r *Remote) List() (Listing, error) { return r.listFrom(time.Time{}) }

func (r *Remote) wanted(name string) bool { return sensor.Match(r.sensors, name) }

// Sensors lists the sensors that wrote to the store (and --sensor selects).
func (r *Remote) Sensors() ([]string, error) {
	var out []string
	err := r.c.List(r.ctx, sensorsDir, true, func(e objstore.Entry) error {
		name := strings.TrimSuffix(strings.TrimPrefix(e.Key, sensorsDir), "/")
		if e.Dir && ValidSensor(name) && r.wanted(name) {
			out = append(out, name)
		}
		return nil
	})
	return out, err
}

// partitions lists a sensor's day partitions, oldest first.
func (r *Remote) partitions(sensor string) ([]string, error) {
	var out []string
	pre := sensorsDir + sensor + "/"
	err := r.c.List(r.ctx, pre, true, func(e objstore.Entry) error {
		day := strings.TrimSuffix(strings.TrimPrefix(e.Key, pre), "/")
		if t, err := time.Parse(dayLayout, day); e.Dir && err == nil && t.Format(dayLayout) == day {
			out = append(out, day)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// sensorParts is a sensor and its day partitions.
type sensorParts struct {
	sensor string
	days   []string
}

type partsResult struct {
	parts []sensorParts
	err   error
}

// sensorPartitions lists the selected sensors, then their partitions,
// several sensors at once.
func (r *Remote) sensorPartitions() ([]sensorParts, error) {
	sensors, err := r.Sensors()
	if err != nil {
		return nil, err
	}
	out := make([]sensorParts, len(sensors))
	err = parallel(r.ctx, len(sensors), 8, func(i int) error {
		days, err := r.partitions(sensors[i])
		out[i] = sensorParts{sensors[i], days}
		return err
	})
	return out, err
}

func (r *Remote) listFrom(from time.Time) (Listing, error) {
	var l Listing
	r.mu.Lock()
	early := r.early
	r.early = nil
	r.mu.Unlock()
	var sp []sensorParts
	var err error
	if early != nil && time.Since(r.earlyAt) < earlyUse {
		res := <-early
		sp, err = res.parts, res.err
	} else {
		sp, err = r.sensorPartitions()
	}
	if err != nil {
		return l, err
	}
	type part struct{ sensor, day string }
	var parts []part
	minDay := ""
	if !from.IsZero() {
		minDay = from.UTC().Format(dayLayout)
	}
	for _, s := range sp {
		for _, d := range s.days {
			if d >= minDay {
				parts = append(parts, part{s.sensor, d})
			}
		}
	}
	found := map[string]*listedShard{}
	files := map[string]ShardFile{}
	var mu sync.Mutex
	err = parallel(r.ctx, len(parts), 8, func(i int) error {
		p := parts[i]
		pre := sensorsDir + p.sensor + "/" + p.day + "/"
		return r.c.List(r.ctx, pre, false, func(e objstore.Entry) error {
			k, ok := parseObjectKey(e.Key)
			if !ok || k.sensor != p.sensor || k.day != p.day {
				return nil // not a store object: ignored
			}
			base := pre + k.stem
			mu.Lock()
			defer mu.Unlock()
			ls := found[base]
			if ls == nil {
				ls = &listedShard{size: [4]int64{-1, -1, -1, -1}}
				found[base] = ls
				sf := k.sf
				sf.Base, sf.Sensor = base, p.sensor
				files[base] = sf
			}
			ls.size[extSlot(k.ext)] = e.Size
			return nil
		})
	})
	if err != nil {
		return l, err
	}
	for base, ls := range found {
		sf := files[base]
		if ls.size[3] < 0 {
			l.Incomplete = append(l.Incomplete, sf.Label())
			continue
		}
		sf.Size = ls.size[0]
		l.Shards = append(l.Shards, sf)
	}
	sort.Strings(l.Incomplete)
	// By sensor first: packets of the same time then come in sensor
	// order, as from local stores given in that order.
	sort.Slice(l.Shards, func(i, j int) bool {
		a, b := l.Shards[i], l.Shards[j]
		if a.Sensor != b.Sensor {
			return a.Sensor < b.Sensor
		}
		if !a.First.Equal(b.First) {
			return a.First.Before(b.First)
		}
		if a.Writer != b.Writer {
			return a.Writer < b.Writer
		}
		return a.Seq < b.Seq
	})
	r.mu.Lock()
	for base, ls := range found {
		r.listed[base] = ls
	}
	r.mu.Unlock()
	return l, nil
}

// parallel runs fn(0..n-1) on up to k goroutines; the first error wins
// and stops the others from starting.
func parallel(ctx context.Context, n, k int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(n, k) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func (r *Remote) listedOf(sf ShardFile) *listedShard {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ls := r.listed[sf.Base]; ls != nil {
		return ls
	}
	return &listedShard{size: [4]int64{-1, -1, -1, -1}}
}

// manifest fetches (or takes from the cache) and checks a shard's manifest.
func (r *Remote) manifest(sf ShardFile) (*Manifest, error) {
	r.mu.Lock()
	m := r.manifests[sf.Base]
	r.mu.Unlock()
	if m != nil {
		return m, nil
	}
	size := r.listedOf(sf).size[3]
	if size < 0 || size > maxManifestSize {
		return nil, fmt.Errorf("manifest of %d bytes (at most %d)", size, maxManifestSize)
	}
	f, err := r.cache.open(sf.Base+extManifest, size, "", func(w io.Writer) error {
		return r.copyObject(w, sf.Base+extManifest, "")
	})
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize))
	f.Close()
	if err != nil {
		return nil, err
	}
	if m, err = decodeManifest(b, sf.Sensor, sf); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.manifests[sf.Base] = m
	r.mu.Unlock()
	return m, nil
}

// copyObject streams an object into w, checking its SHA-256 when sum is
// given.
func (r *Remote) copyObject(w io.Writer, key, sum string) error {
	rc, _, err := r.c.Open(r.ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	r.Requests.Add(1)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), rc)
	r.BytesRead.Add(n)
	if err != nil {
		return err
	}
	if sum != "" && hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("%s does not match its manifest (SHA-256 differs): changed behind nwhealth's back", path.Base(key))
	}
	return nil
}

// object checks a shard object against its manifest and the listing.
func (r *Remote) object(sf ShardFile, ext string) (*Manifest, ManifestObject, error) {
	m, err := r.manifest(sf)
	if err != nil {
		return nil, ManifestObject{}, err
	}
	o := m.object(ext)
	switch got := r.listedOf(sf).size[extSlot(ext)]; {
	case got < 0:
		return m, o, fmt.Errorf("%s: object missing (deleted behind nwhealth's back?): %w", o.Name, os.ErrNotExist)
	case got != o.Size:
		return m, o, fmt.Errorf("%s: object is %d bytes, its manifest says %d", o.Name, got, o.Size)
	}
	return m, o, nil
}

// cached returns the checked local copy of a whole object.
func (r *Remote) cached(sf ShardFile, ext string) (*os.File, error) {
	_, o, err := r.object(sf, ext)
	if err != nil {
		return nil, err
	}
	// Named with the digest too: an object replaced behind nwhealth's
	// back (deleted and written anew) never meets a stale copy.
	return r.cache.open(sf.Base+ext+"-"+o.SHA256[:16], o.Size, o.SHA256, func(w io.Writer) error {
		return r.copyObject(w, sf.Base+ext, o.SHA256)
	})
}

func (r *Remote) openIndex(sf ShardFile) (blockFile, error) {
	return openLocal(r.cached(sf, extIndex))
}

func (r *Remote) readFlows(sf ShardFile) ([]byte, error) {
	_, o, err := r.object(sf, extFlows)
	if err != nil {
		return nil, err
	}
	if o.Size > maxFlowFile {
		return nil, fmt.Errorf("%s: %d bytes, more than a flow file holds", o.Name, o.Size)
	}
	f, err := r.cached(sf, extFlows)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, o.Size)
	_, err = io.ReadFull(f, b)
	return b, err
}

// headLen is how much of a shard's start is fetched with its table of
// contents: the shard header and pcap header frame, with room.
const headLen = 4096

// openShard opens a shard object: its head and table of contents come
// from the cache (fetched once), blocks by ranged GETs.
func (r *Remote) openShard(sf ShardFile) (blockFile, error) {
	m, o, err := r.object(sf, extShard)
	if err != nil {
		return nil, err
	}
	rs := &remoteShard{r: r, key: sf.Base + extShard, size: o.Size, tocOff: m.TrailerOffset}
	tag := o.SHA256[:16]
	hn := min(o.Size, headLen)
	hf, err := r.cache.open(sf.Base+extShard+".head-"+tag, hn, "", func(w io.Writer) error {
		b := make([]byte, hn)
		if err := rs.get(b, 0); err != nil {
			return err
		}
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	rs.head = make([]byte, hn)
	_, err = io.ReadFull(hf, rs.head)
	hf.Close()
	if err != nil {
		return nil, err
	}
	// The table of contents: 32 bytes a block of at least 53, so a
	// trailer larger than that share of the shard is not a trailer, and
	// is not fetched whole (reads then go to the object).
	if tn := o.Size - m.TrailerOffset; tn > 0 && tn <= o.Size/40+64<<10 {
		tf, err := r.cache.open(sf.Base+extShard+".toc-"+tag, tn, "", func(w io.Writer) error {
			return r.copyRange(w, sf.Base+extShard, m.TrailerOffset, tn)
		})
		if err != nil {
			return nil, err
		}
		rs.toc = tf
	}
	return rs, nil
}

// copyRange streams part of an object into w, a megabyte at a time.
func (r *Remote) copyRange(w io.Writer, key string, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		b := buf[:min(n, int64(len(buf)))]
		if err := r.c.ReadAt(r.ctx, key, b, off); err != nil {
			return err
		}
		r.Requests.Add(1)
		r.BytesRead.Add(int64(len(b)))
		if _, err := w.Write(b); err != nil {
			return err
		}
		off += int64(len(b))
		n -= int64(len(b))
	}
	return nil
}

// prepare fetches what planning the shards will read, in parallel: their
// manifests, heads and tables of contents, and indexes when asked. Only
// an unreachable store is an error; other failures come back when the
// shard is opened, as its damage.
func (r *Remote) prepare(shards []ShardFile, index bool) error {
	return parallel(r.ctx, len(shards), 16, func(i int) error {
		sf := shards[i]
		f, err := r.openShard(sf)
		if err == nil {
			f.Close()
			if index {
				var ix *os.File
				if ix, err = r.cached(sf, extIndex); err == nil {
					ix.Close()
				}
			}
		}
		if err != nil && fatal(err) {
			return err
		}
		return nil
	})
}

// remoteShard is a shard object read through its cached head and table
// of contents, the plan's fetcher, or ranged GETs.
type remoteShard struct {
	r      *Remote
	key    string
	size   int64
	head   []byte
	toc    *os.File // the trailer, from tocOff to the end
	tocOff int64
	fetch  *rangeFetcher
}

func (rs *remoteShard) Size() int64 { return rs.size }

func (rs *remoteShard) Close() error {
	if rs.toc != nil {
		rs.toc.Close()
	}
	return nil
}

func (rs *remoteShard) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s at %d: negative offset", rs.key, off)
	}
	if off >= rs.size {
		return 0, io.EOF
	}
	var short error
	if end := off + int64(len(p)); end > rs.size {
		p, short = p[:rs.size-off], io.EOF
	}
	end := off + int64(len(p))
	switch {
	case end <= int64(len(rs.head)):
		copy(p, rs.head[off:end])
	case rs.toc != nil && off >= rs.tocOff:
		if _, err := rs.toc.ReadAt(p, off-rs.tocOff); err != nil {
			return 0, err
		}
	default:
		if rs.fetch != nil {
			if ok, err := rs.fetch.read(rs, p, off); ok {
				if err != nil {
					return 0, err
				}
				return len(p), short
			}
		}
		if err := rs.get(p, off); err != nil {
			return 0, err
		}
	}
	return len(p), short
}

// get reads p at off with one ranged GET.
func (rs *remoteShard) get(p []byte, off int64) error {
	rs.r.Requests.Add(1)
	if err := rs.r.c.ReadAt(rs.r.ctx, rs.key, p, off); err != nil {
		return err
	}
	rs.r.BytesRead.Add(int64(len(p)))
	return nil
}

// Info describes the store from its manifests. With verify, every object
// is downloaded and checked against its manifest (size, SHA-256), and
// every block, index and flow file as for a local store; objects without
// a manifest (an upload that did not finish) are named too.
func (r *Remote) Info(verify bool) (InfoReport, error) {
	rep := InfoReport{Verified: verify}
	l, err := r.List()
	if err != nil {
		return rep, err
	}
	if verify {
		for _, name := range l.Incomplete {
			rep.Damage = append(rep.Damage, Damage{Shard: name, Block: -1, Reason: "upload incomplete: objects without a manifest (the sensor's next upload completes it)"})
		}
	}
	br := pcapio.NewBlockReader()
	defer br.Close()
	for _, sf := range l.Shards {
		m, err := r.manifest(sf)
		if err != nil {
			if fatal(err) {
				return rep, err
			}
			rep.Damage = append(rep.Damage, Damage{Shard: sf.Label(), Block: -1, Reason: reason(err)})
			continue
		}
		st := ShardStat{Name: sf.Label(), Writer: sf.Writer, Sealed: true, First: m.First.UTC(), Last: m.Last.UTC(), Blocks: m.Blocks,
			Packets: m.Packets, RawBytes: m.RawBytes, StoredBytes: m.Objects[0].Size, IndexBytes: m.Objects[1].Size, FlowBytes: m.Objects[2].Size}
		for _, ext := range manifestExts {
			if _, _, err := r.object(sf, ext); err != nil {
				rep.Damage = append(rep.Damage, Damage{Shard: sf.Label(), Block: -1, Reason: reason(err)})
			}
		}
		if verify {
			d, err := r.verifyShard(sf, m, br, &rep)
			if err != nil {
				return rep, err
			}
			rep.Damage = append(rep.Damage, d...)
		}
		rep.add(st)
	}
	return rep, nil
}

// verifyShard downloads a shard's objects (the shard into a temporary
// file), checks them against the manifest, then checks their contents.
func (r *Remote) verifyShard(sf ShardFile, m *Manifest, br *pcapio.BlockReader, rep *InfoReport) ([]Damage, error) {
	label := sf.Label()
	var dmg []Damage
	objDamage := func(err error) bool {
		if err == nil {
			return false
		}
		dmg = append(dmg, Damage{Shard: label, Block: -1, Reason: reason(err)})
		return true
	}
	tmp, err := r.cache.scratch()
	if err != nil {
		return nil, err
	}
	defer tmp.Close()
	so := m.Objects[0]
	err = r.copyObject(&countWriter{w: tmp, limit: so.Size}, sf.Base+extShard, so.SHA256)
	if fatal(err) {
		return nil, err
	}
	if !objDamage(err) {
		sh, err := pcapio.OpenShard(tmp, so.Size)
		if err != nil {
			objDamage(err)
		} else {
			if sh.HeaderDamage != "" {
				dmg = append(dmg, Damage{Shard: label, Block: -1, Reason: sh.HeaderDamage})
			}
			if !sh.Sealed {
				dmg = append(dmg, Damage{Shard: label, Block: -1, Reason: "trailer missing or damaged"})
			}
			dmg = append(dmg, verifyBlocks(label, sh, br, rep)...)
			d := newMetaDecoder()
			defer d.Close()
			for i, ext := range []string{extIndex, extFlows} {
				o := m.object(ext)
				var buf bytes.Buffer
				err := r.copyObject(&countWriter{w: &buf, limit: o.Size}, sf.Base+ext, o.SHA256)
				if fatal(err) {
					return nil, err
				}
				if i == 0 {
					dmg = append(dmg, verifyIndex(label, buf.Bytes(), err, len(sh.Blocks), d, rep)...)
				} else {
					_, dd := verifyFlows(label, buf.Bytes(), err, d, rep)
					dmg = append(dmg, dd...)
				}
			}
		}
	}
	return dmg, nil
}
