package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/spf13/cobra"
)

// streams are the command's I/O; tests pass buffers.
type streams struct {
	in     io.Reader
	out    io.Writer
	errOut io.Writer
}

// newRootCmd builds the root command and its subcommands, or only the
// one args name first: a run pays for the flag sets of the command it
// runs, not of all of them. Anything else (help, a flag first, a typo)
// gets them all, for help and suggestions.
func newRootCmd(s streams, args []string) *cobra.Command {
	root := &cobra.Command{
		Use:   "nwhealth",
		Short: "Network forensics: capture, store, query, replay, hunt, report",
		Long: `nwhealth checks the health of a network from its packets.

  capture   record an interface into a store of indexed, compressed pcap shards
  import    add pcap/pcapng files to a store
  query     pull stored packets as a pcap stream
  flows     list the flow records kept beside the packets
  store     describe or verify a store
  replay    reconstruct Windows remote operations from SMB and DCE/RPC
  hunt      rank hosts and channels by group behaviour (beacons, fan-out)
  report    one incident view joining replay and hunt

Exit codes: 0 ok, 1 error, 2 usage, 3 partial (damaged input skipped),
4 store locked, 5 disk full, 10 --fail-on findings, 130/143 report,
replay or hunt stopped by SIGINT/SIGTERM.`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.errOut)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	// A CPU profile of any command, for performance work.
	var cpuprofile string
	root.PersistentFlags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile to this file")
	root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if cpuprofile == "" {
			return nil
		}
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(cmd *cobra.Command, args []string) {
		if cpuprofile != "" {
			pprof.StopCPUProfile()
		}
	}
	only := ""
	if len(args) > 0 {
		for _, sc := range subcommands {
			if sc.name == args[0] {
				only = sc.name
			}
		}
	}
	for _, sc := range subcommands {
		if only == "" || sc.name == only {
			root.AddCommand(sc.build(s))
		}
	}
	// Nor does it need cobra's "completion" command, which every run
	// would otherwise build with its four shells' help texts.
	root.CompletionOptions.DisableDefaultCmd = only != ""
	return root
}

// subcommands is filled by each command's file, so adding a command touches
// only its own file.
var subcommands []subcommand

// subcommand names a command and builds it; the name must be the first
// word of the command's Use.
type subcommand struct {
	name  string
	build func(streams) *cobra.Command
}

func run(args []string, in io.Reader, out, errOut io.Writer) int {
	// Every write to standard output is checked here, once for all
	// commands: a full disk or a closed file must not end in exit 0.
	stdout := &checkedWriter{w: out}
	root := newRootCmd(streams{in: in, out: stdout, errOut: errOut}, args)
	args = expandMultiValues(root, args)
	root.SetArgs(args)
	ctx := context.Background()
	if cmd, _, err := root.Find(args); err == nil && cmd.Annotations[signalsAnnotation] != "" {
		var stop func()
		ctx, stop = withSignals(ctx)
		defer stop()
	}
	err := root.ExecuteContext(ctx)
	if err != nil && isCobraUsage(err) {
		err = usageError{err}
	}
	// A failed write wins over what the command made of it: the output
	// is incomplete whatever else happened (exit 5 for a full disk).
	switch werr := stdout.err; {
	case werr == nil, errors.Is(err, werr):
	case err == nil:
		err = fmt.Errorf("write standard output: %w", werr)
	default:
		err = fmt.Errorf("write standard output: %w (and: %v)", werr, err)
	}
	return exitCode(err, errOut)
}

// isCobraUsage recognises cobra's own argument errors, which are plain errors.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "accepts ", "requires at least", "requires at most", "invalid argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
