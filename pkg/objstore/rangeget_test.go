package objstore

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
)

// TestSignatureAWSExample: the Authorization header of AWS's published
// example of a signed GET with a Range header ("Signature Calculations for
// the Authorization Header: Transferring Payload in a Single Chunk",
// example GET Object), computed by AWS, not by this code.
func TestSignatureAWSExample(t *testing.T) {
	g := &rangeGetter{host: "examplebucket.s3.amazonaws.com"}
	v := credentials.Value{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
	now := time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)
	got := g.authorization(v, "us-east-1", now, "/test.txt", "bytes=0-9")
	want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
		"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
		"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	if got != want {
		t.Fatalf("authorization\n got %s\nwant %s", got, want)
	}
	// A session token is signed too.
	v.SessionToken = "tok"
	if got := g.authorization(v, "us-east-1", now, "/test.txt", "bytes=0-9"); !strings.Contains(got, "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token,") {
		t.Fatalf("with a session token: %s", got)
	}
}

// TestSigningKeyCache: the key is derived once a day, region and secret,
// and anew when any of them changes.
func TestSigningKeyCache(t *testing.T) {
	g := &rangeGetter{}
	a := g.signingKey("s", "20261207", "us-east-1")
	if b := g.signingKey("s", "20261207", "us-east-1"); &a[0] != &b[0] {
		t.Fatal("same day, region and secret: key derived again")
	}
	for _, c := range [][3]string{{"s", "20261208", "us-east-1"}, {"s", "20261207", "eu-west-1"}, {"t", "20261207", "us-east-1"}} {
		k := g.signingKey(c[0], c[1], c[2])
		if string(k) == string(a) {
			t.Fatalf("%v: same key as before", c)
		}
		if want := hmacSHA256(hmacSHA256(hmacSHA256(hmacSHA256([]byte("AWS4"+c[0]), c[1]), c[2]), "s3"), "aws4_request"); string(k) != string(want) {
			t.Fatalf("%v: wrong key", c)
		}
	}
}

func TestContentRange(t *testing.T) {
	for h, want := range map[string]bool{
		"bytes 10-19/100": true, "bytes 10-19/*": true, "bytes 10-18/100": false, "bytes 11-19/100": false,
		"10-19/100": false, "bytes 10-19": false, "": false, "bytes x-19/100": false,
		"bytes +10-19/100": false, "bytes 010-19/100": false, "bytes 10-19/": false, "bytes 10-19/1x": false,
	} {
		if got := contentRange(h, 10, 19); got != want {
			t.Errorf("%q: %v", h, got)
		}
	}
}

func TestPlainKey(t *testing.T) {
	for k, want := range map[string]bool{"fleet/sensors/s-1/2026-03-02/a_b.shard": true, "a~b": true, "a+b": false, "a b": false, "a%20": false, "a=b": false} {
		if got := plainKey(k); got != want {
			t.Errorf("%q: %v", k, got)
		}
	}
}

// FuzzContentRange: a server's Content-Range header never panics the
// parser, and is taken only when it names exactly the range asked.
func FuzzContentRange(f *testing.F) {
	for _, h := range []string{"bytes 10-19/100", "bytes 10-19/*", "bytes -1-19/1", "bytes 10-19", "bytes 9223372036854775807-1/2", ""} {
		f.Add(h, int64(10), int64(19))
	}
	f.Fuzz(func(t *testing.T, h string, first, last int64) {
		if contentRange(h, first, last) {
			want := "bytes " + strconv.FormatInt(first, 10) + "-" + strconv.FormatInt(last, 10) + "/"
			if !strings.HasPrefix(h, want) || len(h) == len(want) {
				t.Fatalf("%q taken as %d-%d", h, first, last)
			}
		}
	})
}
