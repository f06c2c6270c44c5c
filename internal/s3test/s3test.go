// Package s3test runs a real S3 server for tests: versitygw (Apache-2.0)
// over a temporary directory on 127.0.0.1 and a free port, started by the
// test and stopped by its cleanup. Proxy puts faults in front of it
// (503 SlowDown, slow answers, a server that is down).
//
// The binary is found in NWHEALTH_VERSITYGW, on PATH, or in .cache/bin of
// the checkout (.ci/deps builds it there). Without it a test is skipped,
// or fails under CI (internal/testenv).
package s3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/objstore"
)

// Test credentials: the server's only account.
const (
	AccessKey = "nwhealthtest"
	SecretKey = "nwhealth-test-secret-0123456789"
)

// Binary returns the versitygw program, or ends the test.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NWHEALTH_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	p := filepath.Join(testenv.ModuleRoot(t), ".cache", "bin", "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	testenv.Missing(t, "versitygw not found (run .ci/deps, which builds it into .cache/bin)")
	return ""
}

// Server is a running versitygw.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Dir      string // the posix backend's root: a bucket is a directory here
	addr     string
	bin      string
	t        testing.TB
	mu       sync.Mutex
	cmd      *exec.Cmd
}

// Start starts a server with an empty root and the bucket "nwh".
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{bin: Binary(t), Dir: t.TempDir(), t: t}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	l.Close()
	s.Endpoint = "http://" + s.addr
	if err := os.Mkdir(filepath.Join(s.Dir, "nwh"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server again (after Stop) on the same port and root.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	cmd := exec.Command(s.bin, "--access", AccessKey, "--secret", SecretKey, "--port", s.addr, "posix", s.Dir)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start versitygw: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			s.cmd = nil
			s.t.Fatalf("versitygw did not listen on %s: %v", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would); Restart brings it back.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Env sets the variables nwhealth reads for the test's duration.
func (s *Server) Env(t testing.TB) { SetEnv(t, s.Endpoint) }

// SetEnv points the AWS variables at endpoint with the test account.
func SetEnv(t testing.TB, endpoint string) {
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
}

// Config is a client configuration for endpoint with the test account
// and few retries (tests of failures should not wait long).
func Config(endpoint string) objstore.Config {
	return objstore.Config{Endpoint: endpoint, Region: "us-east-1",
		Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), MaxRetries: 3}
}

// Client is a client of the server for the URL (s3://nwh/PREFIX).
func (s *Server) Client(t testing.TB, rawURL string) *objstore.Client {
	t.Helper()
	loc, err := objstore.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := objstore.New(Config(s.Endpoint), loc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Proxy forwards to a server, injecting faults on demand.
type Proxy struct {
	Endpoint string
	srv      *http.Server
	// SlowDown answers the next N requests with 503 SlowDown.
	SlowDown atomic.Int32
	// Delay holds every request this long before forwarding it.
	Delay atomic.Int64
	// Down refuses every request by closing the connection.
	Down atomic.Bool
	// FailAfter, when positive, counts requests down and sets Down at 0
	// (a server that dies in the middle of a run).
	FailAfter atomic.Int32
	// Refused counts the requests refused while Down.
	Refused atomic.Int64
	// Requests counts the requests forwarded; BytesOut the response bytes.
	Requests atomic.Int64
	BytesOut atomic.Int64
	hook     atomic.Pointer[func(*http.Request)]
}

// SetHook has fn see each request before it is forwarded (nil: none).
func (p *Proxy) SetHook(fn func(*http.Request)) {
	if fn == nil {
		p.hook.Store(nil)
		return
	}
	p.hook.Store(&fn)
}

// NewProxy starts a proxy to target (an http:// endpoint).
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		// The Host header is part of the signature: keep the client's.
		pr.Out.Host = pr.In.Host
	}}
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.ContentLength > 0 {
			p.BytesOut.Add(resp.ContentLength)
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Endpoint = "http://" + l.Addr().String()
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := p.FailAfter.Load(); n > 0 && p.FailAfter.Add(-1) == 0 {
			p.Down.Store(true)
		}
		if p.Down.Load() {
			p.Refused.Add(1)
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if d := p.Delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		if p.SlowDown.Load() > 0 && p.SlowDown.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return
		}
		if h := p.hook.Load(); h != nil {
			(*h)(r)
		}
		p.Requests.Add(1)
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.srv.Shutdown(ctx)
	})
	return p
}
