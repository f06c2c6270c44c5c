// Command s3put uploads files to an S3-compatible store the plain way:
// minio-go's FPutObject, multipart for files over 16 MiB with its default
// part threads, several files at once. scripts/bench-fleet.sh measures
// store push against it.
//
//	s3put -j 4 s3://BUCKET/PREFIX FILE...
//
// Endpoint and credentials come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID
// and AWS_SECRET_ACCESS_KEY.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	jobs := flag.Int("j", 4, "files uploaded at once")
	flag.Parse()
	if flag.NArg() < 2 || !strings.HasPrefix(flag.Arg(0), "s3://") {
		fmt.Fprintln(os.Stderr, "usage: s3put [-j N] s3://BUCKET/PREFIX FILE...")
		os.Exit(2)
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(flag.Arg(0), "s3://"), "/")
	ep, err := url.Parse(os.Getenv("AWS_ENDPOINT_URL"))
	if err != nil || ep.Host == "" {
		fmt.Fprintln(os.Stderr, "s3put: set AWS_ENDPOINT_URL")
		os.Exit(2)
	}
	c, err := minio.New(ep.Host, &minio.Options{Secure: ep.Scheme == "https",
		Creds: credentials.NewStaticV4(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), "")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3put:", err)
		os.Exit(1)
	}
	files := flag.Args()[1:]
	sem := make(chan struct{}, *jobs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := false
	for _, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			key := strings.TrimPrefix(prefix+"/"+filepath.Base(f), "/")
			if _, err := c.FPutObject(context.Background(), bucket, key, f, minio.PutObjectOptions{}); err != nil {
				mu.Lock()
				failed = true
				fmt.Fprintln(os.Stderr, "s3put:", f, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed {
		os.Exit(1)
	}
}
