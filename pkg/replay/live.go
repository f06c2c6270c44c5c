package replay

import (
	"context"
	"errors"
	"io"
	"time"
)

// RunLive feeds packets from a live source (an interface, a store being
// written) and ticks the pipeline by the wall clock every tick, so
// operations print as soon as they complete and idle streams and half-open
// calls expire while the wire is quiet. A goroutine reads the source; the
// caller's goroutine owns the pipeline, so emit and onTick need no locks.
// It returns when ctx ends or the source does.
func RunLive(ctx context.Context, src Source, cfg Config, tick time.Duration, emit func(Operation), onTick func(Stats)) (Stats, error) {
	p := New(cfg, emit)
	type item struct {
		pk  Packet
		err error
	}
	ch := make(chan item, 4096)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			pk, err := src.Next()
			if err == nil {
				pk.Data = append([]byte(nil), pk.Data...) // the source reuses its buffer
			}
			select {
			case ch <- item{pk, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	if tick <= 0 {
		tick = 250 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.Flush()
			return p.Stats(), nil
		case it := <-ch:
			if it.err != nil {
				p.Flush()
				if errors.Is(it.err, io.EOF) {
					return p.Stats(), nil
				}
				return p.Stats(), it.err
			}
			p.Packet(it.pk)
			p.MarkWall(time.Now())
		case now := <-t.C:
			p.Tick(now)
			if onTick != nil {
				onTick(p.Stats())
			}
		}
	}
}
