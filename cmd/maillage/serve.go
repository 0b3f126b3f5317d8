package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maillage/maillage/adapters/directory"
	mhttp "github.com/maillage/maillage/adapters/http"
	"github.com/maillage/maillage/adapters/jetstream"
	mprom "github.com/maillage/maillage/adapters/prometheus"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/internal/reads"
	"github.com/maillage/maillage/projections"
)

// Main is the server process: parse flags, open, serve, close. Tests start
// the real server through it.
type Main struct {
	DataDir   string
	Addr      string
	NatsURL   string
	Demo      bool
	LogFormat string
	// ShutdownTimeout bounds how long in-flight requests may finish on
	// SIGTERM.
	ShutdownTimeout time.Duration
	storeConfig     // the event store of record and NATS replicas: see store.go
	feedConfig      // partner feeds: see feedserve.go
	auditConfig     // signed heads, access log, personal-data keys: see auditserve.go

	stdout, stderr io.Writer
	log            *slog.Logger

	store     *jetstream.Store
	metrics   *prometheus.Registry // served on /metrics; components register on it
	directory *directory.Directory
	cases     *cases.Service
	readModel *projections.Runner // see projections.go
	reads     *reads.Service      // every read of a case, for the API and the web view
	listener  net.Listener
	server    *http.Server
	served    chan error
}

// NewMain returns a Main with the defaults, writing to stdout and stderr.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{DataDir: "data", Addr: ":8080", LogFormat: "text", ShutdownTimeout: 20 * time.Second, stdout: stdout, stderr: stderr}
}

