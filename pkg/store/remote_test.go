package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/s3test"
	"github.com/nwhealth/nwhealth/pkg/flow"
	"github.com/nwhealth/nwhealth/pkg/objstore"
	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// fleet is two sensors' local stores pushed to a real object store.
type fleet struct {
	srv    *s3test.Server
	url    string
	locals []*Store
	pkts   [][]pcapio.Packet
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	srv := s3test.Start(t)
	fl := &fleet{srv: srv, url: "s3://nwh/fleet"}
	start := time.Date(2026, 3, 2, 23, 59, 45, 0, time.UTC) // shards on both sides of a day partition
	for i, sensor := range []string{"sensor-a", "sensor-b"} {
		pkts := genPackets(30000, start.Add(time.Duration(i)*time.Second))
		st := writeStore(t, t.TempDir(), pkts, WriterOptions{ShardSize: 400 << 10, BlockSize: 8 << 10, NewFlows: testFlows})
		if _, err := Push(st, fl.url, UploadOptions{Config: s3test.Config(srv.Endpoint), Sensor: sensor}); err != nil {
			t.Fatal(err)
		}
		fl.locals = append(fl.locals, st)
		fl.pkts = append(fl.pkts, pkts)
	}
	return fl
}

func testFlows() FlowTable { return flow.NewBuilder(flow.Options{}) }

