package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nwhealth/nwhealth/pkg/objstore"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// UploadOptions say where and how sealed shards are shipped.
type UploadOptions struct {
	Config  objstore.Config
	Sensor  string // must be ValidSensor
	Context context.Context
	// Parallel is the number of objects in flight (default 4).
	Parallel int
	// Keep leaves the local files after upload (store push copies a
	// store); otherwise the local store is a spool and they are removed.
	Keep bool
	// SpoolMax bounds the bytes of sealed shards waiting in the spool;
	// past it the oldest are removed without being uploaded, counted and
	// named (0: no bound but the disk).
	SpoolMax int64
	// Retention is applied to the sensor's partitions after uploads.
	Retention Retention
	// Log receives messages (retries, conflicts, drops); nil: discarded.
	Log io.Writer
}

// UploadStats count what an uploader did.
type UploadStats struct {
	Shards       int   // shards whose manifest was stored
	Bytes        int64 // object bytes sent
	Present      int   // objects found already stored by an earlier attempt (not sent again)
	Retries      int   // failed attempts retried
	Dropped      int   // shards removed from a full spool, never uploaded
	DroppedBytes int64
	Pending      int // shards still waiting
	PendingBytes int64
	Conflicts    int // shards not uploaded, kept locally: their name holds other bytes in the object store, or a file of theirs was refused (FileError)
	Removed      int // partitions removed by retention
}

// Uploader ships a local store's sealed shards to an object store
// (docs/format/object-store.md, "Writing").
type Uploader struct {
	src  *Store
	c    *objstore.Client
	opts UploadOptions
	ctx  context.Context
	stop context.CancelFunc

	mu      sync.Mutex
	cond    *sync.Cond
	pending []ShardFile
	busy    bool
	closing bool
	lastErr error
	stats   UploadStats
	done    chan struct{}
	started atomic.Bool
	marker  atomic.Bool // the layout marker is known to be there
}

// NewUploader connects to the object store at url and makes sure its
// layout marker is there (writing it on first use).
func NewUploader(src *Store, url string, opts UploadOptions) (*Uploader, error) {
	if !ValidSensor(opts.Sensor) {
		return nil, fmt.Errorf("sensor name %q: want 1 to 63 letters, digits, '.', '_' and '-', starting with a letter or digit", opts.Sensor)
	}
	loc, err := objstore.ParseURL(url)
	if err != nil {
		return nil, err
	}
	c, err := objstore.New(opts.Config, loc)
	if err != nil {
		return nil, err
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	parent := opts.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	u := &Uploader{src: src, c: c, opts: opts, ctx: ctx, stop: cancel, done: make(chan struct{})}
	u.cond = sync.NewCond(&u.mu)
	// Wrong credentials or a missing bucket end the command at once; a
	// store that does not answer is waited for (uploads retry).
	if err := u.ensureMarker(); err != nil {
		if !errors.Is(err, objstore.ErrUnavailable) {
			cancel()
			return nil, err
		}
		fmt.Fprintf(u.opts.Log, "nwhealth: %v; shards wait in the spool, uploads retry\n", err)
	} else {
		u.marker.Store(true)
	}
	return u, nil
}

// Location is where the uploader writes.
func (u *Uploader) Location() string { return u.c.Location().String() }

func (u *Uploader) ensureMarker() error {
	b := markerBytes()
	err := u.c.Put(u.ctx, markerKey, bytes.NewReader(b), int64(len(b)), nil)
	if err == nil || !errors.Is(err, objstore.ErrExists) {
		return err
	}
	rc, _, err := u.c.Open(u.ctx, markerKey)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, maxMarkerSize+1))
	if err != nil {
		return err
	}
	if err := checkMarker(got); err != nil {
		return fmt.Errorf("%s: %w", u.c, err)
	}
	return nil
}

