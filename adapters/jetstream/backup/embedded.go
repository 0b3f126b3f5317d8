package backup

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Embedded is a bare embedded nats-server on a data directory's JetStream
// files (<data>/jetstream, as serve lays them out), with nothing created:
// a restore needs the streams not to exist yet, and a backup of a stopped
// server should change nothing. Every write is synced, as serve's are.
type Embedded struct {
	srv *server.Server
	nc  *nats.Conn
}

// StartEmbedded starts it on dir (the JetStream storage directory, created
// if missing) and connects to it in-process. The caller holds the data
// directory's lock.
func StartEmbedded(dir string) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "maillage",
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: true,
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("backup: embedded server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("backup: embedded server in %s not ready after 30s", dir)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("maillage-backup"))
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("backup: connect: %w", err)
	}
	return &Embedded{srv: srv, nc: nc}, nil
}

// Conn is the connection to the server; Close closes it.
func (e *Embedded) Conn() *nats.Conn { return e.nc }

// Close closes the connection and stops the server, its files synced.
func (e *Embedded) Close() error {
	err := e.nc.FlushTimeout(5 * time.Second)
	e.nc.Close()
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	if err != nil && err != nats.ErrConnectionClosed {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}
