package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// TestSignalsStopCleanly sends SIGINT or SIGTERM to report, replay and
// hunt in the middle of reading a capture from standard input: each exits
// 130 or 143, says so, prints no result (a ranking or timeline of part of
// the input is not the answer) and leaves an existing -o file as it was,
// with no temporary file beside it.
func TestSignalsStopCleanly(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.pcap")
	genCapture(t, in, pkthdr.LinkEthernet, 12000, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
	capture, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		args []string
		sig  syscall.Signal
		code int
	}{
		{[]string{"report", "--pcap", "-", "--format", "html", "-o", "OUT"}, syscall.SIGINT, 130},
		{[]string{"report", "--pcap", "-", "--format", "jsonl", "-o", "OUT"}, syscall.SIGTERM, 143},
		{[]string{"report", "--pcap", "-", "--format", "jsonl"}, syscall.SIGINT, 130},
		{[]string{"replay", "--pcap", "-", "--format", "jsonl", "--graph", "OUT"}, syscall.SIGTERM, 143},
		{[]string{"replay", "--pcap", "-"}, syscall.SIGINT, 130},
		{[]string{"hunt", "--pcap", "-", "--format", "jsonl"}, syscall.SIGINT, 130},
		{[]string{"hunt", "--pcap", "-"}, syscall.SIGTERM, 143},
	} {
		t.Run(fmt.Sprintf("%d-%s-%d", i, tc.args[0], tc.code), func(t *testing.T) {
			outDir := t.TempDir()
			outFile := filepath.Join(outDir, "previous.out")
			os.WriteFile(outFile, []byte("the previous run's output"), 0o644)
			args := append([]string(nil), tc.args...)
			for i, a := range args {
				if a == "OUT" {
					args[i] = outFile
				}
			}
			cmd := child(t, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The pipe holds 64 KiB: once these megabytes are written the
			// command is reading them, its signal handler in place.
			if _, err := stdin.Write(capture); err != nil {
				t.Fatalf("feeding the capture: %v", err)
			}
			cmd.Process.Signal(tc.sig)
			time.Sleep(50 * time.Millisecond)
			stdin.Close()
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Fatalf("exit %v, want %d\nstderr: %s", err, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "stopped before finishing") {
				t.Errorf("stderr does not say it was stopped: %q", stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("a result was printed after the signal:\n%.300s", stdout.String())
			}
			if b, _ := os.ReadFile(outFile); string(b) != "the previous run's output" {
				t.Errorf("the output file was replaced: %.100q", b)
			}
			if es, _ := os.ReadDir(outDir); len(es) != 1 {
				t.Errorf("output directory holds %d entries, want the old file alone", len(es))
			}
		})
	}
}

// TestInterruptedExitCodes: the exit status of an interruption is the
// shell's 128+signal, whatever else the command found.
func TestInterruptedExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{interruptedError{syscall.SIGINT}, 130},
		{interruptedError{syscall.SIGTERM}, 143},
		{interruptedError{}, 130},
		{fmt.Errorf("report: %w", interruptedError{syscall.SIGTERM}), 143},
	} {
		var stderr bytes.Buffer
		if got := exitCode(tc.err, &stderr); got != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.err, got, tc.code)
		}
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(interruptedError{syscall.SIGTERM})
	if got := exitCode(interrupted(ctx), &bytes.Buffer{}); got != 143 {
		t.Errorf("interrupted(ctx cancelled by SIGTERM): exit %d", got)
	}
}

// errWriter fails every write.
type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// TestOutputWriteErrors: a command whose standard output cannot be
// written fails: exit 5 when the disk is full (/dev/full), 1 for any
// other error, never 0.
func TestOutputWriteErrors(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	in := filepath.Join(dir, "in.pcap")
	genCapture(t, in, pkthdr.LinkEthernet, 500, start, false)
	st := tempStore(t)
	if code, _, e := nwh(t, nil, "import", "--store", st, in); code != 0 {
		t.Fatalf("import: %s", e)
	}
	conn := smallConnLog(t, false)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		testenv.Missing(t, "no /dev/full: %v", err)
	}
	defer full.Close()
	for _, args := range [][]string{
		{"hunt", "--zeek", conn, "--format", "jsonl"},
		{"hunt", "--zeek", conn},
		{"report", "--zeek", conn, "--pcap", in, "--format", "jsonl"},
		{"report", "--pcap", in, "--format", "html"},
		{"replay", "--pcap", in, "--format", "jsonl"},
		{"replay", "--pcap", in},
		{"flows", "--store", st, "--format", "jsonl"},
		{"query", "--store", st, "-w", "-"},
		{"store", "info", "--store", st},
		{"store", "info", "--store", st, "--format", "jsonl"},
		{"import", "--store", tempStore(t), in},
		{"--version"},
		{"hunt", "--help"},
	} {
		var errOut bytes.Buffer
		code := run(args, strings.NewReader(""), full, &errOut)
		if code != exitNoSpace || !strings.Contains(errOut.String(), "no space left") {
			t.Errorf("%v > /dev/full: exit %d, want 5 naming the full disk: %s", args, code, errOut.String())
		}
		errOut.Reset()
		code = run(args, strings.NewReader(""), errWriter{syscall.EIO}, &errOut)
		if code != exitError || !strings.Contains(errOut.String(), "input/output error") {
			t.Errorf("%v to a failing writer: exit %d, want 1: %s", args, code, errOut.String())
		}
	}
}

// TestOutputFileDiskFull writes report -o and replay --graph onto a full
// file system: exit 5, and no partial or temporary file is left.
func TestOutputFileDiskFull(t *testing.T) {
	testenv.Root(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.pcap")
	genCapture(t, in, pkthdr.LinkEthernet, 2000, time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), false)
	mnt := filepath.Join(dir, "small")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", mnt).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot mount a tmpfs here: %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	// Fill it but for a few bytes.
	filler, _ := os.Create(filepath.Join(mnt, "filler"))
	for {
		if _, err := filler.Write(bytes.Repeat([]byte{0}, 512)); err != nil {
			break
		}
	}
	filler.Close()
	for _, args := range [][]string{
		{"report", "--pcap", in, "--format", "html", "-o", filepath.Join(mnt, "report.html")},
		{"report", "--pcap", in, "--format", "stix", "-o", filepath.Join(mnt, "bundle.json")},
		{"replay", "--pcap", in, "--format", "jsonl", "--graph", filepath.Join(mnt, "hosts.dot")},
	} {
		code, _, errOut := nwh(t, nil, args...)
		if code != exitNoSpace {
			t.Errorf("%v: exit %d, want 5: %s", args, code, errOut)
		}
		if es, _ := os.ReadDir(mnt); len(es) != 1 {
			var names []string
			for _, e := range es {
				names = append(names, e.Name())
			}
			t.Errorf("%v left %v on the full disk", args, names)
		}
	}
}
