package feeds

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is the partner-facing NATS server: an embedded nats-server with
// JetStream holding the feed streams, decentralised authentication (see
// Authority) and, when asked, a TCP listener for partner systems. It is a
// server of its own, apart from the event store's: partners can reach
// nothing but the feeds, whatever the store's configuration.
//
// A Server made by ConnectCluster runs no nats-server of its own: the feeds
// are on an external cluster that trusts the authority, srv is nil and
// urls lists the cluster's client URLs.
type Server struct {
	srv      *server.Server
	urls     []string
	auth     *Authority
	nc       *nats.Conn
	log      *slog.Logger
	resolver *server.MemAccResolver

	// The watch of authority.json: see watchAuthority.
	stopWatch  chan struct{}
	watchDone  chan struct{}
	partners   []byte    // the PARTNERS account's claims last applied, as JSON
	pushedAt   time.Time // on a cluster: when the PARTNERS account was last pushed to its nodes
	pushFailed bool      // on a cluster: the last push reached no node

	closeOnce sync.Once
}

// ServerOption configures StartServer.
type ServerOption func(*serverConfig) error

type serverConfig struct {
	listen  string
	tls     *tls.Config
	log     *slog.Logger
	poll    time.Duration
	refresh time.Duration
}

// DefaultAuthorityPoll is how often a feed server reads authority.json
// again, for revocations made by another process.
const DefaultAuthorityPoll = 2 * time.Second

// DefaultRevocationRefresh is how often a feed server on a NATS cluster
// pushes the partners' revocations to the nodes again (see
// WithRevocationRefresh).
const DefaultRevocationRefresh = time.Minute

// WithPartnerListen makes the server accept partner connections on addr
// (host:port; port 0 picks a free one). Without it the server listens to no
// port: only this process reaches it.
func WithPartnerListen(addr string) ServerOption {
	return func(c *serverConfig) error {
		_, port, err := net.SplitHostPort(addr)
		if err == nil {
			_, err = strconv.ParseUint(port, 10, 16)
		}
		if err != nil {
			return fmt.Errorf("feeds: WithPartnerListen %q: %w", addr, err)
		}
		c.listen = addr
		return nil
	}
}

// WithPartnerTLS requires TLS on the partner listener, with this
// configuration (certificates; client certificates if wanted).
func WithPartnerTLS(cfg *tls.Config) ServerOption {
	return func(c *serverConfig) error {
		if cfg == nil || (len(cfg.Certificates) == 0 && cfg.GetCertificate == nil) {
			return errors.New("feeds: WithPartnerTLS: no server certificate")
		}
		c.tls = cfg
		return nil
	}
}

