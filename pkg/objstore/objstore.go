// Package objstore talks to S3-compatible object storage (AWS S3, Ceph RGW,
// SeaweedFS, Garage, MinIO, versitygw) for the store: immutable objects
// written only if absent, ranged reads, listings and deletes under one
// bucket and prefix. It knows nothing of shards. Endpoint, credentials and
// region come from the variables every S3 tool reads (ConfigFromEnv).
//
// It uses minio-go: pure Go (nwhealth stays one static binary), and it
// works the same against every server above, conditional PUT included;
// aws-sdk-go-v2's default CRC32 checksums break several of them.
package objstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Scheme is the URL scheme of an object store location.
const Scheme = "s3://"

// IsURL reports whether a --store value names an object store.
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

// Location is a bucket and a key prefix in it ("" or ending in "/").
type Location struct {
	Bucket string
	Prefix string
}

func (l Location) String() string { return Scheme + l.Bucket + "/" + l.Prefix }

// ParseURL reads s3://BUCKET[/PREFIX]. The prefix is made of plain path
// segments: no empty, "." or ".." segment, nothing outside printable ASCII.
func ParseURL(s string) (Location, error) {
	if !IsURL(s) {
		return Location{}, fmt.Errorf("%q: not an s3:// URL", s)
	}
	rest := strings.TrimPrefix(s, Scheme)
	bucket, prefix, _ := strings.Cut(rest, "/")
	if !validBucket(bucket) {
		return Location{}, fmt.Errorf("%q: bucket name %q: want 3 to 63 lower-case letters, digits, dots and hyphens", s, bucket)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		for _, seg := range strings.Split(prefix, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return Location{}, fmt.Errorf("%q: prefix has an empty, . or .. segment", s)
			}
			for _, c := range []byte(seg) {
				if c <= ' ' || c >= 0x7f || c == '\\' {
					return Location{}, fmt.Errorf("%q: prefix holds a character other than printable ASCII", s)
				}
			}
		}
		prefix += "/"
	}
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i, c := range []byte(b) {
		ok := 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || (c == '.' || c == '-') && i > 0 && i < len(b)-1
		if !ok {
			return false
		}
	}
	return true
}

// Config says how to reach the server.
type Config struct {
	// Endpoint is a URL, http:// (a local server) or https://; empty
	// means AWS S3 (https://s3.amazonaws.com, or the region's).
	Endpoint string
	Region   string
	// CAFile holds PEM certificates of a private CA to trust besides the
	// system's (TLS is always verified).
	CAFile string
	// Creds: nil means the standard chain (environment, then the shared
	// credentials file with AWS_PROFILE).
	Creds *credentials.Credentials
	// MaxRetries per request (minio-go's backoff: 200 ms doubling to 1 s,
	// with jitter); 0 means 10. Retried: network errors, 5xx, 503 SlowDown.
	MaxRetries int
	// Transport replaces the HTTP transport (tests inject faults).
	Transport http.RoundTripper
}

// ConfigFromEnv reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_S3, which
// wins, as in the AWS tools), AWS_REGION (or AWS_DEFAULT_REGION). The
// credentials are read when first needed, from AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, else the shared
// credentials file (AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials) and
// its AWS_PROFILE section.
func ConfigFromEnv() Config {
	c := Config{Endpoint: os.Getenv("AWS_ENDPOINT_URL"), Region: os.Getenv("AWS_REGION")}
	if e := os.Getenv("AWS_ENDPOINT_URL_S3"); e != "" {
		c.Endpoint = e
	}
	if c.Region == "" {
		c.Region = os.Getenv("AWS_DEFAULT_REGION")
	}
	return c
}

// Client reaches one bucket and prefix. Keys given to its methods are
// relative to the prefix.
type Client struct {
	mc       *minio.Client
	creds    *credentials.Credentials
	loc      Location
	endpoint string       // for messages: scheme and host, never credentials
	fast     *rangeGetter // ranged GETs signed here (rangeget.go); nil: all through minio-go
}

