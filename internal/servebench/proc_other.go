//go:build !linux

package servebench

import (
	"errors"
	"time"
)

// procStats is measured from /proc on Linux only.
func procStats(int) (time.Duration, uint64, error) {
	return 0, 0, errors.New("servebench: the server's CPU and RSS are read from /proc (Linux only)")
}

const procStatsMeasured = false
