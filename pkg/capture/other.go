//go:build !linux

package capture

import (
	"context"

	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// Capture is unavailable off Linux; Open always fails.
type Capture struct{}

// Open reports ErrUnsupported.
func Open(Config) (*Capture, error) { return nil, ErrUnsupported }

// InterfaceLinkType needs Linux.
func InterfaceLinkType(string) (pkthdr.LinkType, error) { return 0, ErrUnsupported }

func (*Capture) LinkType() pkthdr.LinkType                  { return 0 }
func (*Capture) Workers() int                               { return 0 }
func (*Capture) Config() Config                             { return Config{} }
func (*Capture) Run(context.Context, []Sink) (Stats, error) { return Stats{}, ErrUnsupported }
func (*Capture) Stats() Stats                               { return Stats{} }
func (*Capture) Close() error                               { return nil }
