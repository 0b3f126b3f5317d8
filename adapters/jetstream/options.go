package jetstream

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults of the options.
const (
	DefaultStreamName    = "MAILLAGE_EVENTS"
	DefaultSubjectPrefix = "maillage.events"
	DefaultDedupWindow   = 2 * time.Minute
)

// Option configures Open. Options are checked when applied: Open fails with
// the first invalid one.
type Option func(*config) error

type config struct {
	dataDir       string // embedded server's storage; "" with url
	listen        string // embedded server's client listener, host:port; "" for none
	url           string // external server or cluster
	replicas      int
	dedupWindow   time.Duration
	log           *slog.Logger
	streamName    string
	subjectPrefix string
	format        string // body format of new messages
	noDirect      bool   // tests: read through consumers and the leader API as with replicas > 1
	stallAfter    time.Duration
	dropDelivery  func(seq uint64) bool // tests: a consumer that receives messages and never delivers them
	unsynced      bool                  // embedded server without an fsync per write (loading benchmark datasets)
	groupMin      int                   // smallest group of waiting appends sent as one atomic batch; 0: no group commit
}

func defaultConfig() config {
	return config{
		replicas:      1,
		dedupWindow:   DefaultDedupWindow,
		log:           slog.Default(),
		streamName:    DefaultStreamName,
		subjectPrefix: DefaultSubjectPrefix,
		format:        FormatBinary,
		stallAfter:    defaultStallAfter,
		groupMin:      DefaultGroupCommit,
	}
}

// WithEmbedded runs nats-server in this process, with JetStream file storage
// under dataDir (created if missing) and an fsync after every write. The
// server listens to no TCP port unless WithListen is given; the store talks
// to it in-process. Exclusive with WithURL.
func WithEmbedded(dataDir string) Option {
	return func(c *config) error {
		if strings.TrimSpace(dataDir) == "" {
			return errors.New("jetstream: WithEmbedded: empty data directory")
		}
		c.dataDir = dataDir
		return nil
	}
}

// WithListen makes the embedded server also accept NATS clients on addr
// (host:port; port 0 or -1 picks a free port), e.g. for the nats CLI or
// other processes. Only with WithEmbedded.
func WithListen(addr string) Option {
	return func(c *config) error {
		_, port, err := net.SplitHostPort(addr)
		if err == nil {
			_, err = parsePort(port)
		}
		if err != nil {
			return fmt.Errorf("jetstream: WithListen %q: %w", addr, err)
		}
		c.listen = addr
		return nil
	}
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < -1 || n > 65535 {
		return 0, fmt.Errorf("bad port %q", p)
	}
	return n, nil
}

// WithURL connects to an external NATS server or cluster (comma-separated
// URLs). Exclusive with WithEmbedded.
func WithURL(url string) Option {
	return func(c *config) error {
		if strings.TrimSpace(url) == "" {
			return errors.New("jetstream: WithURL: empty URL")
		}
		c.url = url
		return nil
	}
}

// WithReplicas sets the number of replicas of the stream (1 to 5). More than
// one needs an external cluster (WithURL).
func WithReplicas(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("jetstream: WithReplicas: %d replicas, want 1 to 5", n)
		}
		c.replicas = n
		return nil
	}
}

// WithDedupWindow sets the stream's message de-duplication window (default
// 2 minutes). Idempotent retries are recognised beyond it too (see the
// package documentation); the window only makes some of them cheaper.
func WithDedupWindow(d time.Duration) Option {
	return func(c *config) error {
		if d < 100*time.Millisecond {
			return fmt.Errorf("jetstream: WithDedupWindow: %s, want at least 100ms", d)
		}
		c.dedupWindow = d
		return nil
	}
}

