//go:build !linux

package store

import "errors"

// readNoWait is unavailable: every read is a plain one, and prefetching
// starts at once.
func readNoWait(int, []byte, int64) (int, error) {
	return 0, errors.New("no RWF_NOWAIT")
}
