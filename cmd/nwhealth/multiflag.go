package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// multiAnnotation marks a flag that takes every following word up to the
// next flag: `--pcap a.pcap b.pcap` as a shell glob gives them, besides
// repeating the flag. pflag gives a flag one value, so run rewrites the
// words into repeated flags before cobra parses them.
const multiAnnotation = "nwhealth-multi-value"

// multiValue marks the named flags of fs as taking several values.
func multiValue(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, multiAnnotation, []string{"true"}); err != nil {
			panic(err) // a flag name misspelt in the program
		}
	}
}

// expandMultiValues rewrites `--pcap a b c` (or `--pcap=a b c`) into
// `--pcap a --pcap b --pcap c` for the flags of the command args run that
// are marked with multiValue. A value ends at the next word starting with
// "-" (except "-" alone, standard input) or at "--"; a file whose name
// starts with "-" is given as --pcap=-name.
func expandMultiValues(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == root {
		return args
	}
	multi := func(name string) bool {
		f := cmd.Flags().Lookup(name)
		return f != nil && len(f.Annotations[multiAnnotation]) > 0
	}
	out := make([]string, 0, len(args))
	cur := ""      // the multi-value flag whose values are being read
	needs := false // the word before was a bare multi-value flag: this is its value
	for i, a := range args {
		switch {
		case needs:
			out = append(out, a)
			needs = false
			continue
		case a == "--":
			return append(out, args[i:]...)
		case cur != "" && (a == "-" || !strings.HasPrefix(a, "-")):
			out = append(out, "--"+cur, a)
			continue
		}
		cur = ""
		out = append(out, a)
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, hasValue := strings.Cut(name, "=")
			if multi(name) {
				cur, needs = name, !hasValue
			}
		}
	}
	return out
}
