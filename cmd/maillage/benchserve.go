package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/maillage/maillage/adapters/jetstream/bench"
	"github.com/maillage/maillage/internal/servebench"
)

// runScenario runs a bench scenario: serve starts this binary as the real
// server (internal/servebench), the others run in-process (bench.Run).
func runScenario(ctx context.Context, scenario string, opts bench.Options, stderr io.Writer) (*bench.Report, error) {
	if scenario != "serve" {
		return bench.Run(ctx, scenario, opts)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("the maillage binary to start as the server: %w", err)
	}
	cfg := servebench.Config{Binary: exe, DataDir: opts.DataDir, Duration: opts.Duration, Readers: opts.Readers, Writers: opts.Writers,
		Cases: opts.Cases, Seed: opts.Seed}
	if progressTerminal(stderr) {
		cfg.Progress = stderr
	}
	return servebench.Run(ctx, cfg)
}

// progressTerminal reports whether w is a terminal: serve's progress (a
// line per second) is for a person watching, not for a log.
func progressTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
