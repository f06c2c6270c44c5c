package replay

import (
	"context"
	"errors"
	"io"
	"time"
)

// batchSource hands over packets a batch at a time, in memory it owns
// until the batch is recycled (a Live capture): RunLive then feeds them
// without copying.
type batchSource interface {
	nextBatch() (*liveBatch, error)
	recycle(*liveBatch)
}

// dropCounter is a source that can lose packets (a Live capture).
type dropCounter interface{ KernelDrops() uint64 }

// stopper is a source whose Next blocks until it is stopped (a Live
// capture waits for packets); RunLive stops it when ctx ends so that its
// reader goroutine returns.
type stopper interface{ stop() }

// RunLive feeds packets from a live source (an interface, a store being
// written) and ticks the pipeline by the wall clock every tick, so
// operations print as soon as they complete and idle streams and half-open
// calls expire while the wire is quiet. A goroutine reads the source; the
// caller's goroutine owns the pipeline, so emit and onTick need no locks.
// It returns when ctx ends or the source does, and only once the reader
// goroutine has stopped, so the caller may close the source at once: a
// source's Next must return soon after ctx ends (a store follower sees
// the same context; a Live capture is stopped by RunLive). The packets a
// Live source lost are in the returned Stats (KernelDrops).
func RunLive(ctx context.Context, src Source, cfg Config, tick time.Duration, emit func(Operation), onTick func(Stats)) (Stats, error) {
	p := New(cfg, emit)
	type item struct {
		pk    Packet
		batch *liveBatch
		err   error
	}
	ch := make(chan item, 4096)
	ctx, cancel := context.WithCancel(ctx)
	bs, batched := src.(batchSource)
	readerDone := make(chan struct{})
	defer func() {
		cancel()
		if s, ok := src.(stopper); ok {
			s.stop()
		}
		<-readerDone
	}()
	go func() {
		defer close(readerDone)
		for {
			var it item
			if batched {
				it.batch, it.err = bs.nextBatch()
			} else {
				it.pk, it.err = src.Next()
				if it.err == nil {
					it.pk.Data = append([]byte(nil), it.pk.Data...) // the source reuses its buffer
				}
			}
			select {
			case ch <- it:
			case <-ctx.Done():
				if it.batch != nil {
					bs.recycle(it.batch)
				}
				return
			}
			if it.err != nil {
				return
			}
		}
	}()
	stats := func() Stats {
		st := p.Stats()
		if dc, ok := src.(dropCounter); ok {
			st.KernelDrops = dc.KernelDrops()
		}
		return st
	}
	if tick <= 0 {
		tick = 250 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.Flush()
			return stats(), nil
		case it := <-ch:
			if it.err != nil {
				p.Flush()
				if errors.Is(it.err, io.EOF) {
					return stats(), nil
				}
				return stats(), it.err
			}
			if it.batch != nil {
				for _, pk := range it.batch.pkts {
					p.Packet(pk)
				}
				bs.recycle(it.batch)
			} else {
				p.Packet(it.pk)
			}
			p.MarkWall(time.Now())
		case now := <-t.C:
			p.Tick(now)
			if onTick != nil {
				onTick(stats())
			}
		}
	}
}
