package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

func TestVersion(t *testing.T) {
	code, out, errOut := nwh(t, nil, "--version")
	if code != 0 || errOut != "" {
		t.Fatalf("--version: exit %d, stderr %q", code, errOut)
	}
	if !regexp.MustCompile(`^nwhealth \S+ \(commit \S+, go1\.\d+\S* \w+/\w+\)\n$`).MatchString(out) {
		t.Errorf("--version printed %q; want the version, commit and Go release", out)
	}
}

// TestFlagRefusals: values that make no sense are usage errors (exit 2)
// naming the flag, found before anything is opened (so capture refuses
// them without root).
func TestFlagRefusals(t *testing.T) {
	st := tempStore(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"capture", "-i", "lo", "--store", st, "--workers", "0"}, "--workers 0"},
		{[]string{"capture", "-i", "lo", "--store", st, "--workers", "65"}, "--workers 65"},
		{[]string{"capture", "-i", "lo", "--store", st, "--snaplen", "-1"}, "--snaplen -1"},
		{[]string{"capture", "-i", "lo", "--store", st, "--snaplen", "0"}, "--snaplen 0"},
		{[]string{"capture", "-i", "lo", "--store", st, "--snaplen", "300000"}, "--snaplen 300000"},
		{[]string{"capture", "-i", "lo", "--store", st, "--max-age", "-3d"}, "--max-age"},
		{[]string{"capture", "-i", "lo", "--store", st, "--max-age", "0"}, "--max-age"},
		{[]string{"capture", "-i", "lo", "--store", st, "--max-size", "-5G"}, "--max-size"},
		{[]string{"capture", "-i", "lo", "--store", st, "--ring-size", "NaN"}, "--ring-size"},
		{[]string{"capture", "-i", "lo", "--store", st, "--shard-size", "1K"}, "--shard-size"},
		{[]string{"capture", "-i", "lo", "--store", st, "--flush", "-1s"}, "--flush"},
		{[]string{"capture", "-i", "lo", "--store", st, "--duration", "-1m"}, "--duration"},
		{[]string{"capture", "-i", "lo", "--store", st, "--stats-every", "-5s"}, "--stats-every"},
		{[]string{"import", "--store", st, "--max-age", "-3d", "x.pcap"}, "--max-age"},
		{[]string{"import", "--store", st, "--max-age", "1e400d", "x.pcap"}, "--max-age"},
		{[]string{"import", "--store", st, "--max-age", "NaNd", "x.pcap"}, "--max-age"},
		{[]string{"import", "--store", st, "--max-size", "1e30T", "x.pcap"}, "--max-size"},
		{[]string{"hunt", "--pcap", "x.pcap", "--top", "-1"}, "--top -1"},
		{[]string{"replay", "--pcap", "x.pcap", "--stats-every", "0s"}, "--stats-every"},
		{[]string{"query", "--store", st, "-w", "-", "--port", "70000"}, "--port 70000"},
		{[]string{"store", "frobnicate"}, `unknown command "frobnicate" for "nwhealth store"`},
		{[]string{"store", "inf"}, "did you mean info?"},
		{[]string{"store"}, "store needs a subcommand"},
	} {
		code, _, errOut := nwh(t, nil, tc.args...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(st); err == nil {
		t.Error("a refused command created the store")
	}
}

// TestPrivilegeHint: only a live capture refused for want of privilege
// mentions CAP_NET_RAW; other permission errors do not.
func TestPrivilegeHint(t *testing.T) {
	for _, tc := range []struct {
		err  error
		hint bool
	}{
		{fmt.Errorf("open store/LOCK: %w", os.ErrPermission), false},
		{fmt.Errorf("write report.html: %w", os.ErrPermission), false},
		{liveOpenError(fmt.Errorf("capture: socket: %w", os.ErrPermission)), true},
		{liveOpenError(errors.New("capture: no such interface")), false},
	} {
		var stderr bytes.Buffer
		if code := exitCode(tc.err, &stderr); code != exitError {
			t.Errorf("%v: exit %d", tc.err, code)
		}
		if got := strings.Contains(stderr.String(), "CAP_NET_RAW"); got != tc.hint {
			t.Errorf("%v: hint %v, want %v: %q", tc.err, got, tc.hint, stderr.String())
		}
	}
}

// TestAssetFileErrors: a bad inventory or allow list names the file, the
// line and the value, through every command that reads them.
func TestAssetFileErrors(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "assets.yaml")
	os.WriteFile(inv, []byte("assets:\n  - cidr: 10.1.0.0/16\n    name: office\n  - host: 10.1.2.300\n    name: dc\n"), 0o644)
	allow := filepath.Join(dir, "allow.txt")
	os.WriteFile(allow, []byte("10.0.0.1\n\n*.bad domain.com\n"), 0o644)
	for _, cmd := range []string{"hunt", "report"} {
		code, _, errOut := nwh(t, nil, cmd, "--pcap", filepath.Join(dir, "none.pcap"), "--assets", inv)
		if code != exitError || !strings.Contains(errOut, inv+`: line 4: host "10.1.2.300": not an address or CIDR`) {
			t.Errorf("%s --assets: exit %d: %s", cmd, code, errOut)
		}
		code, _, errOut = nwh(t, nil, cmd, "--pcap", filepath.Join(dir, "none.pcap"), "--allow", allow)
		if code != exitError || !strings.Contains(errOut, allow+`: line 3: "*.bad domain.com"`) {
			t.Errorf("%s --allow: exit %d: %s", cmd, code, errOut)
		}
	}
}

