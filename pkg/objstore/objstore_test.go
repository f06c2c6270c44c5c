package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nwhealth/nwhealth/internal/s3test"
	"github.com/nwhealth/nwhealth/pkg/objstore"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in, bucket, prefix string
		ok                 bool
	}{
		{"s3://nwh", "nwh", "", true},
		{"s3://nwh/", "nwh", "", true},
		{"s3://nwh/a/b", "nwh", "a/b/", true},
		{"s3://nwh/a/b/", "nwh", "a/b/", true},
		{"s3://NWH/a", "", "", false},
		{"s3://ab/a", "", "", false},
		{"s3://nwh/a/../b", "", "", false},
		{"s3://nwh/a//b", "", "", false},
		{"s3://nwh/a b", "", "", false},
		{"/srv/store", "", "", false},
		{"s3://-nwh/a", "", "", false},
	} {
		loc, err := objstore.ParseURL(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (loc.Bucket != tc.bucket || loc.Prefix != tc.prefix) {
			t.Errorf("%q: %+v", tc.in, loc)
		}
	}
}

func TestCleanKey(t *testing.T) {
	for k, want := range map[string]bool{"a/b.shard": true, "a": true, "": false, "/a": false, "a/../b": false, "a//b": false, "a/./b": false, "a\x00": false, "a\\b": false, "a/": false} {
		if got := objstore.CleanKey(k); got != want {
			t.Errorf("CleanKey(%q) = %v", k, got)
		}
	}
}