// ParseFlags reads flags, with MAILLAGE_* environment variables as defaults.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("maillage serve", flag.ContinueOnError)
	fs.SetOutput(m.stderr)
	fs.StringVar(&m.DataDir, "data", env("MAILLAGE_DATA", m.DataDir), "data directory: embedded JetStream storage and the directory file (env MAILLAGE_DATA)")
	fs.StringVar(&m.Addr, "addr", env("MAILLAGE_ADDR", m.Addr), "HTTP listen address (env MAILLAGE_ADDR)")
	fs.StringVar(&m.NatsURL, "nats", env("MAILLAGE_NATS", ""), "external NATS server or cluster URL(s), comma-separated; empty runs NATS embedded (env MAILLAGE_NATS)")
	fs.BoolVar(&m.Demo, "demo", env("MAILLAGE_DEMO", "") == "true", "load a demo territory on first start and print its tokens once (env MAILLAGE_DEMO=true)")
	fs.StringVar(&m.LogFormat, "log-format", env("MAILLAGE_LOG_FORMAT", m.LogFormat), "log format: text or json (env MAILLAGE_LOG_FORMAT)")
	fs.DurationVar(&m.ShutdownTimeout, "shutdown-timeout", m.ShutdownTimeout, "how long in-flight requests may finish on SIGTERM")
	m.storeFlags(fs)
	m.feedFlags(fs)
	m.auditFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: serve takes only flags (see maillage serve -h)", fs.Arg(0))
	}
	if err := m.checkStoreFlags(); err != nil {
		return err
	}
	switch m.LogFormat {
	case "text":
		m.log = slog.New(slog.NewTextHandler(m.stderr, nil))
	case "json":
		m.log = slog.New(slog.NewJSONHandler(m.stderr, nil))
	default:
		return fmt.Errorf("--log-format %q: use text or json", m.LogFormat)
	}
	return nil
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// Open starts everything and serves HTTP in the background.
func (m *Main) Open(ctx context.Context) (err error) {
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(m.stderr, nil))
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w (choose another with --data)", m.DataDir, err)
	}
	if err := m.lockDataDir(); err != nil {
		return err
	}
	if m.store, err = jetstream.Open(ctx, append(m.natsOptions(), m.listenOptions()...)...); err != nil {
		return fmt.Errorf("event store: %w", err)
	}
	if m.events, err = m.openEvents(ctx); err != nil {
		return err
	}
	stored := m.events // as stored, personal data sealed: the read models open it at read time
	if m.directory, err = directory.Open(filepath.Join(m.DataDir, "directory.json")); err != nil {
		return err
	}
	m.metrics = mprom.NewRegistry()
	if err := m.openAudit(ctx); err != nil {
		return err
	}
	measured, err := mprom.InstrumentStore(m.events, m.metrics)
	if err != nil {
		return err
	}
	if m.readModel, err = startProjections(ctx, stored, m.DataDir, m.log, m.projectionOptions()...); err != nil {
		return err
	}
	// The read models track the service's appends: a read waits for them.
	if m.cases, err = cases.New(m.readModel.Track(measured), append(m.caseOptions(), cases.WithLogger(m.log))...); err != nil {
		return err
	}
	if err := mprom.RegisterReadModels(m.metrics, m.readModel); err != nil {
		return err
	}
	if err := m.openFeeds(); err != nil {
		return err
	}
	if m.Demo {
		if err := loadDemo(ctx, m.directory, m.cases, m.stdout); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	if m.listener, err = net.Listen("tcp", m.Addr); err != nil {
		return fmt.Errorf("listen on %s: %w (choose another with --addr)", m.Addr, err)
	}
	httpMetrics, err := mprom.NewHTTPMetrics(m.metrics)
	if err != nil {
		return err
	}
	m.reads = reads.New(m.cases, m.readsOptions()...)
	api := mhttp.NewHandler(m.cases, m.directory, mhttp.WithLogger(m.log), mhttp.WithRequestObserver(httpMetrics), mhttp.WithReads(m.reads),
		mhttp.WithReadiness("store", storeReady(m.events)),
		mhttp.WithReadModels(m.readModel), mhttp.WithReadiness("projections", projectionsReady(m.readModel)), m.auditHTTP(), m.faultsHTTP())
	root, err := m.withWeb(withMetrics(api, m.metrics, m.log)) // the web application under / (webserve.go)
	if err != nil {
		return err
	}
	m.server = &http.Server{
		Handler:           root,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	// The goroutine gets the server and listener now: Close sets m.server
	// to nil, possibly before the goroutine runs.
	srv, ln, served := m.server, m.listener, make(chan error, 1)
	m.served = served
	go func() { served <- srv.Serve(ln) }()
	m.log.Info("maillage serving", "addr", m.listener.Addr().String(), "data", m.DataDir, "nats", natsMode(m.NatsURL), "store", m.Store)
	return nil
}

func natsMode(url string) string {
	if url == "" {
		return "embedded"
	}
	return "external"
}

// URL is the base URL the server listens on.
func (m *Main) URL() string { return "http://" + m.listener.Addr().String() }

// Serve opens, serves until ctx ends (SIGINT, SIGTERM), then closes.
func (m *Main) Serve(ctx context.Context) error {
	if err := m.Open(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		m.log.Info("shutting down: finishing in-flight requests")
	case err := <-m.served:
		m.Close()
		return fmt.Errorf("http server: %w", err)
	}
	return m.Close()
}

// Close stops accepting requests, lets in-flight ones finish (so every
// acknowledged command is in the store), then closes the store.
func (m *Main) Close() error {
	var errs []error
	if m.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.ShutdownTimeout)
		if err := m.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
		m.server = nil
	}
	if err := m.closeFeeds(); err != nil {
		errs = append(errs, err)
	}
	if m.readModel != nil {
		if err := m.readModel.Close(); errors.Is(err, syscall.ENOSPC) {
			// The snapshot only saves time at the next start, which then
			// reads the store again: a full disk loses nothing.
			m.log.Warn("read models: snapshot not written, the disk is full; the next start rebuilds them from the store", "err", err)
		} else if err != nil {
			errs = append(errs, fmt.Errorf("read models: %w", err))
		}
		m.readModel = nil
	}
	if err := m.closeAudit(); err != nil {
		errs = append(errs, fmt.Errorf("audit: %w", err))
	}
	if err := m.closeKurrentDB(); err != nil {
		errs = append(errs, err)
	}
	if m.store != nil {
		if err := m.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("event store: %w", err))
		}
		m.store = nil
	}
	m.unlockDataDir()
	return errors.Join(errs...)
}