// WithLogger sets the logger of the store and of the embedded server
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("jetstream: WithLogger: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithStreamName sets the name of the events stream (default
// MAILLAGE_EVENTS).
func WithStreamName(name string) Option {
	return func(c *config) error {
		if name == "" || strings.ContainsAny(name, " \t\r\n.*>/\\") {
			return fmt.Errorf("jetstream: WithStreamName: invalid stream name %q", name)
		}
		c.streamName = name
		return nil
	}
}

// WithSubjectPrefix sets the prefix of the case subjects (default
// maillage.events): the events of a case are on <prefix>.<case id>.
func WithSubjectPrefix(prefix string) Option {
	return func(c *config) error {
		if prefix == "" {
			return errors.New("jetstream: WithSubjectPrefix: empty prefix")
		}
		for _, tok := range strings.Split(prefix, ".") {
			if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n*>") {
				return fmt.Errorf("jetstream: WithSubjectPrefix: invalid prefix %q", prefix)
			}
		}
		c.subjectPrefix = prefix
		return nil
	}
}

// WithFormat sets the body format of the messages the store writes:
// FormatBinary (the default) or FormatJSON. Both are always read, whatever
// the option: a stream may hold messages of both.
func WithFormat(format string) Option {
	return func(c *config) error {
		if format != FormatBinary && format != FormatJSON {
			return fmt.Errorf("jetstream: WithFormat: unknown format %q", format)
		}
		c.format = format
		return nil
	}
}

// WithGroupCommit sets the smallest group of appends, waiting while others
// are published, that goes out as one atomic batch stored with one fsync
// (default DefaultGroupCommit; smaller groups go as concurrent publishes;
// 1 counts as 2). 0 turns group commit off: every append is published at
// once, whatever the concurrency. An append never waits when nothing is in
// flight. See docs/store.md, "Group commit".
func WithGroupCommit(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("jetstream: WithGroupCommit: %d, want 0 (off) or more", n)
		}
		c.groupMin = n
		return nil
	}
}

// WithUnsyncedWrites runs the embedded server without an fsync after every
// write: writes are acknowledged before they are on disk, so a crash or a
// power loss can lose acknowledged events. It exists to load generated
// benchmark datasets quickly (maillage bench writes them so, then reopens
// the store as usual before measuring); nothing that records real cases
// sets it.
func WithUnsyncedWrites() Option {
	return func(c *config) error { c.unsynced = true; return nil }
}

// withoutDirectGet makes the store read as it does with replicas > 1 (no
// direct get), so that tests cover that path on a single server.
func withoutDirectGet() Option {
	return func(c *config) error { c.noDirect = true; return nil }
}

// withStallAfter sets how long Follow waits without progress, while the
// stream holds more, before it gives up (tests).
func withStallAfter(d time.Duration) Option {
	return func(c *config) error { c.stallAfter = d; return nil }
}

// withDropDelivery makes Follow's consumer drop the messages drop selects,
// as a stuck consumer would (tests).
func withDropDelivery(drop func(seq uint64) bool) Option {
	return func(c *config) error { c.dropDelivery = drop; return nil }
}

func (c *config) validate() error {
	switch {
	case c.dataDir == "" && c.url == "":
		return errors.New("jetstream: need WithEmbedded or WithURL")
	case c.dataDir != "" && c.url != "":
		return errors.New("jetstream: WithEmbedded and WithURL are exclusive")
	case c.listen != "" && c.dataDir == "":
		return errors.New("jetstream: WithListen needs WithEmbedded")
	case c.unsynced && c.dataDir == "":
		return errors.New("jetstream: WithUnsyncedWrites needs WithEmbedded (an external server's fsync is its own configuration)")
	case c.dataDir != "" && c.replicas > 1:
		return fmt.Errorf("jetstream: %d replicas need a cluster (WithURL), the embedded server is a single node", c.replicas)
	}
	return nil
}

// direct reports whether reads use direct gets: only on a single replica,
// where they see every acknowledged write (on replicated streams followers
// answer direct gets too and may lag behind the leader).
func (c *config) direct() bool { return c.replicas == 1 && !c.noDirect }
