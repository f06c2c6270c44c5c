package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/nwhealth/nwhealth/pkg/pcapfilter"
)

// Exit codes are part of the command-line contract (README "Exit codes"):
// scripts and cron jobs branch on them, so they never change meaning.
const (
	exitOK       = 0  // everything asked for was done
	exitError    = 1  // the command failed
	exitUsage    = 2  // bad flags or arguments
	exitPartial  = 3  // done, but some input was damaged or skipped (named on stderr)
	exitLocked   = 4  // the store is held by another writer
	exitNoSpace  = 5  // the disk filled up; what was written is sealed and valid
	exitFindings = 10 // --fail-on: findings at or above the given severity exist
	// 130 and 143 (128 + SIGINT or SIGTERM): report, replay or hunt stopped
	// by the signal before finishing; no output file was left behind.
)

// usageError marks an error in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// partialError says the command finished but skipped damaged input; the
// details were already printed.
type partialError struct{ msg string }

func (e partialError) Error() string { return e.msg }

// findingsError carries a --fail-on hit.
type findingsError struct{ msg string }

func (e findingsError) Error() string { return e.msg }

// privilegeError is a live capture refused for want of privilege: only
// then does the message mention root and CAP_NET_RAW (a permission error
// on a store or an output file has nothing to do with them).
type privilegeError struct{ err error }

func (e privilegeError) Error() string { return e.err.Error() }
func (e privilegeError) Unwrap() error { return e.err }

// liveOpenError marks err from opening an interface as a privilege
// problem when it is one.
func liveOpenError(err error) error {
	if errors.Is(err, os.ErrPermission) {
		return privilegeError{err}
	}
	return err
}

// lockedError and the space check are matched by kind, so packages need not
// import this one.
type locker interface{ Locked() bool }

// unsealer marks a shard a writer could not seal after a write failure
// (store.UnsealedError): not the sealed, valid state exit 5 promises.
type unsealer interface{ Unsealed() bool }

// exitCode maps an error to the process exit status: the one place that does.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	// An error can quote a name from a capture or a store: its control
	// characters must not drive the terminal.
	stderr = textOut(stderr)
	var (
		ue usageError
		pe partialError
		fe findingsError
		ie interruptedError
		lk locker
		us unsealer
		fu *pcapfilter.UnappliedError
	)
	switch {
	case errors.As(err, &ie):
		// Before the others: whatever the command had found, it stopped
		// before finishing.
		fmt.Fprintf(stderr, "nwhealth: %v: stopped before finishing; output incomplete, no output file written\n", err)
		return ie.code()
	case errors.As(err, &fe):
		fmt.Fprintln(stderr, "nwhealth:", err)
		return exitFindings
	case errors.As(err, &pe):
		fmt.Fprintln(stderr, "nwhealth:", err)
		return exitPartial
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "nwhealth:", err)
		fmt.Fprintln(stderr, "run 'nwhealth --help' for usage")
		return exitUsage
	case errors.As(err, &fu):
		// The filter is fine; the stored link type is not one tcpdump
		// filters: a matter of how the command was called.
		fmt.Fprintln(stderr, "nwhealth:", err)
		return exitUsage
	case errors.As(err, &lk) && lk.Locked():
		fmt.Fprintln(stderr, "nwhealth:", err)
		return exitLocked
	case errors.As(err, &us) && us.Unsealed():
		fmt.Fprintln(stderr, "nwhealth:", err)
		return exitError
	case errors.Is(err, syscall.ENOSPC):
		fmt.Fprintln(stderr, "nwhealth: disk full:", err)
		return exitNoSpace
	}
	fmt.Fprintln(stderr, "nwhealth:", err)
	var priv privilegeError
	if errors.As(err, &priv) {
		fmt.Fprintln(stderr, "(capturing from an interface needs root or CAP_NET_RAW)")
	}
	return exitError
}