// New makes a client; it sends nothing.
func New(cfg Config, loc Location) (*Client, error) {
	ep := cfg.Endpoint
	if ep == "" {
		ep = "https://s3.amazonaws.com"
		if cfg.Region != "" && cfg.Region != "us-east-1" {
			ep = "https://s3." + cfg.Region + ".amazonaws.com"
		}
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("endpoint %q: want http://HOST[:PORT] or https://HOST[:PORT]", redactURL(ep))
	}
	if u.User != nil {
		return nil, fmt.Errorf("endpoint %s: credentials in the URL are not taken; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", redactURL(ep))
	}
	secure := u.Scheme == "https"
	tr := cfg.Transport
	if tr == nil {
		t, err := minio.DefaultTransport(secure)
		if err != nil {
			return nil, err
		}
		// A query keeps up to 16 ranged GETs in flight (pkg/store
		// fetchParallel), more with several at once: connections
		// beyond the idle limit would be closed after each response and
		// every later GET would pay a new one (and a TLS handshake).
		t.MaxIdleConnsPerHost = 64
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("--ca: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca %s: no PEM certificate found", cfg.CAFile)
			}
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			t.TLSClientConfig.RootCAs = pool
		}
		tr = t
	}
	tr = boundedAnswers{tr}
	creds := cfg.Creds
	if creds == nil {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{Profile: os.Getenv("AWS_PROFILE")},
		})
	}
	retries := cfg.MaxRetries
	if retries <= 0 {
		retries = 10
	}
	mc, err := minio.New(u.Host, &minio.Options{Creds: creds, Secure: secure, Region: cfg.Region, Transport: tr, MaxRetries: retries})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s: %w", u.Scheme+"://"+u.Host, err)
	}
	c := &Client{mc: mc, creds: creds, loc: loc, endpoint: u.Scheme + "://" + u.Host}
	c.fast = newRangeGetter(c, tr, creds)
	return c, nil
}

// MaxAnswer bounds the body of every answer but an object's bytes: a
// listing page (at most 1,000 keys of at most 1 KiB), a bucket's
// location, an error. minio-go decodes listings and locations whole, so
// a hostile or broken server sending an endless or huge one would
// otherwise take all memory. Object bodies are bounded by their callers
// (the sizes a manifest and the listing agree on).
const MaxAnswer = 16 << 20

// ErrAnswerTooLarge is an answer past MaxAnswer.
var ErrAnswerTooLarge = fmt.Errorf("answer larger than %d MiB: not what an S3 server sends", MaxAnswer>>20)

// boundedAnswers limits the bodies of answers other than a successful
// GET of an object (a GET without a query: minio-go puts the operation of
// every other GET in the query). A HEAD answer has no body: its
// Content-Length is the object's size, which a shard's passes 16 MiB.
type boundedAnswers struct{ http.RoundTripper }

func (b boundedAnswers) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.RoundTripper.RoundTrip(req)
	if err != nil || req.Method == http.MethodHead ||
		req.Method == http.MethodGet && req.URL.RawQuery == "" && resp.StatusCode/100 == 2 {
		return resp, err
	}
	if resp.ContentLength > MaxAnswer {
		resp.Body.Close()
		return nil, ErrAnswerTooLarge
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, left: MaxAnswer}
	return resp, nil
}

type boundedBody struct {
	io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, ErrAnswerTooLarge
	}
	// One byte past the bound tells a body of exactly MaxAnswer bytes
	// from a longer one.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n + int(b.left), ErrAnswerTooLarge
	}
	return n, err
}

// redactURL drops any user information from a URL for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return s
}

// Location is where the client reads and writes.
func (c *Client) Location() Location { return c.loc }

// Endpoint is the server's scheme and host.
func (c *Client) Endpoint() string { return c.endpoint }

func (c *Client) String() string { return c.loc.String() + " at " + c.endpoint }

// Errors callers branch on; an *Error wraps one of them when it applies.
var (
	ErrNotFound    = errors.New("no such object")
	ErrExists      = errors.New("object exists; not overwritten")
	ErrDenied      = errors.New("access denied (check the credentials and the bucket policy)")
	ErrNoBucket    = errors.New("no such bucket")
	ErrUnavailable = errors.New("object store unavailable")
)

