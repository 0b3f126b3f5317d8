package backup

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Embedded is a bare embedded nats-server on a data directory's JetStream
// files (<data>/jetstream, as serve lays them out), with nothing created:
// a restore needs the streams not to exist yet, and a backup of a stopped
// server should change nothing.
type Embedded struct {
	srv      *server.Server
	nc       *nats.Conn
	dir      string
	unsynced bool
}

// StartEmbedded starts it on dir (the JetStream storage directory, created
// if missing) and connects to it in-process, every write synced as
// serve's are. The caller holds the data directory's lock.
func StartEmbedded(dir string) (*Embedded, error) { return startEmbedded(dir, false) }

// StartEmbeddedForRestore is StartEmbedded without a sync per write: a
// restored stream is stored again message by message, and an fsync for
// each made a restore of 100,000 events take 15 s instead of 1. Close
// syncs every file: a restore is whole on disk once Close returns, and a
// restore cut short is started again from the file anyway.
func StartEmbeddedForRestore(dir string) (*Embedded, error) { return startEmbedded(dir, true) }

func startEmbedded(dir string, unsynced bool) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "maillage",
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: !unsynced,
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
	return &Embedded{srv: srv, nc: nc, dir: dir, unsynced: unsynced}, nil
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
	if e.unsynced {
		return syncTree(e.dir)
	}
	return nil
}

// syncTree fsyncs every file and directory under dir.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("backup: sync %s: %w", path, err)
		}
		return nil
	})
}
