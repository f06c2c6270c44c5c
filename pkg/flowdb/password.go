package flowdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/nwhealth/nwhealth/internal/secretfile"
)

// PasswordFileEnv names the environment variable naming a file that holds
// the password (a systemd credential, a file only root reads): neither
// the command line (ps shows it to every local user) nor the environment
// of a unit file (systemctl show does) then carries it.
const PasswordFileEnv = "CLICKHOUSE_PASSWORD_FILE"

// maxPasswordFile bounds the file read: a password, not a document.
const maxPasswordFile = 4096

// ErrPasswordFile marks a password file that holds no usable password.
var ErrPasswordFile = errors.New("not a password file (one line, at most 4096 bytes)")

// ReadPasswordFile reads the password from path: the file's one line,
// without its line end. loose says that group or others may read the
// file (the command warns). Errors name the file, never its contents.
func ReadPasswordFile(path string) (password string, loose bool, err error) {
	return secretfile.Read(path, "ClickHouse password file", func(r io.Reader) (string, error) {
		b, err := io.ReadAll(io.LimitReader(r, maxPasswordFile+1))
		if err != nil {
			return "", err
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) == 0 || len(b) > maxPasswordFile || bytes.ContainsAny(b, "\r\n\x00") {
			return "", fmt.Errorf("%w", ErrPasswordFile)
		}
		return string(b), nil
	})
}

// HasPassword reports whether a clickhouse:// URL carries a password
// itself (which the process list shows), malformed or not.
func HasPassword(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return Redact(raw) != raw
	}
	_, set := passwordIn(u)
	return set
}
