//go:build !linux

package outfile

import (
	"os"

	"github.com/nwhealth/nwhealth/internal/filemode"
)

func create(path string) (*os.File, func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, filemode.ForPath(path))
	return f, nil, err
}
