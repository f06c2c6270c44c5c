package store

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nwhealth/nwhealth/pkg/pcapio"
	"github.com/nwhealth/nwhealth/pkg/pkthdr"
)

// QuerySource hands out a plan's packets one at a time (pcapio.Source), for
// consumers that pull, like the replay pipeline. The plan runs in a
// goroutine a few batches ahead.
type QuerySource struct {
	batches chan []pcapio.Packet
	cur     []pcapio.Packet
	stop    chan struct{}
	done    chan struct{}
	err     error
}

// Source starts the plan. Close the source (it closes the plan) when done.
func (pl *Plan) Source() *QuerySource {
	q := &QuerySource{batches: make(chan []pcapio.Packet, 4), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		defer close(q.batches)
		var batch []pcapio.Packet
		var arena []byte
		flush := func() error {
			select {
			case q.batches <- batch:
			case <-q.stop:
				return errStopped
			}
			batch, arena = nil, nil
			return nil
		}
		err := pl.RunRecords(func(r *Record) error {
			p := r.Packet
			if len(arena)+len(p.Data) > cap(arena) {
				arena = make([]byte, 0, max(1<<20, len(p.Data)))
			}
			start := len(arena)
			arena = append(arena, p.Data...)
			p.Data = arena[start:len(arena):len(arena)]
			batch = append(batch, p)
			if len(batch) == 1024 {
				return flush()
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = flush()
		}
		if !errors.Is(err, errStopped) {
			q.err = err
		}
	}()
	return q
}

var errStopped = errors.New("stopped")

// Next returns the next packet in time order; io.EOF at the end. Damage
// met on the way is returned by Err after io.EOF.
func (q *QuerySource) Next() (pcapio.Packet, error) {
	for len(q.cur) == 0 {
		b, ok := <-q.batches
		if !ok {
			return pcapio.Packet{}, io.EOF
		}
		q.cur = b
	}
	p := q.cur[0]
	q.cur = q.cur[1:]
	return p, nil
}

// Err is the plan's outcome once Next returned io.EOF: nil, or a
// *DamageError naming what was skipped.
func (q *QuerySource) Err() error {
	<-q.done
	return q.err
}

// Close stops the plan early.
func (q *QuerySource) Close() error {
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	for range q.batches { // let the producer finish
	}
	<-q.done
	return nil
}

// Follower reads a store while a writer appends to it, like tail -f: it
// polls for new blocks in open shards (and shards sealed or created
// since), and hands out their matching packets. Packets of one writer come
// in order; writers are interleaved as their blocks appear (capture fans
// flows out to writers, so a flow stays in one).
type Follower struct {
	ctx    context.Context
	stores []*Store
	sel    Selector
	poll   time.Duration
	shards map[string]*followed
	br     *pcapio.BlockReader
	cur    []pcapio.Packet
	arena  []byte
	scr    pkthdr.Packet
	// Damage collects blocks that could not be read.
	Damage []Damage
}

type followed struct {
	f        *os.File
	sh       *pcapio.Shard
	sealed   bool
	consumed int
	done     bool
}

// Follow starts following. With fromEnd, everything already stored is
// skipped and only new blocks are read; otherwise reading starts at
// sel.From. The follower stops (io.EOF) when ctx is done.
func Follow(ctx context.Context, stores []*Store, sel Selector, fromEnd bool, poll time.Duration) (*Follower, error) {
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	fl := &Follower{ctx: ctx, stores: stores, sel: sel, poll: poll, shards: map[string]*followed{}, br: pcapio.NewBlockReader()}
	if fromEnd {
		if err := fl.scan(true); err != nil {
			return nil, err
		}
	}
	return fl, nil
}

// Close releases open files.
func (fl *Follower) Close() error {
	for _, s := range fl.shards {
		if s.f != nil {
			s.f.Close()
		}
	}
	fl.br.Close()
	return nil
}

// Next returns the next packet, waiting for the writer as needed.
func (fl *Follower) Next() (pcapio.Packet, error) {
	for len(fl.cur) == 0 {
		if fl.ctx.Err() != nil {
			return pcapio.Packet{}, io.EOF
		}
		if err := fl.scan(false); err != nil {
			return pcapio.Packet{}, err
		}
		if len(fl.cur) > 0 {
			break
		}
		select {
		case <-fl.ctx.Done():
			return pcapio.Packet{}, io.EOF
		case <-time.After(fl.poll):
		}
	}
	p := fl.cur[0]
	fl.cur = fl.cur[1:]
	return p, nil
}

// followKey identifies a shard across its rename from open to sealed.
func followKey(name string) string {
	name = strings.TrimSuffix(strings.TrimSuffix(name, extOpen), extShard)
	if i := strings.LastIndexByte(name, '_'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// scan looks at every shard once; skip marks what exists as consumed.
func (fl *Follower) scan(skip bool) error {
	fl.cur, fl.arena = fl.cur[:0], fl.arena[:0]
	for _, st := range fl.stores {
		l, err := st.List()
		if err != nil {
			return err
		}
		files := l.Shards
		for _, d := range l.Skipped {
			key := st.Dir + "/" + d.Shard
			if fl.shards[key] == nil {
				fl.shards[key] = &followed{done: true}
				fl.Damage = append(fl.Damage, d)
			}
		}
		slices.SortFunc(files, func(a, b ShardFile) int {
			if a.Writer != b.Writer {
				return strings.Compare(a.Writer, b.Writer)
			}
			return int(a.Seq) - int(b.Seq)
		})
		for _, sf := range files {
			key := st.Dir + "/" + followKey(filepath.Base(sf.ShardPath()))
			s := fl.shards[key]
			if s == nil {
				if !sf.Sealed || skip || sf.Overlaps(fl.sel.From, fl.sel.To) {
					s = &followed{}
					fl.shards[key] = s
				} else {
					fl.shards[key] = &followed{done: true}
					continue
				}
			}
			if s.done {
				continue
			}
			fl.advance(st, sf, s, skip)
			if len(fl.arena) >= followBatch {
				return nil // enough for now: the next scan goes on
			}
		}
	}
	return nil
}

// followBatch bounds the packet bytes one scan collects: following from
// the start of a large store must not load it whole.
const followBatch = 4 << 20

// advance reads the blocks of one shard not read yet.
func (fl *Follower) advance(st *Store, sf ShardFile, s *followed, skip bool) {
	if s.f == nil || (sf.Sealed && !s.sealed) {
		// First sight, or sealed (renamed, trailer written) since.
		f, err := st.openShardFile(sf.Name(), false)
		if err != nil {
			var fe *FileError
			if errors.As(err, &fe) {
				fl.Damage = append(fl.Damage, Damage{Shard: sf.Name(), Block: -1, Reason: fe.Reason})
				s.done = true
			}
			return // renamed between listing and opening: next poll
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return
		}
		sh, err := pcapio.OpenShard(f, fi.Size())
		if err != nil {
			f.Close()
			return // header not written yet
		}
		if s.f != nil {
			s.f.Close()
		}
		s.f, s.sh, s.sealed = f, sh, sf.Sealed
	} else if !s.sealed {
		if fi, err := s.f.Stat(); err == nil {
			s.sh.Refresh(fi.Size())
		}
	}
	if skip {
		s.consumed = len(s.sh.Blocks)
	}
	for ; s.consumed < len(s.sh.Blocks); s.consumed++ {
		if fl.ctx.Err() != nil {
			// Stopped: a first scan from an early --from may have a
			// store's worth of blocks to read; the rest waits.
			break
		}
		i := s.consumed
		m := s.sh.Blocks[i]
		if (!fl.sel.From.IsZero() && m.Last < fl.sel.From.UnixNano()) || (!fl.sel.To.IsZero() && m.First >= fl.sel.To.UnixNano()) {
			continue
		}
		if len(fl.arena) >= followBatch {
			break
		}
		raw, _, err := fl.br.Read(s.sh, i)
		if err != nil {
			fl.Damage = append(fl.Damage, Damage{Shard: sf.Name(), Block: i, Offset: m.Offset, Reason: err.Error()})
			continue
		}
		pcapio.Records(raw, s.sh.Header.LinkType, s.sh.Header.Nanos, func(p pcapio.Packet) bool {
			if !fl.sel.Match(&p, &fl.scr) {
				return true
			}
			start := len(fl.arena)
			fl.arena = append(fl.arena, p.Data...)
			p.Data = nil
			p.Offset = int64(start)
			fl.cur = append(fl.cur, p)
			return true
		})
	}
	// Slices into the arena only now: appends may have moved it.
	for i := range fl.cur {
		if fl.cur[i].Data == nil {
			end := len(fl.arena)
			if i+1 < len(fl.cur) {
				end = int(fl.cur[i+1].Offset)
			}
			fl.cur[i].Data = fl.arena[fl.cur[i].Offset:end:end]
		}
	}
	if s.sealed && s.consumed == len(s.sh.Blocks) {
		s.f.Close()
		s.f, s.sh, s.done = nil, nil, true
	}
}
