package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/nwhealth/nwhealth/pkg/objstore"
)

// Credentials of the hostile-server tests: they must never appear in an
// error, nor reach another host.
const (
	hostileKey    = "AKIAHOSTILETEST00001"
	hostileSecret = "hostile-secret-0123456789abcdefghijKLMN"
	hostileToken  = "hostile-session-token-ZZZZ0123456789"
)

func hostileClient(t *testing.T, endpoint, region string) *objstore.Client {
	t.Helper()
	loc, _ := objstore.ParseURL("s3://nwh/fleet")
	c, err := objstore.New(objstore.Config{Endpoint: endpoint, Region: region, MaxRetries: 1,
		Creds: credentials.NewStaticV4(hostileKey, hostileSecret, hostileToken)}, loc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// endless writes an XML answer that opens an element and never closes it
// (up to 4 MaxAnswer, so that a client without the bound ends too),
// counting what it sent.
func endless(sent *atomic.Int64, open string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusOK)
		n, _ := io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+open)
		sent.Add(int64(n))
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for i := 0; i < 4*objstore.MaxAnswer/len(chunk); i++ {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}
}

// TestHostileServerAnswers: a listing or a bucket location that never
// ends is cut at MaxAnswer with a clear error, not read into memory.
func TestHostileServerAnswers(t *testing.T) {
	tests := []struct {
		name   string
		open   string
		region string // "" makes the client ask the bucket's location
		do     func(ctx context.Context, c *objstore.Client) error
	}{
		{"listing with an endless key", "<ListBucketResult><Name>nwh</Name><Contents><Key>", "us-east-1", func(ctx context.Context, c *objstore.Client) error {
			return c.List(ctx, "sensors/", false, func(objstore.Entry) error { return nil })
		}},
		{"listing with endless prefixes", "<ListBucketResult><Name>nwh</Name><CommonPrefixes><Prefix>", "us-east-1", func(ctx context.Context, c *objstore.Client) error {
			return c.List(ctx, "sensors/", true, func(objstore.Entry) error { return nil })
		}},
		{"endless bucket location", "<LocationConstraint>", "", func(ctx context.Context, c *objstore.Client) error {
			_, err := c.Region(ctx)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sent atomic.Int64
			srv := httptest.NewServer(endless(&sent, tc.open))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := tc.do(ctx, hostileClient(t, srv.URL, tc.region))
			if err == nil || !strings.Contains(err.Error(), "larger than") {
				t.Fatalf("err %v, want the answer refused as too large", err)
			}
			noSecret(t, err)
			// Two attempts (MaxRetries 1), each cut after MaxAnswer and
			// what the connection buffers.
			if got := sent.Load(); got > 3*objstore.MaxAnswer {
				t.Errorf("server sent %d bytes before the client gave up (bound %d)", got, objstore.MaxAnswer)
			}
		})
	}
}

// TestRedirectNotFollowed: a server redirecting to another host gets no
// request of ours there (a signed request carries the access key and the
// session token), whatever the operation.
func TestRedirectNotFollowed(t *testing.T) {
	var other atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c := hostileClient(t, srv.URL, "us-east-1")
	ctx := context.Background()
	ops := map[string]func() error{
		"list": func() error { return c.List(ctx, "sensors/", true, func(objstore.Entry) error { return nil }) },
		"get":  func() error { _, _, err := c.Open(ctx, "nwhealth-store.json"); return err },
		"range": func() error {
			return c.ReadAt(ctx, "sensors/a/2026-03-02/x.shard", make([]byte, 10), 5)
		},
		"head":   func() error { _, err := c.Head(ctx, "sensors/a/2026-03-02/x.shard"); return err },
		"put":    func() error { return c.Put(ctx, "sensors/a/x", strings.NewReader("x"), 1, nil) },
		"delete": func() error { return c.Delete(ctx, "sensors/a/x") },
	}
	for name, op := range ops {
		err := op()
		if err == nil {
			t.Errorf("%s: a redirect taken as success", name)
		}
		noSecret(t, err)
	}
	if n := other.Load(); n != 0 {
		t.Errorf("%d requests reached the host redirected to", n)
	}
}

func noSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{hostileSecret, hostileToken} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error holds a credential: %v", err)
		}
	}
}

// A body exactly at the bound is read whole; one byte more is refused.
func TestBoundedAnswerEdge(t *testing.T) {
	for _, extra := range []int{0, 1} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			head, tail := `<?xml version="1.0" encoding="UTF-8"?><LocationConstraint>`, `eu-west-1</LocationConstraint>`
			w.Write([]byte(head + strings.Repeat(" ", objstore.MaxAnswer-len(head)-len(tail)+extra) + tail))
		}))
		_, err := hostileClient(t, srv.URL, "").Region(context.Background())
		srv.Close()
		if tooLarge := err != nil && strings.Contains(err.Error(), "larger than"); tooLarge != (extra == 1) {
			t.Errorf("%d bytes past the bound: err %v", extra, err)
		}
	}
}

// TestEchoedCredentialsScrubbed: a server whose error message echoes the
// request's headers (the session token travels in one) does not put the
// token into our messages.
func TestEchoedCredentialsScrubbed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>denied for token %s and secret %s (%s)</Message></Error>`,
			r.Header.Get("X-Amz-Security-Token"), hostileSecret, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	c := hostileClient(t, srv.URL, "us-east-1")
	ctx := context.Background()
	for name, op := range map[string]func() error{
		"list":  func() error { return c.List(ctx, "sensors/", true, func(objstore.Entry) error { return nil }) },
		"get":   func() error { _, _, err := c.Open(ctx, "nwhealth-store.json"); return err },
		"range": func() error { return c.ReadAt(ctx, "sensors/a/2026-03-02/x.shard", make([]byte, 10), 5) },
		"head":  func() error { _, err := c.Head(ctx, "sensors/a/2026-03-02/x.shard"); return err },
		"put":   func() error { return c.Put(ctx, "sensors/a/x", strings.NewReader("x"), 1, nil) },
	} {
		err := op()
		if err == nil || !errors.Is(err, objstore.ErrDenied) {
			t.Errorf("%s: %v, want access denied", name, err)
		}
		noSecret(t, err)
	}
}

// TestHeadOfLargeObject: a HEAD answer's Content-Length is the object's
// size, not a body: an object past MaxAnswer (any real shard) is stated,
// not refused as an answer too large.
func TestHeadOfLargeObject(t *testing.T) {
	const size = 3 * objstore.MaxAnswer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			http.Error(w, "HEAD only", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.Header().Set("ETag", `"0123456789abcdef0123456789abcdef"`)
		w.Header().Set("Last-Modified", time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC).Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	o, err := hostileClient(t, srv.URL, "us-east-1").Head(context.Background(), "sensors/a/2026-03-02/x.shard")
	if err != nil || o.Size != size {
		t.Fatalf("head: %+v, %v; want size %d", o, err, size)
	}
}
