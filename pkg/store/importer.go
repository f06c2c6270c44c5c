package store

import (
	"errors"
	"fmt"
	"io"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
)

// ImportResult describes one imported file.
type ImportResult struct {
	File    string
	Packets uint64
	Damage  []*pcapio.CorruptError // damaged places skipped; every valid packet was kept
}

// Import copies every packet of r into w. progress, when set, is called
// now and then with the input bytes consumed so far.
func Import(w *Writer, name string, r *pcapio.Reader, progress func(offset int64)) (ImportResult, error) {
	res := ImportResult{File: name}
	// pcapng interfaces declare their resolution only as they appear, so
	// pcapng is stored at nanoseconds: lossless either way.
	w.SetNanos(r.Nanosecond() || r.Format() == pcapio.FormatPcapNG)
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		var ce *pcapio.CorruptError
		if errors.As(err, &ce) {
			res.Damage = append(res.Damage, ce)
			if len(res.Damage) > 10000 { // a file of garbage: say so once
				return res, fmt.Errorf("%s: too much damage, stopped at byte %d", name, ce.Offset)
			}
			continue
		}
		if err != nil {
			return res, fmt.Errorf("%s: %w", name, err)
		}
		if err := w.Write(p.Timestamp, p.LinkType, p.Data, p.OrigLen); err != nil {
			return res, err
		}
		res.Packets++
		if progress != nil && res.Packets&4095 == 0 {
			progress(p.Offset)
		}
	}
	return res, nil
}
