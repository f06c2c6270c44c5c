package objstore_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/s3test"
	"github.com/nwhealth/nwhealth/pkg/objstore"
)

// TestRangeIgnoredIsAnError: a server (or a proxy in front of it) that
// answers a ranged GET with the whole object must give an error, never
// the object's first bytes as if they were the range. The signed fast
// path refuses such an answer and hands the read to minio-go, whose
// answer is checked the same way.
func TestRangeIgnoredIsAnError(t *testing.T) {
	body := []byte(strings.Repeat("0123456789", 100))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusNotImplemented)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"0123"`)
		w.Header().Set("Last-Modified", "Mon, 07 Dec 2026 08:00:00 GMT")
		w.Write(body) // 200, whole object, no Content-Range
	}))
	defer srv.Close()
	loc, _ := objstore.ParseURL("s3://nwh/p")
	c, err := objstore.New(s3test.Config(srv.URL), loc)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 10)
	err = c.ReadAt(context.Background(), "sensors/a/x.shard", p, 500)
	if err == nil {
		t.Fatalf("a range answered with the whole object read as %q, no error", p)
	}
	if bytes.Equal(p, body[:10]) {
		t.Fatalf("the object's first bytes were taken for the range (error %v)", err)
	}
}
