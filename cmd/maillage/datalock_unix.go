//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// errDataInUse: another process (a running server) holds the data
// directory.
var errDataInUse = errors.New("data directory in use")

// lockData takes the data directory's lock for this process: the embedded
// JetStream files may be opened by one process at a time, and nats-server
// does not check it. The lock goes with the returned file (and with the
// process, if it dies).
func lockData(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "maillage.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, errDataInUse)
		}
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	return f, nil
}
