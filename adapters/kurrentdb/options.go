package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// Defaults of the options.
const (
	DefaultStreamPrefix = "maillage-case-"
	DefaultPageSize     = 512
	DefaultRetryDelay   = 250 * time.Millisecond
	maxRetryDelay       = 5 * time.Second
)

// Option configures Open. Options are checked when applied: Open fails with
// the first invalid one.
type Option func(*config) error

type config struct {
	url        string
	esdb       *esdb.Configuration
	prefix     string
	pageSize   int
	retryDelay time.Duration
	log        *slog.Logger
}

func defaultConfig() config {
	return config{
		prefix:     DefaultStreamPrefix,
		pageSize:   DefaultPageSize,
		retryDelay: DefaultRetryDelay,
		log:        slog.Default(),
	}
}

// WithURL sets the server or cluster to connect to, as a KurrentDB
// connection string: esdb://host:2113?tls=false for one node,
// esdb://admin:changeit@a:2113,b:2113,c:2113 for a cluster (gossip seeds),
// esdb+discover://cluster.dns:2113 for DNS discovery. Required. The user
// needs read access to $all (by default only $admins have it).
func WithURL(url string) Option {
	return func(c *config) error {
		conf, err := esdb.ParseConnectionString(strings.TrimSpace(url))
		if err != nil {
			return fmt.Errorf("kurrentdb: WithURL: %w", err)
		}
		c.url, c.esdb = url, conf
		return nil
	}
}

// WithStreamPrefix sets the prefix of the case streams (default
// maillage-case-): the events of a case are in <prefix><case id>. Follow
// and ReadAll keep the events of the streams with this prefix, so no other
// stream of the database may start with it.
func WithStreamPrefix(prefix string) Option {
	return func(c *config) error {
		if prefix == "" || strings.HasPrefix(prefix, "$") || strings.ContainsAny(prefix, " \t\r\n") {
			return fmt.Errorf("kurrentdb: WithStreamPrefix: invalid prefix %q (not empty, no spaces, not a $ system stream)", prefix)
		}
		c.prefix = prefix
		return nil
	}
}

// WithPageSize sets how many events one read request asks for (default
// 512, at least 2).
func WithPageSize(n int) Option {
	return func(c *config) error {
		if n < 2 || n > 1<<16 {
			return fmt.Errorf("kurrentdb: WithPageSize: %d, want 2 to 65536", n)
		}
		c.pageSize = n
		return nil
	}
}

// WithRetryDelay sets the first delay before Follow subscribes again after
// its subscription dropped (default 250ms); it doubles up to 5s while the
// server stays away.
func WithRetryDelay(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Millisecond || d > maxRetryDelay {
			return fmt.Errorf("kurrentdb: WithRetryDelay: %s, want 1ms to %s", d, maxRetryDelay)
		}
		c.retryDelay = d
		return nil
	}
}

// WithLogger sets the logger of the store and of the KurrentDB client
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("kurrentdb: WithLogger: nil logger")
		}
		c.log = l
		return nil
	}
}

func (c *config) validate() error {
	if c.esdb == nil {
		return errors.New("kurrentdb: need WithURL")
	}
	return nil
}

// clientLogger sends the client's log lines to slog, a level lower than the
// client says: it logs every dropped subscription (including the ones Follow
// closes itself) as an error.
func clientLogger(l *slog.Logger) esdb.LoggingFunc {
	return func(level esdb.LogLevel, format string, args ...any) {
		lvl := slog.LevelDebug
		switch level {
		case esdb.LogError:
			lvl = slog.LevelWarn
		case esdb.LogWarn:
			lvl = slog.LevelInfo
		}
		l.Log(context.Background(), lvl, "kurrentdb client: "+fmt.Sprintf(format, args...))
	}
}
