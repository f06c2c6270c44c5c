package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/ntlmseal"
	"github.com/spf13/pflag"
)

// ntlmSecretsHelp is the --ntlm-secrets flag's help: replay and report
// take it, as both run replay's pipeline.
const ntlmSecretsHelp = "file of account secrets (DOMAIN\\user nt:HASH or password:TEXT a line) to decrypt NTLM-sealed DCE/RPC (docs/format/ntlm-secrets.md); never given on the command line"

func registerNTLMSecrets(f *pflag.FlagSet, path *string) {
	f.StringVar(path, "ntlm-secrets", "", ntlmSecretsHelp)
}

// loadNTLMSecrets reads the secrets file named by --ntlm-secrets (nil
// when none), warning on errOut when others may read it. A malformed
// file is a usage error; its message names the line, never the secret.
func loadNTLMSecrets(path string, errOut io.Writer, cmd string) (*ntlmseal.Secrets, error) {
	if path == "" {
		return nil, nil
	}
	s, loose, err := ntlmseal.LoadSecrets(path)
	if loose {
		fmt.Fprintf(errOut, "%s: warning: %s is readable by group or others; it holds account secrets (chmod 600 it)\n", cmd, path)
	}
	if errors.Is(err, ntlmseal.ErrSecretsFile) {
		return nil, usagef("--ntlm-secrets %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("--ntlm-secrets: %w", err)
	}
	return s, nil
}