// Error names the operation, the object and the server. It never holds a
// credential: minio-go's messages do not, and the endpoint is printed
// without user information.
type Error struct {
	Op       string
	Endpoint string
	URL      string // s3://bucket/key
	Kind     error  // one of the sentinels above, or nil
	Err      error
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	if e.Kind != nil && e.Kind != ErrNotFound && e.Kind != ErrExists {
		msg = e.Kind.Error() + ": " + msg
	}
	return fmt.Sprintf("s3 %s %s at %s: %s", e.Op, e.URL, e.Endpoint, msg)
}

func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

func (c *Client) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	resp := minio.ToErrorResponse(err)
	e := &Error{Op: op, Endpoint: c.endpoint, URL: Scheme + c.loc.Bucket + "/" + c.loc.Prefix + key, Err: c.scrub(err)}
	switch {
	case resp.Code == "NoSuchKey" || (resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket"):
		e.Kind = ErrNotFound
	case resp.Code == "NoSuchBucket":
		e.Kind = ErrNoBucket
	case resp.Code == "PreconditionFailed" || resp.StatusCode == http.StatusPreconditionFailed:
		e.Kind = ErrExists
	case resp.Code == "AccessDenied" || resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch" ||
		resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		e.Kind = ErrDenied
	case resp.StatusCode >= 500 || resp.Code == "" || resp.Code == "SlowDown":
		// No S3 answer at all (refused, reset, timed out) or a server
		// error after minio-go's retries.
		e.Kind = ErrUnavailable
	}
	return e
}

// scrub keeps the secret key and the session token out of an error's
// text: a server's message is its own, and a hostile or careless one may
// echo the request's headers (the session token travels in one).
func (c *Client) scrub(err error) error {
	if c.creds == nil {
		return err
	}
	v, gerr := c.creds.GetWithContext(c.mc.CredContext()) // cached by minio-go after the first request
	if gerr != nil {
		return err
	}
	msg := err.Error()
	clean := msg
	for _, s := range []string{v.SecretAccessKey, v.SessionToken} {
		if len(s) >= 8 {
			clean = strings.ReplaceAll(clean, s, "xxxxx")
		}
	}
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

// scrubbed is an error whose text had a credential replaced; errors.Is
// and As still see the original.
type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

func (c *Client) key(k string) string { return c.loc.Prefix + k }

// Meta is user metadata of an object (x-amz-meta-*), lower-case keys.
type Meta map[string]string

// Put writes an object only if no object has its key (If-None-Match: *),
// in one request: ErrExists when one does. size must be r's length.
func (c *Client) Put(ctx context.Context, key string, r io.Reader, size int64, meta Meta) error {
	opts := minio.PutObjectOptions{UserMetadata: meta, DisableMultipart: true, ContentType: "application/octet-stream"}
	opts.SetMatchETagExcept("*")
	_, err := c.mc.PutObject(ctx, c.loc.Bucket, c.key(key), r, size, opts)
	return c.wrap("PUT", key, err)
}

// Object describes a stored object.
type Object struct {
	Key  string // relative to the prefix
	Size int64
	Meta Meta
}

// Head describes one object.
func (c *Client) Head(ctx context.Context, key string) (Object, error) {
	info, err := c.mc.StatObject(ctx, c.loc.Bucket, c.key(key), minio.StatObjectOptions{})
	if err != nil {
		return Object{}, c.wrap("HEAD", key, err)
	}
	m := Meta{}
	for k, v := range info.UserMetadata {
		m[strings.ToLower(k)] = v
	}
	return Object{Key: key, Size: info.Size, Meta: m}, nil
}

// ReadAt reads len(p) bytes at off with one ranged GET.
func (c *Client) ReadAt(ctx context.Context, key string, p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	if c.fast != nil {
		if done, err := c.fast.readAt(ctx, c.key(key), p, off); done {
			return err // nil, or the context's end
		}
	}
	opts := minio.GetObjectOptions{}
	if err := opts.SetRange(off, off+int64(len(p))-1); err != nil {
		return err
	}
	obj, _, h, err := minio.Core{Client: c.mc}.GetObject(ctx, c.loc.Bucket, c.key(key), opts)
	if err != nil {
		return c.wrap("GET", key, err)
	}
	defer obj.Close()
	// minio-go takes a 200 with the whole object as well as the 206 asked
	// for: a server or proxy that ignored the range would hand us the
	// object's first bytes as the range's. A range that starts where
	// asked and ends early is an object shorter than expected (below).
	if cr := h.Get("Content-Range"); !strings.HasPrefix(cr, "bytes "+strconv.FormatInt(off, 10)+"-") {
		return c.wrap("GET", key, fmt.Errorf("range %d+%d answered with Content-Range %q: the server did not honour the range", off, len(p), cr))
	}
	if _, err := io.ReadFull(obj, p); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return c.wrap("GET", key, fmt.Errorf("range %d+%d: object shorter than expected: %w", off, len(p), io.ErrUnexpectedEOF))
		}
		return c.wrap("GET", key, err)
	}
	// Read to the end of the body (nothing is left for a server that
	// honoured the range): a body closed before its end closes the
	// connection, and every GET would then pay for a new one.
	io.Copy(io.Discard, io.LimitReader(obj, 64<<10))
	return nil
}