// hashFile returns the size and SHA-256 of a store file.
func (u *Uploader) hashFile(name string) (int64, string, error) {
	f, err := u.src.openShardFile(name, forUpload)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// ConflictError says an object's key holds other bytes than the local
// file: nothing is overwritten, and the local shard is kept.
type ConflictError struct {
	URL string
}

func (e *ConflictError) Error() string {
	return e.URL + ": the object store holds a different object under this name; not overwritten, the local shard is kept"
}

// put stores one object unless an identical one is there.
func (u *Uploader) put(key string, r io.Reader, size int64, sum string) (sent bool, err error) {
	err = u.c.Put(u.ctx, key, r, size, objstore.Meta{"sha256": sum})
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, objstore.ErrExists) {
		return false, err
	}
	o, herr := u.c.Head(u.ctx, key)
	if herr != nil {
		return false, herr
	}
	if o.Size == size && o.Meta["sha256"] == sum {
		return false, nil // stored by an earlier attempt
	}
	return false, &ConflictError{URL: u.c.Location().String() + key}
}

// UploadShard ships one sealed shard: its packet, index and flow files in
// parallel, then its manifest. Objects already stored identically are
// not sent again.
func (u *Uploader) UploadShard(sf ShardFile) error {
	if !u.marker.Load() {
		if err := u.ensureMarker(); err != nil {
			return err
		}
		u.marker.Store(true)
	}
	exts := manifestExts
	objs := make([]ManifestObject, len(exts))
	for i, ext := range exts {
		name := sf.stem() + ext
		n, sum, err := u.hashFile(name)
		if err != nil {
			return err
		}
		objs[i] = ManifestObject{Name: name, Size: n, SHA256: sum}
	}
	f, err := u.src.openShardFile(sf.Name(), forUpload)
	if err != nil {
		return err
	}
	sh, err := pcapio.OpenShard(f, objs[0].Size)
	if err != nil || !sh.Sealed {
		f.Close()
		if err == nil {
			err = errors.New("no trailer (run nwhealth store repair)")
		}
		return fmt.Errorf("%s: %w", sf.Name(), err)
	}
	m := &Manifest{Format: manifestFormat, Version: objectVersion, Sensor: u.opts.Sensor, Shard: sf.stem(),
		Blocks: len(sh.Blocks), Packets: sh.Packets, RawBytes: sh.RawBytes, TrailerOffset: sh.End, Objects: objs,
		Uploaded: time.Now().UTC().Truncate(time.Second)}
	for i, b := range sh.Blocks {
		if i == 0 || b.First < m.First.UnixNano() {
			m.First = time.Unix(0, b.First).UTC()
		}
		if b.Last > m.Last.UnixNano() {
			m.Last = time.Unix(0, b.Last).UTC()
		}
	}
	f.Close()
	var wg sync.WaitGroup
	errs := make([]error, len(exts))
	for i, ext := range exts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := u.src.openShardFile(objs[i].Name, forUpload)
			if err != nil {
				errs[i] = err
				return
			}
			defer f.Close()
			// The file is a ReadSeeker: the client rewinds it to retry.
			sent, err := u.put(objectKey(u.opts.Sensor, sf, ext), f, objs[i].Size, objs[i].SHA256)
			u.count(sent, objs[i].Size)
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	mb := m.encode()
	ms := sha256.Sum256(mb)
	mkey := objectKey(u.opts.Sensor, sf, extManifest)
	sent, err := u.put(mkey, bytes.NewReader(mb), int64(len(mb)), hex.EncodeToString(ms[:]))
	var ce *ConflictError
	earlier := false
	if errors.As(err, &ce) {
		// A manifest written by an earlier attempt carries its own upload
		// time: the same objects make it the same shard.
		if old, gerr := u.readManifest(mkey, sf); gerr == nil && sameObjects(old, m) {
			err, earlier = nil, true
		}
	}
	if err != nil {
		return err
	}
	u.count(sent, int64(len(mb)))
	// The shard leaves the spool next: first each object is asked for as
	// stored (size and digest), so that a gateway or proxy that answered
	// a PUT without keeping the bytes loses no evidence.
	objs = append(objs, ManifestObject{Name: sf.stem() + extManifest, Size: int64(len(mb)), SHA256: hex.EncodeToString(ms[:])})
	for i, ext := range append(append([]string{}, exts...), extManifest) {
		key := objectKey(u.opts.Sensor, sf, ext)
		o, err := u.c.Head(u.ctx, key)
		if err != nil {
			return fmt.Errorf("%s: not found as stored after its upload (kept in the spool): %w", objs[i].Name, err)
		}
		if o.Size != objs[i].Size || o.Meta["sha256"] != objs[i].SHA256 {
			if ext == extManifest && earlier {
				continue // an earlier attempt's manifest, read back above
			}
			return fmt.Errorf("%s: stored as %d bytes with SHA-256 %q, sent %d bytes with %s (kept in the spool)", objs[i].Name, o.Size, o.Meta["sha256"], objs[i].Size, objs[i].SHA256)
		}
	}
	u.mu.Lock()
	u.stats.Shards++
	u.mu.Unlock()
	return nil
}