// WithServerLogger sets the logger of the embedded server (default
// slog.Default()).
func WithServerLogger(l *slog.Logger) ServerOption {
	return func(c *serverConfig) error {
		if l == nil {
			return errors.New("feeds: WithServerLogger: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithAuthorityPoll sets how often the server checks authority.json for
// revocations made by another process (maillage partner revoke), default
// DefaultAuthorityPoll. The embedded server applies them; on a NATS
// cluster (ConnectCluster) they are pushed to the nodes.
func WithAuthorityPoll(d time.Duration) ServerOption {
	return func(c *serverConfig) error {
		if d < time.Millisecond {
			return fmt.Errorf("feeds: WithAuthorityPoll: %s, want at least 1ms", d)
		}
		c.poll = d
		return nil
	}
}

// WithRevocationRefresh sets how often, on a NATS cluster
// (ConnectCluster), the PARTNERS account is pushed to the nodes again while
// any revocation is in force, even unchanged (default
// DefaultRevocationRefresh; 0: only at start and when authority.json
// changes). Each push has a new issue time, so every node applies it again
// and closes any connection of a revoked user it holds. nats-server can let such a user
// in: a node that restarts loads the account when the first client comes,
// and a client authenticated while that load is under way is checked
// against no revocation (the account is marked current before its
// revocations are set) and stays connected. It does not apply to
// StartServer, whose server has the account before it accepts anyone.
func WithRevocationRefresh(d time.Duration) ServerOption {
	return func(c *serverConfig) error {
		if d != 0 && d < time.Second {
			return fmt.Errorf("feeds: WithRevocationRefresh: %s, want 0 or at least 1s (a JWT's issue time is in seconds)", d)
		}
		c.refresh = d
		return nil
	}
}

// StartServer starts the feed server with its files under dir: the
// authority's keys (authority.json, created on first start) and JetStream
// storage (jetstream/), with an fsync on every write, since what the feeds
// hold is the record of what each partner was sent. It watches
// authority.json and applies the revocations written there by another
// process (Authority.Revoke) while running. Close it when done.
func StartServer(ctx context.Context, dir string, opts ...ServerOption) (*Server, error) {
	cfg := serverConfig{log: slog.Default(), poll: DefaultAuthorityPoll}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.tls != nil && cfg.listen == "" {
		return nil, errors.New("feeds: WithPartnerTLS needs WithPartnerListen")
	}
	auth, err := OpenAuthority(dir)
	if err != nil {
		return nil, err
	}
	partners, err := json.Marshal(auth.partnersAccount())
	if err != nil {
		return nil, fmt.Errorf("feeds: accounts: %w", err)
	}
	operator, accounts, sysPub, err := auth.accounts()
	if err != nil {
		return nil, fmt.Errorf("feeds: accounts: %w", err)
	}
	resolver := &server.MemAccResolver{}
	for pub, token := range accounts {
		if err := resolver.Store(pub, token); err != nil {
			return nil, fmt.Errorf("feeds: account resolver: %w", err)
		}
	}
	storeDir := filepath.Join(dir, "jetstream")
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		return nil, fmt.Errorf("feeds: %w", err)
	}
	sopts := &server.Options{
		ServerName:       "maillage-feeds",
		JetStream:        true,
		StoreDir:         storeDir,
		SyncAlways:       true,
		DontListen:       true,
		NoSigs:           true,
		TrustedOperators: []*jwt.OperatorClaims{operator},
		AccountResolver:  resolver,
		SystemAccount:    sysPub,
	}
	if cfg.listen != "" {
		host, port, _ := net.SplitHostPort(cfg.listen)
		sopts.DontListen = false
		sopts.Host = host
		sopts.Port, _ = strconv.Atoi(port)
		if sopts.Port == 0 {
			sopts.Port = server.RANDOM_PORT
		}
		if cfg.tls != nil {
			sopts.TLSConfig = cfg.tls
			sopts.TLS = true
			sopts.TLSTimeout = 5
		}
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("feeds: server: %w", err)
	}
	srv.SetLoggerV2(&serverLogger{log: cfg.log.With("component", "nats-feeds")}, false, false, false)
	srv.Start()
	s := &Server{srv: srv, auth: auth, log: cfg.log, resolver: resolver, partners: partners}
	if !srv.ReadyForConnections(30 * time.Second) {
		s.Close()
		return nil, fmt.Errorf("feeds: server in %s not ready after 30s", dir)
	}
	token, seed, err := auth.relayUser(jwt.ConnectionTypeInProcess)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("feeds: relay user: %w", err)
	}
	s.nc, err = nats.Connect("", nats.InProcessServer(srv), nats.Name("maillage-relay"),
		nats.UserJWTAndSeed(token, string(seed)), nats.MaxReconnects(-1))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("feeds: connect: %w", err)
	}
	if err := ctx.Err(); err != nil {
		s.Close()
		return nil, err
	}
	s.stopWatch, s.watchDone = make(chan struct{}), make(chan struct{})
	go s.watchAuthority(cfg.poll, 0)
	return s, nil
}

// Conn returns the relay's connection (account FEEDS): in-process to the
// embedded server, or to the cluster (ConnectCluster). Do not close it:
// Close does.
func (s *Server) Conn() *nats.Conn { return s.nc }

// Authority returns the keys partner credentials are issued with.
func (s *Server) Authority() *Authority { return s.auth }

// ClientURL returns the URL partners connect to: the embedded server's, ""
// when it does not listen, or the first URL of the cluster
// (ConnectCluster).
func (s *Server) ClientURL() string {
	if s.srv == nil {
		if len(s.urls) == 0 {
			return ""
		}
		return s.urls[0]
	}
	if s.srv.Addr() == nil {
		return ""
	}
	return s.srv.ClientURL()
}

// NATS returns the embedded nats-server, nil on a cluster (ConnectCluster).
func (s *Server) NATS() *server.Server { return s.srv }

// Close closes the relay's connection and shuts the embedded server down,
// if there is one.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.stopWatch != nil {
			close(s.stopWatch)
			<-s.watchDone
		}
		if s.nc != nil {
			s.nc.Close()
		}
		if s.srv != nil {
			s.srv.Shutdown()
			s.srv.WaitForShutdown()
		}
	})
	return nil
}

// serverLogger writes nats-server's log to slog.
type serverLogger struct{ log *slog.Logger }

func (l *serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, fmt.Sprintf(format, v...))
	}
}

func (l *serverLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v) } // the banner: maillage logs what matters
func (l *serverLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v) }
func (l *serverLogger) Fatalf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *serverLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v) }
func (l *serverLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v) }
func (l *serverLogger) Tracef(format string, v ...any)  { l.logf(slog.LevelDebug-4, format, v) }
