package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/store"
)

// TestNoSecretInFailures runs the failing paths of the fleet commands
// (a server denying and echoing the request's headers, one sending an
// endless listing, one redirecting elsewhere, an unreachable database,
// malformed database URLs) with credentials in the environment and in
// URLs as documented, and checks that no credential reaches stdout or
// stderr.
func TestNoSecretInFailures(t *testing.T) {
	const (
		secret   = "cli-secret-ABCDEFGH0123456789"
		token    = "cli-session-token-IJKLMNOP0123"
		password = "cli-ch-pass-QRSTUV9876"
	)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>token %s auth %s</Message></Error>`,
			r.Header.Get("X-Amz-Security-Token"), r.Header.Get("Authorization"))
	}))
	defer echo.Close()
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" { // the layout marker: a store, whose listing never ends
			w.Header().Set("Last-Modified", "Mon, 07 Dec 2026 08:00:00 GMT")
			w.Header().Set("ETag", `"1"`)
			fmt.Fprint(w, `{"format": "nwhealth-object-store", "version": 1}`)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Contents><Key>`)
		chunk := strings.Repeat(token, 1000)
		for range 2000 {
			if _, err := fmt.Fprint(w, chunk); err != nil {
				return
			}
		}
	}))
	defer endless.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/?token="+r.Header.Get("X-Amz-Security-Token"), http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()

	dir := t.TempDir()
	local := filepath.Join(dir, "store")
	if _, err := store.Create(local); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIACLITEST000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", token)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("CLICKHOUSE_PASSWORD", password)
	s3 := "s3://nwh/fleet"
	tests := []struct {
		name     string
		endpoint string
		args     []string
		want     string // in stderr: the failure meant
	}{
		{"query, denied with headers echoed", echo.URL, []string{"query", "--store", s3, "--cache", filepath.Join(dir, "c"), "-w", filepath.Join(dir, "x.pcap")}, "access denied"},
		{"store info, endless listing", endless.URL, []string{"store", "info", "--store", s3, "--cache", filepath.Join(dir, "c")}, "larger than 16 MiB"},
		{"query, redirected", redirect.URL, []string{"query", "--store", s3, "--cache", filepath.Join(dir, "c"), "-w", filepath.Join(dir, "x.pcap")}, "Redirect"},
		{"push, denied with headers echoed", echo.URL, []string{"store", "push", "--store", local, "--to", s3, "--sensor", "s1"}, "access denied"},
		{"export, password in the URL, server unreachable", "", []string{"flows", "--store", local, "--export", "clickhouse://sensor:" + password + "@127.0.0.1:1/fleet"}, "connection refused"},
		{"export, password from the environment, server unreachable", "", []string{"flows", "--store", local, "--export", "clickhouse://sensor@127.0.0.1:1/fleet"}, "connection refused"},
		{"export, password with an unencoded '#'", "", []string{"flows", "--store", local, "--export", "clickhouse://sensor:7531#" + password + "@127.0.0.1:1/fleet"}, "bad clickhouse URL"},
		{"export, password with an unencoded '/'", "", []string{"flows", "--store", local, "--export", "clickhouse://sensor:ab/" + password + "@127.0.0.1:1/fleet"}, "bad clickhouse URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_ENDPOINT_URL", tc.endpoint)
			code, out, errOut := nwh(t, nil, tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, want a failure saying %q:\n%.500s", code, tc.want, errOut)
			}
			for _, s := range []string{secret, token, password, "7531"} {
				if strings.Contains(out, s) || strings.Contains(errOut, s) {
					t.Errorf("output holds %q:\nstdout: %.500s\nstderr: %.500s", s, out, errOut)
				}
			}
		})
	}
}

// --spool /tmp/x where another user planted x as a link first: refused
// before anything is written where it points.
func TestSpoolSharedLink(t *testing.T) {
	testenv.Root(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "etc")
	os.Mkdir(victim, 0o755)
	link := testenv.ForeignLink(t, dir, "spool", victim)
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	code, _, errOut := nwh(t, nil, "import", "--store", "s3://nwh/fleet", "--sensor", "s1", "--spool", link, fleetCapture(t))
	if code == 0 || !strings.Contains(errOut, "--spool") || !strings.Contains(errOut, "not followed") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	if es, _ := os.ReadDir(victim); len(es) != 0 {
		t.Errorf("written where the link points: %v", es)
	}
}