// Open streams a whole object.
func (c *Client) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	obj, info, _, err := minio.Core{Client: c.mc}.GetObject(ctx, c.loc.Bucket, c.key(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, 0, c.wrap("GET", key, err)
	}
	return &wrapReader{obj, c, key}, info.Size, nil
}

// wrapReader names the object in a failure mid-stream.
type wrapReader struct {
	io.ReadCloser
	c   *Client
	key string
}

func (r *wrapReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = r.c.wrap("GET", r.key, err)
	}
	return n, err
}

// Entry is a listed object, or a common prefix (Dir) when listing with a
// delimiter.
type Entry struct {
	Key  string // relative to the client's prefix
	Size int64
	Dir  bool
}

// List lists the keys under prefix (relative to the client's). With
// delimiter, keys below the next "/" are rolled up into Dir entries.
func (c *Client) List(ctx context.Context, prefix string, delimiter bool, fn func(Entry) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for info := range c.mc.ListObjects(ctx, c.loc.Bucket, minio.ListObjectsOptions{Prefix: c.key(prefix), Recursive: !delimiter}) {
		if info.Err != nil {
			return c.wrap("LIST", prefix, info.Err)
		}
		if !strings.HasPrefix(info.Key, c.loc.Prefix) {
			continue
		}
		e := Entry{Key: strings.TrimPrefix(info.Key, c.loc.Prefix), Size: info.Size, Dir: strings.HasSuffix(info.Key, "/")}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes an object; a missing one is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	err := c.mc.RemoveObject(ctx, c.loc.Bucket, c.key(key), minio.RemoveObjectOptions{})
	if err != nil && errors.Is(c.wrap("DELETE", key, err), ErrNotFound) {
		return nil
	}
	return c.wrap("DELETE", key, err)
}

// CheckBucket tells whether the bucket can be reached: a clear error
// (no bucket, denied, unavailable) before any other work.
func (c *Client) CheckBucket(ctx context.Context) error {
	ok, err := c.mc.BucketExists(ctx, c.loc.Bucket)
	if err != nil {
		return c.wrap("HEAD", "", err)
	}
	if !ok {
		return c.wrap("HEAD", "", minio.ErrorResponse{Code: "NoSuchBucket", Message: "the bucket does not exist", StatusCode: http.StatusNotFound})
	}
	return nil
}

// Region is the region requests are signed for: the configured one, or
// else the bucket's location, asked of the server once per client (the
// first request would ask it, and several first requests at once would
// each ask).
func (c *Client) Region(ctx context.Context) (string, error) {
	r, err := c.mc.GetBucketLocation(ctx, c.loc.Bucket)
	return r, c.wrap("LOCATION", "", err)
}

// MakeBucket creates the bucket (tests and first deployments).
func (c *Client) MakeBucket(ctx context.Context) error {
	return c.wrap("MAKEBUCKET", "", c.mc.MakeBucket(ctx, c.loc.Bucket, minio.MakeBucketOptions{Region: ""}))
}

// CleanKey reports whether k is a key nwhealth may have written: path
// segments of printable ASCII without "." or ".." (keys from listings are
// checked before they name local cache files).
func CleanKey(k string) bool {
	if k == "" || strings.HasPrefix(k, "/") || filepath.Clean(k) != k {
		return false
	}
	for _, seg := range strings.Split(k, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	for _, c := range []byte(k) {
		if c <= ' ' || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}
