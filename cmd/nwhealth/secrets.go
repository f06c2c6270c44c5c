package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/nwhealth/nwhealth/pkg/smbrpc/krbseal"
	"github.com/nwhealth/nwhealth/pkg/smbrpc/ntlmseal"
	"github.com/spf13/pflag"
)

// ntlmSecretsHelp is the --ntlm-secrets flag's help: replay and report
// take it, as both run replay's pipeline.
const ntlmSecretsHelp = "file of account secrets (DOMAIN\\user nt:HASH or password:TEXT a line) to decrypt NTLM-sealed DCE/RPC (docs/format/ntlm-secrets.md); never given on the command line"

func registerNTLMSecrets(f *pflag.FlagSet, path *string) {
	f.StringVar(path, "ntlm-secrets", "", ntlmSecretsHelp)
}

// keytabHelp is the --keytab flag's help (replay and report).
const keytabHelp = "keytab of service and machine account keys (MIT keytab, or secretsdump's DOMAIN\\user:aes256-cts-hmac-sha1-96:HEX lines) to open Kerberos tickets, SMB3 sessions, sealed DCE/RPC and WinRM messages (docs/format/keytab.md); repeatable"

func registerKeytab(f *pflag.FlagSet, paths *[]string) {
	f.StringArrayVar(paths, "keytab", nil, keytabHelp)
}

// loadKeytabs reads the files named by --keytab into one key set (nil
// when none), warning on errOut for each that others may read. A
// malformed file is a usage error naming the file and its entry or line,
// never a key.
func loadKeytabs(paths []string, errOut io.Writer, cmd string) (*krbseal.Keys, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	all := &krbseal.Keys{}
	for _, path := range paths {
		k, loose, err := krbseal.Load(path)
		if loose {
			warnLoose(errOut, cmd, path, "account keys")
		}
		if errors.Is(err, krbseal.ErrKeysFile) {
			return nil, usagef("--keytab %v", err)
		}
		if err != nil {
			return nil, fmt.Errorf("--keytab: %w", err)
		}
		all.Add(k)
	}
	return all, nil
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
		warnLoose(errOut, cmd, path, "account secrets")
	}
	if errors.Is(err, ntlmseal.ErrSecretsFile) {
		return nil, usagef("--ntlm-secrets %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("--ntlm-secrets: %w", err)
	}
	return s, nil
}

// warnLoose tells that a file of secrets can be read by others (as ssh
// does for keys); it is still read.
func warnLoose(errOut io.Writer, cmd, path, what string) {
	fmt.Fprintf(errOut, "%s: warning: %s is readable by group or others; it holds %s (chmod 600 it)\n", cmd, path, what)
}
