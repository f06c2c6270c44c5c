// Package secretfile opens the files of account secrets replay reads
// (NTLM secrets, Kerberos keys) and tells whether others may read them.
package secretfile

import (
	"fmt"
	"io"
	"os"
)

// Read opens path, hands it to parse and reports whether group or others
// may read it (the command warns). what names the kind of file in an
// open error; a parse error is wrapped with the path, never the secret.
func Read[T any](path, what string, parse func(io.Reader) (T, error)) (v T, loose bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return v, false, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o044 != 0 {
		loose = true
	}
	v, err = parse(f)
	if err != nil {
		var zero T
		return zero, loose, fmt.Errorf("%s: %w", path, err)
	}
	return v, loose, nil
}
