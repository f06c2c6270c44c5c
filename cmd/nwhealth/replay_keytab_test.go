package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/internal/jsonltest"
	"github.com/nwhealth/nwhealth/internal/testenv"
)

// TestReplayKeytab: the Kerberos lab's DCSync (sealed DRSUAPI) with the
// lab's keytab in --keytab: the table flags the calls D, JSON Lines
// (schema-checked) names the account from the ticket and the replicated
// object, report shows it too; a malformed keytab is a usage error naming
// the entry and never a key; a loose file mode warns.
func TestReplayKeytab(t *testing.T) {
	dir := filepath.Join(testenv.ModuleRoot(t), "testdata", "krblab")
	f := filepath.Join(dir, "dcsync_kerberos.pcap")
	raw, err := os.ReadFile(filepath.Join(dir, "krblab.keytab"))
	if err != nil {
		t.Fatal(err)
	}
	kt := filepath.Join(t.TempDir(), "lab.keytab")
	if err := os.WriteFile(kt, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var tbl, errOut bytes.Buffer
	if code := run([]string{"replay", "--pcap", f, "--keytab", kt, "--stats"}, nil, &tbl, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"DRSGetNCChanges", "KRBLAB.TEST\\Administrator", " ED", "kerberos_decrypted=1"} {
		if !strings.Contains(tbl.String()+errOut.String(), want) {
			t.Errorf("no %q in\n%s%s", want, tbl.String(), errOut.String())
		}
	}
	if strings.Contains(errOut.String(), "readable by group") {
		t.Errorf("a 0600 keytab warned: %s", errOut.String())
	}
	var js bytes.Buffer
	errOut.Reset()
	if code := run([]string{"replay", "--pcap", f, "--keytab", kt, "--format", "jsonl"}, nil, &js, &errOut); code != exitOK {
		t.Fatalf("jsonl: exit %d: %s", code, errOut.String())
	}
	recs := jsonltest.Check(t, js.Bytes())
	found := false
	for _, op := range recs["operation"] {
		if op["operation"] != "DRSGetNCChanges" {
			continue
		}
		found = true
		if op["user"] != "Administrator" || op["account_via"] != "keytab" || op["sealed"] != "decrypted" ||
			!strings.Contains(fmt.Sprint(op["fields"]), "CN=krbtgt,CN=Users,DC=krblab,DC=test") {
			t.Errorf("operation %v", op)
		}
	}
	if st := recs["stats"]; !found || len(st) != 1 || st[0]["kerberos_decrypted"] != float64(1) {
		t.Errorf("found %v, stats %v", found, st)
	}
	// No key printed: none of those MIT klist read in the keytab, not
	// even its first 8 bytes.
	keys := labKeyHex(t, filepath.Join(dir, "krblab.keytab.klist"))
	for _, out := range []string{tbl.String(), js.String(), errOut.String()} {
		for _, k := range keys {
			if strings.Contains(strings.ToLower(out), k[:16]) {
				t.Fatal("a key was printed")
			}
		}
	}

	// report runs replay's pipeline, with the flag.
	var html bytes.Buffer
	errOut.Reset()
	if code := run([]string{"report", "--pcap", f, "--keytab", kt, "--format", "html"}, nil, &html, &errOut); code != exitOK && code != exitFindings {
		t.Fatalf("report exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(html.String(), "(sealed: decrypted)") || !strings.Contains(html.String(), "CN=krbtgt") {
		t.Errorf("report HTML lacks the decrypted DCSync")
	}

	// Loose mode: a warning, still read.
	loose := filepath.Join(t.TempDir(), "loose.keytab")
	os.WriteFile(loose, raw, 0o644)
	os.Chmod(loose, 0o644)
	errOut.Reset()
	if code := run([]string{"replay", "--pcap", f, "--keytab", loose}, nil, io.Discard, &errOut); code != exitOK || !strings.Contains(errOut.String(), "readable by group or others") {
		t.Errorf("loose: exit %d: %s", code, errOut.String())
	}

	// Malformed: exit 2, the entry or line named, the key not shown.
	cut := filepath.Join(t.TempDir(), "cut.keytab")
	os.WriteFile(cut, raw[:len(raw)-40], 0o600)
	lines := filepath.Join(t.TempDir(), "lines")
	os.WriteFile(lines, []byte("KRBLAB\\DC01$:aes256-cts-hmac-sha1-96:"+keys[0][:20]+"\n"), 0o600)
	for _, c := range []struct{ file, want string }{{cut, "entry "}, {lines, "line 1"}} {
		errOut.Reset()
		if code := run([]string{"replay", "--pcap", f, "--keytab", kt, "--keytab", c.file}, nil, io.Discard, &errOut); code != exitUsage ||
			!strings.Contains(errOut.String(), c.want) || strings.Contains(errOut.String(), keys[0][:16]) {
			t.Errorf("malformed %s: exit %d: %s", filepath.Base(c.file), code, errOut.String())
		}
	}
}

// labKeyHex returns the keys (lower-case hex) of MIT klist -k -e -K's
// listing of a keytab.
func labKeyHex(t *testing.T, klist string) []string {
	t.Helper()
	b, err := os.ReadFile(klist)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.LastIndex(l, "(0x"); i >= 0 && strings.HasSuffix(l, ")") {
			keys = append(keys, strings.ToLower(l[i+3:len(l)-1]))
		}
	}
	if len(keys) == 0 {
		t.Fatalf("no keys in %s", klist)
	}
	return keys
}