func sameObjects(a, b *Manifest) bool {
	if len(a.Objects) != len(b.Objects) {
		return false
	}
	for i := range a.Objects {
		if a.Objects[i] != b.Objects[i] {
			return false
		}
	}
	return true
}

func (u *Uploader) readManifest(key string, sf ShardFile) (*Manifest, error) {
	rc, size, err := u.c.Open(u.ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxManifestSize {
		return nil, errors.New("manifest too large")
	}
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestSize))
	if err != nil {
		return nil, err
	}
	return decodeManifest(b, u.opts.Sensor, sf)
}

func (u *Uploader) count(sent bool, n int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if sent {
		u.stats.Bytes += n
	} else {
		u.stats.Present++
	}
}

// Stats returns a snapshot of the counters.
func (u *Uploader) Stats() UploadStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	st := u.stats
	st.Pending, st.PendingBytes = len(u.pending), 0
	for _, sf := range u.pending {
		st.PendingBytes += sf.Size
	}
	if u.busy {
		st.Pending++
	}
	return st
}

// Start uploads the sealed shards already in the store (a spool left by
// a stopped or killed run) and every shard Add hands over, in the
// background, retrying with backoff while the object store is down.
func (u *Uploader) Start() error {
	l, err := u.src.List()
	if err != nil {
		return err
	}
	u.mu.Lock()
	for _, sf := range l.Shards {
		if sf.Sealed {
			u.pending = append(u.pending, sf)
		}
	}
	u.mu.Unlock()
	u.started.Store(true)
	go u.loop()
	return nil
}

// Add queues a sealed shard (a writer's OnSeal).
func (u *Uploader) Add(sf ShardFile) {
	u.mu.Lock()
	u.pending = append(u.pending, sf)
	u.trimSpool()
	u.cond.Broadcast()
	u.mu.Unlock()
}

// trimSpool drops the oldest waiting shards past SpoolMax (u.mu held).
func (u *Uploader) trimSpool() {
	if u.opts.SpoolMax <= 0 || u.opts.Keep {
		return
	}
	var total int64
	for _, sf := range u.pending {
		total += u.localSize(sf)
	}
	sort.SliceStable(u.pending, func(i, j int) bool { return u.pending[i].Last.Before(u.pending[j].Last) })
	for len(u.pending) > 1 && total > u.opts.SpoolMax {
		sf := u.pending[0]
		n := u.localSize(sf)
		u.pending = u.pending[1:]
		u.removeLocal(sf)
		total -= n
		u.stats.Dropped++
		u.stats.DroppedBytes += n
		fmt.Fprintf(u.opts.Log, "nwhealth: spool full (more than %d bytes wait for upload): dropped %s (%d bytes), never uploaded\n", u.opts.SpoolMax, sf.Name(), n)
	}
}

func (u *Uploader) localSize(sf ShardFile) int64 {
	return u.src.shardFileSize(sf.Name()) + u.src.shardFileSize(sf.indexName()) + u.src.shardFileSize(sf.flowsName())
}

// removeLocal deletes an uploaded (or dropped) shard from the spool and
// raises the writer's sequence floor, so that the next shard never
// reuses its name.
func (u *Uploader) removeLocal(sf ShardFile) {
	u.src.raiseSeqFloor(sf.Writer, sf.Seq+1)
	u.src.removeShardFile(sf.Name())
	u.src.removeShardFile(sf.indexName())
	u.src.removeShardFile(sf.flowsName())
}

const (
	retryFirst = time.Second
	retryMax   = 30 * time.Second
)

