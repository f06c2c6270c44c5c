//go:build !linux

package replay

import (
	"errors"
	"io"
)

// OpenLive is only implemented on Linux (AF_PACKET).
func OpenLive(string) (Source, io.Closer, error) {
	return nil, nil, errors.New("live capture needs Linux AF_PACKET")
}