func (fl *fleet) remote(t *testing.T, sensors ...string) *Remote {
	t.Helper()
	r, err := OpenRemote(fl.url, RemoteOptions{Config: s3test.Config(fl.srv.Endpoint), Sensors: sensors, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func queryReaders(t *testing.T, rs []Reader, sel Selector) ([]pcapio.Packet, error) {
	t.Helper()
	pl, err := PlanQuery(rs, sel)
	if err != nil {
		return nil, err
	}
	defer pl.Close()
	var out []pcapio.Packet
	err = pl.Run(func(p pcapio.Packet) error {
		p.Data = append([]byte(nil), p.Data...)
		p.Offset = 0
		out = append(out, p)
		return nil
	})
	return out, err
}

// TestRemoteMatchesLocal: a query over the object store returns what the
// same query over the local stores returns, packet for packet, for every
// kind of selector; and --sensor selects.
func TestRemoteMatchesLocal(t *testing.T) {
	fl := newFleet(t)
	r := fl.remote(t)
	host := fl.pkts[0][100]
	var ph pktInfo
	ph.parse(host)
	sels := map[string]Selector{
		"all":  {},
		"host": {Hosts: []netip.Addr{ph.src}},
		"time": {From: fl.pkts[0][5000].Timestamp, To: fl.pkts[0][9000].Timestamp},
		"port": {Ports: []uint16{ph.port}},
		"net":  {Nets: []netip.Prefix{netip.PrefixFrom(ph.src, 16).Masked()}, From: fl.pkts[0][2000].Timestamp},
	}
	for name, sel := range sels {
		want, err := queryReaders(t, []Reader{fl.locals[0], fl.locals[1]}, sel)
		if err != nil {
			t.Fatal(err)
		}
		got, err := queryReaders(t, []Reader{r}, sel)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(want) == 0 {
			t.Fatalf("%s: no packets selected", name)
		}
		t.Logf("%s: %d packets", name, len(got))
		samePackets(t, got, want)
	}
	// A second run reads blocks only: manifests, heads, tables of
	// contents and indexes come from the cache.
	before := r.BytesRead.Load()
	if _, err := queryReaders(t, []Reader{r}, sels["time"]); err != nil {
		t.Fatal(err)
	}
	rep, _ := fl.locals[0].Info(false)
	rep2, _ := fl.locals[1].Info(false)
	stored := rep.StoredBytes + rep2.StoredBytes
	if read := r.BytesRead.Load() - before; read <= 0 || read > stored/4 {
		t.Errorf("a query of an eighth of the time read %d of %d stored bytes", read, stored)
	}

	only, err := queryReaders(t, []Reader{fl.remote(t, "*-a")}, Selector{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := queryReaders(t, []Reader{fl.locals[0]}, Selector{})
	samePackets(t, only, want)

	// Flows: the same records in the same order.
	var lf, rf []flow.Record
	if err := Flows([]Reader{fl.locals[0], fl.locals[1]}, Selector{}, nil, func(x *flow.Record) error { lf = append(lf, *x); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := Flows([]Reader{r}, Selector{}, nil, func(x *flow.Record) error { rf = append(rf, *x); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(lf) == 0 || len(lf) != len(rf) {
		t.Fatalf("flows: %d local, %d remote", len(lf), len(rf))
	}
	for i := range lf {
		if lf[i].First != rf[i].First || lf[i].Orig != rf[i].Orig || lf[i].OrigPkts != rf[i].OrigPkts {
			t.Fatalf("flow %d differs", i)
		}
	}

	// Info from the manifests, and a clean verify.
	ri, err := r.Info(true)
	if err != nil {
		t.Fatal(err)
	}
	if ri.Packets != 60000 || len(ri.Damage) != 0 || ri.BlocksChecked == 0 {
		t.Fatalf("info: %d packets, damage %v, %d blocks checked", ri.Packets, ri.Damage, ri.BlocksChecked)
	}
}

type pktInfo struct {
	src  netip.Addr
	port uint16
}

func (p *pktInfo) parse(pk pcapio.Packet) {
	var h pkthdr.Packet
	pkthdr.Parse(pk.LinkType, pk.Data, &h)
	p.src, p.port = h.Src, h.DstPort
}

// TestPushResumes: a second push sends nothing and stores no duplicate.
func TestPushResumes(t *testing.T) {
	fl := newFleet(t)
	st, err := Push(fl.locals[0], fl.url, UploadOptions{Config: s3test.Config(fl.srv.Endpoint), Sensor: "sensor-a"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes != 0 || st.Present == 0 || st.Shards == 0 {
		t.Fatalf("second push: %+v", st)
	}
	// The same name with other bytes is a conflict, never an overwrite.
	time.Sleep(10 * time.Millisecond) // another creation time in the shard headers
	other := writeStore(t, t.TempDir(), fl.pkts[0], WriterOptions{ShardSize: 400 << 10, BlockSize: 8 << 10, NewFlows: testFlows})
	_, err = Push(other, fl.url, UploadOptions{Config: s3test.Config(fl.srv.Endpoint), Sensor: "sensor-a"})
	var ce *ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("conflicting push: %v", err)
	}
}

// backendPath is where versitygw keeps an object.
func (fl *fleet) backendPath(key string) string {
	return filepath.Join(fl.srv.Dir, "nwh", "fleet", filepath.FromSlash(key))
}

// TestRemoteDamage: an object deleted or changed behind nwhealth's back
// is named (query and verify), and everything else is delivered.
func TestRemoteDamage(t *testing.T) {
	fl := newFleet(t)
	r := fl.remote(t)
	l, err := r.List()
	if err != nil || len(l.Shards) < 4 {
		t.Fatalf("%d shards, %v", len(l.Shards), err)
	}
	gone, changed := l.Shards[1], l.Shards[2]
	if err := os.Remove(fl.backendPath(gone.Base + extShard)); err != nil {
		t.Fatal(err)
	}
	p := fl.backendPath(changed.Base + extShard)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := queryReaders(t, []Reader{fl.remote(t)}, Selector{})
	var de *DamageError
	if !errors.As(err, &de) {
		t.Fatalf("query: %v, want damage", err)
	}
	names := ""
	for _, d := range de.Damage {
		names += d.String() + "\n"
	}
	if !strings.Contains(names, gone.Label()) || !strings.Contains(names, changed.Label()) {
		t.Fatalf("damage does not name both shards:\n%s", names)
	}
	if len(got) == 0 || len(got) >= 60000 {
		t.Fatalf("%d packets delivered", len(got))
	}
	rep, err := fl.remote(t).Info(true)
	if err != nil {
		t.Fatal(err)
	}
	text := ""
	for _, d := range rep.Damage {
		text += d.String() + "\n"
	}
	if !strings.Contains(text, "SHA-256") || !strings.Contains(text, "missing") {
		t.Fatalf("verify:\n%s", text)
	}
}

// TestRemoteServerDown: a store that stops answering in the middle of a
// query fails it with an error naming the endpoint, not as damage.
func TestRemoteServerDown(t *testing.T) {
	fl := newFleet(t)
	px := s3test.NewProxy(t, fl.srv.Endpoint)
	r, err := OpenRemote(fl.url, RemoteOptions{Config: s3test.Config(px.Endpoint), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	px.FailAfter.Store(30)
	_, err = queryReaders(t, []Reader{r}, Selector{})
	var de *DamageError
	if err == nil || errors.As(err, &de) || !errors.Is(err, objstore.ErrUnavailable) || !strings.Contains(err.Error(), px.Endpoint) {
		t.Fatalf("query with the server down: %v", err)
	}
}

// TestSpoolUpload: a writer's shards go through the spool while the
// object store is down, and are uploaded (and removed from the spool)
// once it is back; sequence numbers go on past the removed shards.
func TestSpoolUpload(t *testing.T) {
	srv := s3test.Start(t)
	px := s3test.NewProxy(t, srv.Endpoint)
	dir := t.TempDir()
	st, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	u, err := NewUploader(st, "s3://nwh/spool", UploadOptions{Config: s3test.Config(px.Endpoint), Sensor: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	px.Down.Store(true)
	pkts := genPackets(20000, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	writeStore(t, dir, pkts, WriterOptions{ShardSize: 300 << 10, NewFlows: testFlows, OnSeal: u.Add})
	// The store stays down until an upload has failed back to the
	// uploader (the client's own retries come first, so how long that
	// takes depends on the machine): a fixed wait let a fast writer's
	// first upload outlast the outage inside the client, with no retry.
	for deadline := time.Now().Add(time.Minute); u.Stats().Retries == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if s := u.Stats(); s.Shards != 0 || s.Pending == 0 || s.Retries == 0 {
		t.Fatalf("while down: %+v", s)
	}
	px.Down.Store(false)
	if err := u.Close(time.Minute); err != nil {
		t.Fatal(err)
	}
	if s := u.Stats(); s.Shards < 2 || s.Pending != 0 || s.Retries == 0 {
		t.Fatalf("after: %+v", s)
	}
	if l, _ := st.List(); len(l.Shards) != 0 {
		t.Fatalf("spool still holds %d shards", len(l.Shards))
	}
	if next, _ := st.nextSeq("imp"); next < 2 {
		t.Fatalf("next sequence %d after the spool emptied", next)
	}
	r, err := OpenRemote("s3://nwh/spool", RemoteOptions{Config: s3test.Config(srv.Endpoint), CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := queryReaders(t, []Reader{r}, Selector{})
	if err != nil {
		t.Fatal(err)
	}
	samePackets(t, got, pkts)
}

// TestRemoteRetention deletes whole partitions of one sensor.
func TestRemoteRetention(t *testing.T) {
	fl := newFleet(t)
	c := fl.srv.Client(t, fl.url)
	n, err := ApplyRemoteRetention(context.Background(), c, "sensor-a", Retention{MaxAge: 10 * time.Second})
	if err != nil || n != 1 {
		t.Fatalf("removed %d partitions: %v", n, err)
	}
	l, err := fl.remote(t).List()
	if err != nil {
		t.Fatal(err)
	}
	for _, sf := range l.Shards {
		if sf.Sensor == "sensor-a" && partitionOf(sf) == "2026-03-02" {
			t.Fatalf("%s kept", sf.Label())
		}
	}
}

// TestSpoolFull: past SpoolMax the oldest waiting shards are dropped,
// counted and named, never silently; the newest wait for the upload.
func TestSpoolFull(t *testing.T) {
	srv := s3test.Start(t)
	px := s3test.NewProxy(t, srv.Endpoint)
	dir := t.TempDir()
	st, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	var mu sync.Mutex
	u, err := NewUploader(st, "s3://nwh/full", UploadOptions{Config: s3test.Config(px.Endpoint), Sensor: "s1", SpoolMax: 700 << 10,
		Log: writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return log.Write(p) })})
	if err != nil {
		t.Fatal(err)
	}
	px.Down.Store(true)
	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	writeStore(t, dir, genPackets(40000, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)), WriterOptions{ShardSize: 300 << 10, NewFlows: testFlows, OnSeal: u.Add})
	s := u.Stats()
	if s.Dropped == 0 || s.DroppedBytes == 0 {
		t.Fatalf("nothing dropped: %+v", s)
	}
	mu.Lock()
	msg := log.String()
	mu.Unlock()
	if strings.Count(msg, "spool full") != s.Dropped {
		t.Fatalf("%d drops, log:\n%s", s.Dropped, msg)
	}
	px.Down.Store(false)
	if err := u.Close(time.Minute); err != nil {
		t.Fatal(err)
	}
	if s := u.Stats(); s.Shards == 0 || s.Pending != 0 {
		t.Fatalf("after: %+v", s)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestRemoteHostileObjects: objects planted in the bucket (names that are
// not store names, an oversized manifest, a manifest lying about sizes)
// are ignored or named, never trusted; every real packet is delivered.
func TestRemoteHostileObjects(t *testing.T) {
	fl := newFleet(t)
	plant := func(key string, b []byte) {
		p := fl.backendPath(key)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const stem = "20260303T000000Z_20260303T000010Z_imp-00000077"
	plant("sensors/sensor-a/2026-03-03/garbage.shard", []byte("x"))
	plant("sensors/sensor-a/2026-03-02/"+stem+".manifest", []byte("{}")) // wrong day: not a store name
	plant("sensors/..x/2026-03-03/"+stem+".manifest", []byte("{}"))
	plant("sensors/evil/2026-03-03/"+stem+".manifest", make([]byte, maxManifestSize+1))
	plant("sensors/evil/2026-03-03/"+stem+".shard", make([]byte, 1000))
	// A manifest copied from a real shard under another name: its names
	// do not match its key.
	l, err := fl.remote(t).List()
	if err != nil {
		t.Fatal(err)
	}
	real, _ := os.ReadFile(fl.backendPath(l.Shards[0].Base + extManifest))
	plant("sensors/liar/2026-03-03/"+stem+".manifest", real)
	plant("sensors/liar/2026-03-03/"+stem+".shard", make([]byte, 10))

	got, err := queryReaders(t, []Reader{fl.remote(t)}, Selector{})
	var de *DamageError
	if !errors.As(err, &de) || len(de.Damage) != 2 {
		t.Fatalf("query: %v", err)
	}
	for _, d := range de.Damage {
		if !strings.HasPrefix(d.Shard, "evil/") && !strings.HasPrefix(d.Shard, "liar/") {
			t.Fatalf("damage %s", d)
		}
	}
	want, _ := queryReaders(t, []Reader{fl.locals[0], fl.locals[1]}, Selector{})
	samePackets(t, got, want)
}

// TestFollowRemote: following an object store delivers what is there,
// then the shards of a sensor that uploads later.
func TestFollowRemote(t *testing.T) {
	fl := newFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := Follow(ctx, []Reader{fl.remote(t)}, Selector{}, false, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	count := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if _, err := f.Next(); err != nil {
				t.Fatalf("packet %d of %d: %v", i, n, err)
			}
		}
	}
	count(60000)
	more := writeStore(t, t.TempDir(), genPackets(5000, time.Date(2026, 3, 3, 1, 0, 0, 0, time.UTC)), WriterOptions{NewFlows: testFlows})
	if _, err := Push(more, fl.url, UploadOptions{Config: s3test.Config(fl.srv.Endpoint), Sensor: "sensor-c"}); err != nil {
		t.Fatal(err)
	}
	count(5000)
	if len(f.Damage) != 0 {
		t.Fatalf("damage %v", f.Damage)
	}
}

// TestRemoteListsLater: the sensors and partitions listed while the
// store is opened stand in only for a listing made at once: one made
// later sees a sensor that uploaded meanwhile.
func TestRemoteListsLater(t *testing.T) {
	fl := newFleet(t)
	r := fl.remote(t)
	time.Sleep(earlyUse + 100*time.Millisecond)
	late := writeStore(t, t.TempDir(), genPackets(2000, time.Date(2026, 3, 4, 1, 0, 0, 0, time.UTC)), WriterOptions{NewFlows: testFlows})
	if _, err := Push(late, fl.url, UploadOptions{Config: s3test.Config(fl.srv.Endpoint), Sensor: "sensor-late"}); err != nil {
		t.Fatal(err)
	}
	l, err := r.List()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, sf := range l.Shards {
		seen[sf.Sensor] = true
	}
	for _, s := range []string{"sensor-a", "sensor-b", "sensor-late"} {
		if !seen[s] {
			t.Errorf("listing has no shard of %s (sensors seen: %v)", s, seen)
		}
	}
}

// TestRemoteRegionLookedUpOnce: without a configured region the bucket's
// location is asked once, not by each of the first requests made at once.
func TestRemoteRegionLookedUpOnce(t *testing.T) {
	fl := newFleet(t)
	px := s3test.NewProxy(t, fl.srv.Endpoint)
	var lookups atomic.Int32
	px.SetHook(func(r *http.Request) {
		if _, ok := r.URL.Query()["location"]; ok {
			lookups.Add(1)
		}
	})
	cfg := s3test.Config(px.Endpoint)
	cfg.Region = ""
	r, err := OpenRemote(fl.url, RemoteOptions{Config: cfg, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.List(); err != nil {
		t.Fatal(err)
	}
	if n := lookups.Load(); n != 1 {
		t.Fatalf("%d location requests, want 1", n)
	}
}

// TestFetchBufferReuse: a dropped range's buffer serves the next range
// that fits (the smallest that does), buffers come in steps so that a
// range a little longer than the last still fits, a range is never
// handed a buffer too small, and the list of kept buffers is bounded.
func TestFetchBufferReuse(t *testing.T) {
	emptyFetchPool()
	f := &rangeFetcher{}
	a, b := f.buffer(30000), f.buffer(fetchBufStep+100)
	if cap(a) != fetchBufStep || cap(b) != 2*fetchBufStep {
		t.Fatalf("fresh buffers of cap %d and %d, want %d and %d", cap(a), cap(b), fetchBufStep, 2*fetchBufStep)
	}
	f.recycle(a)
	f.recycle(b)
	if got := f.buffer(30100); cap(got) != fetchBufStep || len(got) != 30100 {
		t.Fatalf("buffer(30100): len %d cap %d, want the first buffer", len(got), cap(got))
	}
	if got := f.buffer(2*fetchBufStep + 1); cap(got) < 2*fetchBufStep+1 || len(got) != 2*fetchBufStep+1 {
		t.Fatalf("buffer(%d): len %d cap %d", 2*fetchBufStep+1, len(got), cap(got))
	}
	if got := f.buffer(200); cap(got) != 2*fetchBufStep || len(got) != 200 {
		t.Fatalf("buffer(200): len %d cap %d, want the second buffer", len(got), cap(got))
	}
	for range 10 * fetchParallel {
		f.recycle(make([]byte, 8))
	}
	if len(f.free) > 2*fetchParallel {
		t.Fatalf("%d buffers kept, want at most %d", len(f.free), 2*fetchParallel)
	}
}

// TestRemoteRetentionFutureStamp: as TestRetentionFutureStamp, for a
// sensor's partitions in the bucket.
func TestRemoteRetentionFutureStamp(t *testing.T) {
	srv := s3test.Start(t)
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := append(genPackets(20000, start), genPackets(10, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC))...)
	st := writeStore(t, t.TempDir(), pkts, WriterOptions{ShardSize: 400 << 10, BlockSize: 8 << 10, NewFlows: testFlows})
	if _, err := Push(st, "s3://nwh/future", UploadOptions{Config: s3test.Config(srv.Endpoint), Sensor: "s1"}); err != nil {
		t.Fatal(err)
	}
	c := srv.Client(t, "s3://nwh/future")
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	n, err := ApplyRemoteRetention(context.Background(), c, "s1", Retention{MaxAge: time.Hour, Now: now})
	if err != nil || n != 0 {
		t.Fatalf("removed %d partitions: %v", n, err)
	}
	n, err = ApplyRemoteRetention(context.Background(), c, "s1", Retention{MaxAge: time.Hour, Now: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil || n != 1 {
		t.Fatalf("clock at the stamp: removed %d partitions, want the March one: %v", n, err)
	}
}

// TestUploadLostByGateway: a gateway that answers 200 to a PUT without
// storing the bytes must not make the spool delete the shard: each object
// is asked for after the upload, and the shard stays until it is there.
func TestUploadLostByGateway(t *testing.T) {
	srv := s3test.Start(t)
	target, _ := url.Parse(srv.Endpoint)
	var lose atomic.Bool
	lose.Store(true)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host // signed
	}}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lose.Load() && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, extFlows) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("ETag", `"00000000000000000000000000000000"`)
			w.WriteHeader(http.StatusOK) // acknowledged, never stored
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer gw.Close()
	dir := t.TempDir()
	st, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	u, err := NewUploader(st, "s3://nwh/lost", UploadOptions{Config: s3test.Config(gw.URL), Sensor: "s1", Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	writeStore(t, dir, genPackets(5000, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)), WriterOptions{ShardSize: 300 << 10, NewFlows: testFlows, OnSeal: u.Add})
	sealed, _ := st.Shards()
	err = u.Close(2 * time.Second)
	var pe *PendingError
	if !errors.As(err, &pe) || pe.Shards == 0 || !strings.Contains(pe.Err.Error(), "not found as stored") {
		t.Fatalf("close: %v, want shards pending after a lost object", err)
	}
	if left, _ := st.Shards(); len(left) != len(sealed) || len(left) == 0 {
		t.Fatalf("%d of %d shards left in the spool", len(left), len(sealed))
	}
	// Once the gateway keeps what it is sent, the next run ships them.
	lose.Store(false)
	if _, err := Push(st, "s3://nwh/lost", UploadOptions{Config: s3test.Config(gw.URL), Sensor: "s1"}); err != nil {
		t.Fatal(err)
	}
}

// TestUploadRefusesHardLink: a spooled shard's file replaced by a hard
// link to another file (one root may read, owned as the store's files
// are) is not uploaded: the upload names it, the uploader keeps the
// shard without retrying it, and nothing of the linked file reaches the
// bucket. A symbolic link is refused the same way.
func TestUploadRefusesHardLink(t *testing.T) {
	srv := s3test.Start(t)
	dir := t.TempDir()
	pkts := genPackets(3000, time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	st := writeStore(t, filepath.Join(dir, "spool"), pkts, WriterOptions{NewFlows: testFlows})
	l, err := st.List()
	if err != nil || len(l.Shards) != 1 {
		t.Fatalf("%d shards: %v", len(l.Shards), err)
	}
	sf := l.Shards[0]
	secret := []byte("root's secret key, not evidence\n")
	for _, c := range []struct {
		name  string
		plant func(victim, at string) error
		says  string
	}{
		{"hard link", os.Link, "2 hard links; not uploaded"},
		{"symbolic link", os.Symlink, "symbolic link"},
	} {
		t.Run(c.name, func(t *testing.T) {
			victim := filepath.Join(dir, "secret") // the spool's file system
			os.Remove(victim)
			if err := os.WriteFile(victim, secret, 0o600); err != nil {
				t.Fatal(err)
			}
			flows := sf.FlowsPath()
			saved, _ := os.ReadFile(flows)
			os.Remove(flows)
			if err := c.plant(victim, flows); err != nil {
				t.Fatal(err)
			}
			defer func() {
				os.Remove(flows)
				os.WriteFile(flows, saved, 0o600)
			}()
			url := "s3://nwh/" + strings.ReplaceAll(c.name, " ", "")
			_, err := Push(st, url, UploadOptions{Config: s3test.Config(srv.Endpoint), Sensor: "s"})
			var fe *FileError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), sf.flowsName()) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("push: %v", err)
			}
			// The uploader of a capture keeps the shard, named, and does
			// not retry it.
			var log bytes.Buffer
			u, err := NewUploader(st, url, UploadOptions{Config: s3test.Config(srv.Endpoint), Sensor: "s", Log: &log})
			if err != nil {
				t.Fatal(err)
			}
			if err := u.Start(); err != nil {
				t.Fatal(err)
			}
			if err := u.Close(time.Minute); err != nil {
				t.Fatal(err)
			}
			if s := u.Stats(); s.Conflicts != 1 || s.Retries != 0 || s.Shards != 0 || !strings.Contains(log.String(), sf.flowsName()) {
				t.Errorf("uploader: %+v: %s", s, log.String())
			}
			if !st.shardFileExists(sf.Name()) {
				t.Error("the shard left the spool")
			}
			filepath.Walk(srv.Dir, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					if b, _ := os.ReadFile(p); bytes.Contains(b, secret) {
						t.Errorf("the linked file reached the bucket as %s", p)
					}
				}
				return nil
			})
		})
	}
}