func (u *Uploader) loop() {
	defer close(u.done)
	backoff := retryFirst
	for {
		u.mu.Lock()
		for len(u.pending) == 0 && !u.closing && u.ctx.Err() == nil {
			u.cond.Wait()
		}
		if len(u.pending) == 0 || u.ctx.Err() != nil {
			u.mu.Unlock()
			return
		}
		sf := u.pending[0]
		u.pending = u.pending[1:]
		u.busy = true
		u.mu.Unlock()
		err := u.UploadShard(sf)
		u.mu.Lock()
		u.busy = false
		var ce *ConflictError
		var fe *FileError
		switch {
		case err == nil:
			if !u.opts.Keep {
				u.removeLocal(sf)
			}
			backoff = retryFirst
			u.lastErr = nil
			u.mu.Unlock()
			u.applyRetention()
			continue
		case errors.As(err, &ce) || errors.As(err, &fe) || errors.Is(err, os.ErrNotExist):
			// Not retried (another try finds the same): kept locally and
			// named.
			u.stats.Conflicts++
			fmt.Fprintf(u.opts.Log, "nwhealth: upload of %s: %v\n", sf.Name(), err)
			u.mu.Unlock()
			continue
		}
		// Retried: back to the front of the queue.
		u.pending = append([]ShardFile{sf}, u.pending...)
		u.stats.Retries++
		if u.lastErr == nil {
			fmt.Fprintf(u.opts.Log, "nwhealth: upload of %s failed, retrying (packets keep going to the spool): %v\n", sf.Name(), err)
		}
		u.lastErr = err
		u.mu.Unlock()
		select {
		case <-time.After(backoff):
		case <-u.ctx.Done():
			return
		}
		backoff = min(2*backoff, retryMax)
	}
}

// PendingError says shards were left in the spool, still to upload.
type PendingError struct {
	Shards int
	Bytes  int64
	Spool  string
	To     string
	Err    error // the last upload failure
}

func (e *PendingError) Error() string {
	msg := fmt.Sprintf("%d shards (%d bytes) not uploaded to %s; they wait in the spool %s and are uploaded by the next run (or nwhealth store push --store %s --to %s)",
		e.Shards, e.Bytes, e.To, e.Spool, e.Spool, e.To)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *PendingError) Unwrap() error { return e.Err }

// Close waits up to wait for the queue to empty, then stops. It returns
// a *PendingError when shards are left.
func (u *Uploader) Close(wait time.Duration) error {
	if !u.started.Load() {
		u.stop()
		return nil
	}
	u.mu.Lock()
	u.closing = true
	u.cond.Broadcast()
	u.mu.Unlock()
	select {
	case <-u.done:
	case <-time.After(wait):
	}
	u.stop()
	u.mu.Lock()
	u.cond.Broadcast()
	u.mu.Unlock()
	<-u.done
	st := u.Stats()
	if st.Pending > 0 {
		u.mu.Lock()
		last := u.lastErr
		u.mu.Unlock()
		return &PendingError{Shards: st.Pending, Bytes: st.PendingBytes, Spool: u.src.Dir, To: u.Location(), Err: last}
	}
	return nil
}

// Push uploads every sealed shard of the store, opts.Parallel shards at
// a time, keeping the local files; shards already stored identically
// are not sent again.
func Push(src *Store, url string, opts UploadOptions) (UploadStats, error) {
	opts.Keep = true
	u, err := NewUploader(src, url, opts)
	if err != nil {
		return UploadStats{}, err
	}
	defer u.stop()
	l, err := src.List()
	if err != nil {
		return UploadStats{}, err
	}
	var sealed []ShardFile
	for _, sf := range l.Shards {
		if sf.Sealed {
			sealed = append(sealed, sf)
		}
	}
	var mu sync.Mutex
	var errs []error
	parallel(u.ctx, len(sealed), max(1, opts.Parallel/2), func(i int) error {
		if err := u.UploadShard(sealed[i]); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", sealed[i].Name(), err))
			mu.Unlock()
		}
		return nil
	})
	u.applyRetention()
	return u.Stats(), errors.Join(errs...)
}

