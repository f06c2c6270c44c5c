package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// signalsAnnotation marks a command that stops cleanly on SIGINT or
// SIGTERM: run gives it a context cancelled by the first one, and the
// command returns interrupted(ctx), which exitCode maps to 128+signal
// (130, 143) after the command removed any output it had begun.
// Commands without it keep the default action (the process ends at once).
const signalsAnnotation = "nwhealth-graceful-signals"

// handlesSignals marks cmd (see signalsAnnotation).
func handlesSignals(cmd *cobra.Command) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[signalsAnnotation] = "true"
}

// interruptedError is a command stopped by a signal before it finished.
type interruptedError struct{ sig syscall.Signal }

func (e interruptedError) Error() string {
	switch e.sig {
	case syscall.SIGINT:
		return "interrupted (SIGINT)"
	case syscall.SIGTERM:
		return "terminated (SIGTERM)"
	case 0:
		return "interrupted"
	}
	return "stopped by " + e.sig.String()
}

// code is the exit status a shell reports for a process the signal ended.
func (e interruptedError) code() int {
	if e.sig == 0 {
		return 128 + int(syscall.SIGINT)
	}
	return 128 + int(e.sig)
}

// interrupted returns why ctx ended as an error for exitCode: the signal
// that cancelled it, or a plain interruption (a caller cancelled it).
func interrupted(ctx context.Context) error {
	var ie interruptedError
	if errors.As(context.Cause(ctx), &ie) {
		return ie
	}
	return interruptedError{}
}

// withSignals returns a context that the first SIGINT or SIGTERM cancels,
// with an interruptedError as its cause. The handler is removed at that
// first signal, so a second one ends the process at once if stopping
// takes too long; stop removes it too.
func withSignals(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			sig, _ := s.(syscall.Signal)
			cancel(interruptedError{sig})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}