// TestRealServer runs every operation against versitygw: conditional PUT
// refused when the object exists, ranged reads, listings, metadata.
func TestRealServer(t *testing.T) {
	srv := s3test.Start(t)
	c := srv.Client(t, "s3://nwh/fleet")
	ctx := context.Background()
	if err := c.CheckBucket(ctx); err != nil {
		t.Fatal(err)
	}
	body := []byte("0123456789abcdef")
	if err := c.Put(ctx, "a/x", bytes.NewReader(body), int64(len(body)), objstore.Meta{"sha256": "abc"}); err != nil {
		t.Fatal(err)
	}
	err := c.Put(ctx, "a/x", bytes.NewReader([]byte("other")), 5, nil)
	if !errors.Is(err, objstore.ErrExists) {
		t.Fatalf("second PUT: %v, want ErrExists", err)
	}
	p := make([]byte, 4)
	if err := c.ReadAt(ctx, "a/x", p, 10); err != nil || string(p) != "abcd" {
		t.Fatalf("ReadAt: %q %v", p, err)
	}
	if err := c.ReadAt(ctx, "a/x", make([]byte, 8), 12); err == nil {
		t.Fatal("read past the end: no error")
	}
	o, err := c.Head(ctx, "a/x")
	if err != nil || o.Size != 16 || o.Meta["sha256"] != "abc" {
		t.Fatalf("Head: %+v %v", o, err)
	}
	if _, err := c.Head(ctx, "a/none"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Head missing: %v", err)
	}
	var keys []string
	if err := c.List(ctx, "", true, func(e objstore.Entry) error { keys = append(keys, e.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "a/" {
		t.Fatalf("List with delimiter: %q", keys)
	}
	if err := c.Delete(ctx, "a/x"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "a/x"); err != nil {
		t.Fatalf("deleting a missing object: %v", err)
	}
}

// TestWrongCredentials: the error names the endpoint and the bucket and
// says access was denied, and never holds the secret.
func TestWrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	cfg := s3test.Config(srv.Endpoint)
	const secret = "wrong-secret-XYZZY-4242"
	cfg.Creds = credentials.NewStaticV4(s3test.AccessKey, secret, "")
	loc, _ := objstore.ParseURL("s3://nwh/p")
	c, err := objstore.New(cfg, loc)
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckBucket(context.Background())
	if !errors.Is(err, objstore.ErrDenied) {
		t.Fatalf("err %v, want ErrDenied", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, srv.Endpoint) || !strings.Contains(msg, "s3://nwh/") || strings.Contains(msg, secret) {
		t.Fatalf("message %q", msg)
	}
}

// TestSlowDownRetried: 503 SlowDown answers are retried.
func TestSlowDownRetried(t *testing.T) {
	srv := s3test.Start(t)
	px := s3test.NewProxy(t, srv.Endpoint)
	loc, _ := objstore.ParseURL("s3://nwh/p")
	c, err := objstore.New(s3test.Config(px.Endpoint), loc)
	if err != nil {
		t.Fatal(err)
	}
	px.SlowDown.Store(2)
	body := []byte("hello")
	if err := c.Put(context.Background(), "k", bytes.NewReader(body), 5, nil); err != nil {
		t.Fatalf("PUT after two SlowDown: %v", err)
	}
	px.Down.Store(true)
	err = c.ReadAt(context.Background(), "k", make([]byte, 5), 0)
	if !errors.Is(err, objstore.ErrUnavailable) || !strings.Contains(err.Error(), px.Endpoint) {
		t.Fatalf("server down: %v", err)
	}
}

// TestRangedReadPaths: ranged reads against versitygw give the object's
// bytes whether signed by the fast path (rangeget.go) or, for what it
// does not take, by minio-go: a key that needs escaping, an error answer
// (503 SlowDown, then retried), a missing object, wrong credentials.
func TestRangedReadPaths(t *testing.T) {
	srv := s3test.Start(t)
	px := s3test.NewProxy(t, srv.Endpoint)
	var mu sync.Mutex
	agents := map[string]int{} // user agents of ranged GETs, by library
	px.SetHook(func(r *http.Request) {
		if r.Method == http.MethodGet && r.Header.Get("Range") != "" {
			mu.Lock()
			if strings.Contains(r.UserAgent(), "minio-go") {
				agents["minio-go"]++
			} else {
				agents["fast"]++
			}
			mu.Unlock()
		}
	})
	seen := func() (fast, minio int) {
		mu.Lock()
		defer mu.Unlock()
		fast, minio = agents["fast"], agents["minio-go"]
		clear(agents)
		return
	}
	loc, _ := objstore.ParseURL("s3://nwh/p")
	c, err := objstore.New(s3test.Config(px.Endpoint), loc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := make([]byte, 300<<10)
	for i := range body {
		body[i] = byte(i * 7 / 3)
	}
	for _, k := range []string{"sensors/a/x.shard", "odd+key=1"} {
		if err := c.Put(ctx, k, bytes.NewReader(body), int64(len(body)), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range [][2]int{{0, 1}, {5, 4096}, {1000, 100 << 10}, {len(body) - 10, 10}} {
		p := make([]byte, r[1])
		if err := c.ReadAt(ctx, "sensors/a/x.shard", p, int64(r[0])); err != nil || !bytes.Equal(p, body[r[0]:r[0]+r[1]]) {
			t.Fatalf("ReadAt %v: %v (bytes differ: %v)", r, err, !bytes.Equal(p, body[r[0]:r[0]+r[1]]))
		}
	}
	if fast, minio := seen(); fast != 4 || minio != 0 {
		t.Fatalf("plain key: %d fast and %d minio-go GETs, want 4 and 0", fast, minio)
	}
	p := make([]byte, 50)
	if err := c.ReadAt(ctx, "odd+key=1", p, 20); err != nil || !bytes.Equal(p, body[20:70]) {
		t.Fatalf("key needing escaping: %v", err)
	}
	if fast, minio := seen(); fast != 0 || minio != 1 {
		t.Fatalf("key needing escaping: %d fast and %d minio-go GETs, want 0 and 1", fast, minio)
	}
	px.SlowDown.Store(2)
	if err := c.ReadAt(ctx, "sensors/a/x.shard", p, 100); err != nil || !bytes.Equal(p, body[100:150]) {
		t.Fatalf("after SlowDown: %v", err)
	}
	if fast, minio := seen(); fast != 0 || minio != 1 {
		t.Fatalf("after SlowDown: %d fast and %d minio-go GETs reached the server, want 0 and 1", fast, minio)
	}
	if err := c.ReadAt(ctx, "sensors/a/none", p, 0); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("missing object: %v, want ErrNotFound", err)
	}
	if err := c.ReadAt(ctx, "sensors/a/x.shard", make([]byte, 20), int64(len(body)-10)); err == nil {
		t.Fatal("read past the end: no error")
	}
	cfg := s3test.Config(px.Endpoint)
	const secret = "wrong-secret-XYZZY-4242"
	cfg.Creds = credentials.NewStaticV4(s3test.AccessKey, secret, "")
	bad, err := objstore.New(cfg, loc)
	if err != nil {
		t.Fatal(err)
	}
	err = bad.ReadAt(ctx, "sensors/a/x.shard", p, 0)
	if !errors.Is(err, objstore.ErrDenied) || strings.Contains(err.Error(), secret) {
		t.Fatalf("wrong credentials: %v, want ErrDenied without the secret", err)
	}
}