// applyRetention deletes the sensor's partitions past the retention.
func (u *Uploader) applyRetention() {
	if u.opts.Retention.MaxAge <= 0 && u.opts.Retention.MaxSize <= 0 {
		return
	}
	n, err := ApplyRemoteRetention(u.ctx, u.c, u.opts.Sensor, u.opts.Retention)
	u.mu.Lock()
	u.stats.Removed += n
	u.mu.Unlock()
	if err != nil {
		fmt.Fprintf(u.opts.Log, "nwhealth: retention in %s: %v\n", u.Location(), err)
	}
}

// ApplyRemoteRetention deletes whole day partitions of one sensor,
// oldest first: those whose shards all ended more than MaxAge before the
// sensor's newest packet, then more while the sensor's objects exceed
// MaxSize (its newest partition is kept). Manifests go first, so readers
// stop seeing a shard before its objects go. It returns the partitions
// removed.
func ApplyRemoteRetention(ctx context.Context, c *objstore.Client, sensor string, ret Retention) (int, error) {
	pre := sensorsDir + sensor + "/"
	type part struct {
		day   string
		size  int64
		keys  []string
		mkeys []string
	}
	parts := map[string]*part{}
	var newest time.Time
	horizon := ret.horizon()
	var total int64
	err := c.List(ctx, pre, false, func(e objstore.Entry) error {
		k, ok := parseObjectKey(e.Key)
		if !ok || k.sensor != sensor {
			return nil
		}
		p := parts[k.day]
		if p == nil {
			p = &part{day: k.day}
			parts[k.day] = p
		}
		p.size += e.Size
		total += e.Size
		if k.ext == extManifest {
			p.mkeys = append(p.mkeys, e.Key)
			if k.sf.Last.After(newest) && !k.sf.Last.After(horizon) {
				newest = k.sf.Last
			}
		} else {
			p.keys = append(p.keys, e.Key)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	days := make([]string, 0, len(parts))
	for d := range parts {
		days = append(days, d)
	}
	sort.Strings(days)
	removed := 0
	for i, d := range days {
		p := parts[d]
		t, _ := time.Parse(dayLayout, d)
		tooOld := ret.MaxAge > 0 && !newest.IsZero() && !t.Add(24*time.Hour).After(newest.Add(-ret.MaxAge))
		tooBig := ret.MaxSize > 0 && total > ret.MaxSize && i < len(days)-1
		if !tooOld && !tooBig {
			continue
		}
		for _, k := range append(p.mkeys, p.keys...) {
			if err := c.Delete(ctx, k); err != nil {
				return removed, err
			}
		}
		total -= p.size
		removed++
	}
	return removed, nil
}

// Sequence floors: a spool removes shards once uploaded, so a writer
// cannot find its next sequence number in the listing alone. SEQ in the
// store directory keeps, per writer, the lowest number it may use next
// ("WRITER SEQ" lines).
const seqName = "SEQ"

func (s *Store) seqFloors() map[string]uint32 {
	out := map[string]uint32{}
	d, err := s.openDir("")
	if err != nil {
		return out
	}
	defer d.close()
	f, err := s.openAt(d, seqName, forRead)
	if err != nil {
		return out
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	for _, line := range strings.Split(string(b), "\n") {
		w, n, ok := strings.Cut(line, " ")
		v, err := strconv.ParseUint(n, 10, 32)
		if ok && err == nil && validWriter(w) {
			out[w] = uint32(v)
		}
	}
	return out
}

// raiseSeqFloor records that writer's next sequence number is at least
// seq (the lock holder's call).
func (s *Store) raiseSeqFloor(writer string, seq uint32) {
	floors := s.seqFloors()
	if floors[writer] >= seq {
		return
	}
	floors[writer] = seq
	var b strings.Builder
	keys := make([]string, 0, len(floors))
	for w := range floors {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	for _, w := range keys {
		fmt.Fprintf(&b, "%s %d\n", w, floors[w])
	}
	d, err := s.openDir("")
	if err != nil {
		return
	}
	defer d.close()
	tmp := seqName + extTmp
	removeAt(d, tmp)
	f, err := createAt(d, tmp)
	if err != nil {
		return
	}
	_, werr := f.WriteString(b.String())
	if werr == nil {
		werr = f.Sync()
	}
	f.Close()
	if werr != nil {
		removeAt(d, tmp)
		return
	}
	renameAt(d, tmp, seqName, false)
}
