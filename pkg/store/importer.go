package store

import (
	"errors"
	"fmt"
	"io"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// ImportResult describes one imported file.
type ImportResult struct {
	File    string
	Packets uint64                 // packets read and handed to the writer
	Damage  []*pcapio.CorruptError // damaged places skipped (or packets cut); every valid packet was kept
	// Err says why the file could not be opened or read to its end; the
	// packets before that point were imported.
	Err error
}

// Import copies every packet of r into w. progress, when set, is called
// now and then with the input bytes consumed so far. An error is either
// the writer's (w.Err is then set) or the input's.
func Import(w *Writer, name string, r *pcapio.Reader, progress func(offset int64)) (res ImportResult, err error) {
	res.File = name
	// pcapng interfaces declare their resolution only as they appear, so
	// pcapng is stored at nanoseconds: lossless either way.
	w.SetNanos(r.Nanosecond() || r.Format() == pcapio.FormatPcapNG)
	// Packets the reader cut to what a store holds are damage too.
	defer func() { res.Damage = append(res.Damage, r.Cut...) }()
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
		lt := p.LinkType
		if lt == pkthdr.LinkRawOld12 || lt == pkthdr.LinkRawOld14 {
			// Stored as LINKTYPE_RAW, as libpcap writes DLT_RAW: tcpdump
			// knows 14 by no name.
			lt = pkthdr.LinkRaw
		}
		if err := w.Write(p.Timestamp, lt, p.Data, p.OrigLen); err != nil {
			var cut *CutError
			if !errors.As(err, &cut) {
				return res, err
			}
			res.Damage = append(res.Damage, &pcapio.CorruptError{Offset: p.Offset, Reason: cut.Error()})
		}
		res.Packets++
		if progress != nil && res.Packets&4095 == 0 {
			progress(p.Offset)
		}
	}
	return res, nil
}

// Input is one file to import: its name and how to open it.
type Input struct {
	Name string
	Open func() (*pcapio.Reader, error)
}

// Progress follows an import from file to file (nil methods are not
// called: see ImportAll).
type Progress interface {
	Start(name string)
	Update(offset int64)
	Done()
}

// ImportAll imports the inputs in turn. An input that cannot be opened,
// or fails before its end, is named in its result's Err and the others
// are still imported. A failure of the writer (a full disk) ends the
// import and is returned.
func ImportAll(w *Writer, inputs []Input, prog Progress) ([]ImportResult, error) {
	var results []ImportResult
	for _, in := range inputs {
		r, err := in.Open()
		if err != nil {
			results = append(results, ImportResult{File: in.Name, Err: err})
			continue
		}
		var update func(int64)
		if prog != nil {
			prog.Start(in.Name)
			update = prog.Update
		}
		res, err := Import(w, in.Name, r, update)
		r.Close()
		if prog != nil {
			prog.Done()
		}
		if err != nil && w.Err() != nil {
			results = append(results, res)
			return results, err
		}
		res.Err = err
		results = append(results, res)
	}
	return results, nil
}