func TestExpandMultiValues(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hunt --zeek a b c --format jsonl", "hunt --zeek a --zeek b --zeek c --format jsonl"},
		{"hunt --zeek=a b --pcap c d", "hunt --zeek=a --zeek b --pcap c --pcap d"},
		{"hunt --format jsonl --zeek a", "hunt --format jsonl --zeek a"},
		{"hunt --pcap - b", "hunt --pcap - --pcap b"},
		{"hunt --pcap a -- b", "hunt --pcap a -- b"},
		{"hunt --pcap a,b c", "hunt --pcap a,b --pcap c"},
		{"hunt --internal 10.0.0.0/8 x", "hunt --internal 10.0.0.0/8 x"},
		{"report --pcap a b --zeek c d -o out.html", "report --pcap a --pcap b --zeek c --zeek d -o out.html"},
		{"replay --pcap a b", "replay --pcap a --pcap b"},
		{"import --store s a b", "import --store s a b"},
		{"query --pcap a b", "query --pcap a b"}, // no such flag: cobra says so
	} {
		args := strings.Fields(tc.in)
		got := strings.Join(expandMultiValues(newRootCmd(streams{}, args), args), " ")
		if got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

// TestSeveralFilesAfterOneFlag: hunt --zeek conn.*.log (as a shell glob
// gives them) reads every file, as repeating the flag does, and replay
// and report take several captures after one --pcap.
func TestSeveralFilesAfterOneFlag(t *testing.T) {
	whole, err := os.ReadFile(smallConnLog(t, false))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(whole), "\n")
	header, rows := strings.Count(connHeader, "\n"), len(lines)-strings.Count(connHeader, "\n")
	dir := t.TempDir()
	var logs []string
	for i, part := range [][]string{lines[header : header+rows/2], lines[header+rows/2:]} {
		p := filepath.Join(dir, fmt.Sprintf("conn.%d.log", i))
		os.WriteFile(p, []byte(connHeader+strings.Join(part, "")), 0o644)
		logs = append(logs, p)
	}
	args := []string{"hunt", "--internal", "10.1.0.0/16", "--format", "jsonl", "--zeek"}
	wantOut, errOut, code := runCmd(t, append(args, logs[0], "--zeek", logs[1])...)
	if code != 0 || !strings.Contains(wantOut, "203.0.113.9") {
		t.Fatalf("repeated --zeek: exit %d: %s", code, errOut)
	}
	if out, errOut, code := runCmd(t, append(args, logs...)...); code != 0 || out != wantOut {
		t.Errorf("--zeek a b: exit %d (%s), output differs from --zeek a --zeek b", code, errOut)
	}
	if !strings.Contains(errOut, fmt.Sprintf("%d records", rows-1)) {
		t.Errorf("not every row was read: %s", errOut)
	}

	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	a, b := filepath.Join(dir, "a.pcap"), filepath.Join(dir, "b.pcap")
	genCapture(t, a, pkthdr.LinkEthernet, 300, start, false)
	genCapture(t, b, pkthdr.LinkEthernet, 200, start.Add(time.Hour), false)
	for _, cmd := range [][]string{
		{"replay", "--format", "jsonl", "--pcap", a, b},
		{"report", "--format", "jsonl", "--pcap", a, b},
	} {
		// (The generated port-445 payloads are not SMB: replay skips them, exit 3.)
		code, out, errOut := nwh(t, nil, cmd...)
		if code != exitOK && code != exitPartial || !strings.Contains(out, `"packets":500`) && !strings.Contains(errOut, "500 packets") {
			t.Errorf("%v: exit %d, want 500 packets read:\n%s\n%s", cmd, code, out, errOut)
		}
	}
}
