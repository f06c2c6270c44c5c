package pipeline

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/nwhealth/nwhealth/pkg/store"
)

// Shipper exports a capture's sealed shards while it runs: a pass at
// start (catching up on whatever an outage left in the store), one after
// each Kick (a shard sealed), and retries with backoff while the
// database is unreachable. The store stays the source of truth: a pass
// exports every shard the database lacks, so nothing is queued in memory
// and nothing is lost when the database is down.
type Shipper struct {
	// Connect opens the sink (and creates the schema); it is called again
	// after a failure. The sink is closed if it is an io.Closer.
	Connect func(ctx context.Context) (ShardSink, error)
	Export  Exporter // Sink is set by the Shipper
	// Stores, when set, gives Export's stores before each pass: an object
	// store that was down when the capture started joins once it answers
	// (the shards a spool uploaded, and removed, are read from it).
	Stores func(ctx context.Context) []store.Reader
	// Logf reports failures and recoveries (once per outage, not per try).
	Logf func(format string, args ...any)
	// MinRetry and MaxRetry bound the backoff (defaults 1 s and 1 min).
	MinRetry, MaxRetry time.Duration

	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	total   ExportStats
	lastErr error
}

// Start runs passes in the background until Close.
func (s *Shipper) Start(ctx context.Context) {
	if s.MinRetry <= 0 {
		s.MinRetry = time.Second
	}
	if s.MaxRetry <= 0 {
		s.MaxRetry = time.Minute
	}
	s.kick, s.stop, s.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go s.loop(ctx)
}

// Kick asks for a pass soon (a shard was sealed). It never blocks.
func (s *Shipper) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Shipper) loop(ctx context.Context) {
	defer close(s.done)
	retry := time.Duration(0)
	var timer <-chan time.Time
	s.pass(ctx, &retry, &timer)
	for {
		select {
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-timer:
		}
		s.pass(ctx, &retry, &timer)
	}
}

// pass runs one export; after a failure it arms the retry timer.
func (s *Shipper) pass(ctx context.Context, retry *time.Duration, timer *<-chan time.Time) {
	err := s.runOnce(ctx)
	if err == nil {
		*retry, *timer = 0, nil
		return
	}
	if *retry == 0 {
		*retry = s.MinRetry
	} else {
		*retry = min(2**retry, s.MaxRetry)
	}
	*timer = time.After(*retry)
}

func (s *Shipper) runOnce(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Export.Sink == nil {
		sink, err := s.Connect(ctx)
		if err != nil {
			s.fail(err)
			return err
		}
		s.Export.Sink = sink
	}
	if s.Stores != nil {
		s.Export.Stores = s.Stores(ctx)
	}
	st, dmg, err := s.Export.Run(ctx)
	s.total.Shards += st.Shards
	s.total.Records += st.Records
	s.total.Damaged = st.Damaged
	for _, p := range dmg.Places {
		s.logf("flows not exported, damaged: %s", p)
	}
	if err != nil {
		if c, ok := s.Export.Sink.(io.Closer); ok {
			c.Close()
		}
		s.Export.Sink = nil
		s.fail(err)
		return err
	}
	if s.lastErr != nil {
		s.logf("flow export resumed: %d shards (%d records) caught up", st.Shards, st.Records)
		s.lastErr = nil
	}
	return nil
}

func (s *Shipper) fail(err error) {
	if s.lastErr == nil {
		s.logf("flow export failed (retrying; the store keeps everything): %v", err)
	}
	s.lastErr = err
}

func (s *Shipper) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// Close stops the background passes, runs a last pass (bounded by
// timeout) for the shards sealed at the end, and closes the sink. It
// returns what was exported in all, and the last pass's error: shards it
// could not export are exported by the next capture or flows --export.
func (s *Shipper) Close(timeout time.Duration) (ExportStats, error) {
	close(s.stop)
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := s.runOnce(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.Export.Sink.(io.Closer); ok {
		c.Close()
	}
	s.Export.Sink = nil
	return s.total, err
}
