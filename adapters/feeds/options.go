package feeds

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maillage/maillage/domain"
)

// Option configures NewRelay. Options are checked when applied.
type Option func(*config) error

type config struct {
	log             *slog.Logger
	now             func() time.Time
	access          domain.AccessLog
	registerer      prometheus.Registerer
	shards          int
	cacheSize       int
	checkpointEvery time.Duration
	dedupWindow     time.Duration
	retryAfter      time.Duration
	lagEvery        time.Duration
	eraseWait       time.Duration
	boundaryEvery   time.Duration
	replicas        int
	crash           func(crashPoint, domain.Event) bool // tests: stop dead at a point
}

func defaultConfig() config {
	return config{
		log:             slog.Default(),
		now:             time.Now,
		shards:          8,
		cacheSize:       1024,
		checkpointEvery: time.Second,
		dedupWindow:     2 * time.Minute,
		retryAfter:      time.Second,
		lagEvery:        5 * time.Second,
		eraseWait:       defaultEraseWait,
		boundaryEvery:   30 * time.Second,
		replicas:        1,
	}
}

// WithLogger sets the relay's logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("feeds: WithLogger: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithClock sets the clock the policy is evaluated at when sending (tests
// set it to check consents that expire).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("feeds: WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithAccessLog records every delivery of content (a full or redacted view,
// first sent or revealed) in the access log, before it is published: a
// delivery that cannot be recorded is not made.
func WithAccessLog(l domain.AccessLog) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("feeds: WithAccessLog: nil log")
		}
		c.access = l
		return nil
	}
}

// WithRegisterer registers the relay's metrics (see docs/feeds.md,
// "Metrics") with r. Without it the relay exposes none.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(c *config) error {
		if r == nil {
			return errors.New("feeds: WithRegisterer: nil registerer")
		}
		c.registerer = r
		return nil
	}
}

// WithShards sets how many cases are relayed at once (default 8). Events of
// one case are always relayed one after the other, in order.
func WithShards(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("feeds: WithShards: %d, want 1 to 1024", n)
		}
		c.shards = n
		return nil
	}
}

// WithCacheSize bounds how many cases the relay keeps folded in memory, with
// what each member holds (default 1024). A case out of the cache is read
// again from the store and the feeds when it moves.
func WithCacheSize(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("feeds: WithCacheSize: %d, want at least 1", n)
		}
		c.cacheSize = n
		return nil
	}
}

// WithCheckpointEvery sets how often the relay saves its position (default
// every second). Exactly-once does not depend on it (see docs/feeds.md);
// it bounds how much is read again after a crash.
func WithCheckpointEvery(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Millisecond {
			return fmt.Errorf("feeds: WithCheckpointEvery: %s, want at least 1ms", d)
		}
		c.checkpointEvery = d
		return nil
	}
}

// WithRetryAfter sets how long the relay waits before starting again after
// a failure (default one second).
func WithRetryAfter(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("feeds: WithRetryAfter: %s, want more than zero", d)
		}
		c.retryAfter = d
		return nil
	}
}

// WithEraseWait bounds how long Relay.Erase waits for the relay to pass
// the erased case's last event (default 30 seconds).
func WithEraseWait(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("feeds: WithEraseWait: %s, want more than zero", d)
		}
		c.eraseWait = d
		return nil
	}
}

// WithReplicas sets the replicas of the feed streams and of the relay's
// checkpoint bucket, 1 to 5 (default 1). More than 1 needs a NATS cluster
// (ConnectCluster); a feed created with fewer replicas is updated to n when
// the relay first publishes to it.
func WithReplicas(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("feeds: WithReplicas: %d, want 1 to 5", n)
		}
		c.replicas = n
		return nil
	}
}

// WithBoundaryEvery sets how often the relay looks for cases whose consent
// or order started or ended since it last evaluated them (default every 30
// seconds): how late, at most, a partner is told to delete what a consent
// that ran out covered, when nothing else happens on the case.
func WithBoundaryEvery(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Millisecond {
			return fmt.Errorf("feeds: WithBoundaryEvery: %s, want at least 1ms", d)
		}
		c.boundaryEvery = d
		return nil
	}
}

// crashPoint is a place where tests stop the relay dead, as a crash would:
// no more publishing, no checkpoint.
type crashPoint int

const (
	// crashBeforePublish: the delivery is recorded in the access log, the
	// message is not published.
	crashBeforePublish crashPoint = iota
	// crashAfterPublish: the message is acknowledged by the server and
	// nothing else is done (no other member, no checkpoint).
	crashAfterPublish
	// crashAfterEvent: every message of an event is published, its position
	// is not checkpointed.
	crashAfterEvent
	// crashAfterCheckpoint: a checkpoint was just written.
	crashAfterCheckpoint
)

// withCrash makes the relay stop dead when stop returns true at a point.
func withCrash(stop func(crashPoint, domain.Event) bool) Option {
	return func(c *config) error { c.crash = stop; return nil }
}

// withLagEvery sets how often the relay measures its lag (tests).
func withLagEvery(d time.Duration) Option {
	return func(c *config) error { c.lagEvery = d; return nil }
}
