//go:build !linux

package outfile

import "os"

func create(path string) (*os.File, func(), error) {
	f, err := os.Create(path)
	return f, nil, err
}
