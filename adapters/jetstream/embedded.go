package jetstream

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startEmbedded starts a single-node nats-server with JetStream file storage
// under c.dataDir, fsync on every write.
func startEmbedded(c *config) (*server.Server, error) {
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("jetstream: data directory: %w", err)
	}
	opts := &server.Options{
		ServerName: "maillage",
		JetStream:  true,
		StoreDir:   c.dataDir,
		// Every write is on disk before it is acknowledged: the default
		// (sync every 2 minutes) loses acknowledged writes on power loss.
		SyncAlways: !c.unsynced,
		DontListen: true,
		NoSigs:     true,
	}
	if c.listen != "" {
		host, port, _ := net.SplitHostPort(c.listen)
		opts.DontListen = false
		opts.Host = host
		opts.Port, _ = parsePort(port)
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("jetstream: embedded server: %w", err)
	}
	srv.SetLoggerV2(&serverLogger{log: c.log.With("component", "nats-server")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("jetstream: embedded server in %s not ready after 30s", c.dataDir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("jetstream: embedded server in %s started without JetStream", c.dataDir)
	}
	return srv, nil
}

// serverLogger writes nats-server's log to slog.
type serverLogger struct{ log *slog.Logger }

func (l *serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, fmt.Sprintf(format, v...))
	}
}

func (l *serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelInfo, format, v) }
func (l *serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *serverLogger) Fatalf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.logf(slog.LevelDebug-4, format, v) }
