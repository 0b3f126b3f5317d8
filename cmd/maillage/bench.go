package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"

	"github.com/maillage/maillage/adapters/jetstream/bench"
)

const benchUsage = `Usage: maillage bench <scenario> [flags]

Scenarios (docs/benchmarks.md):
  append    concurrent commands through the write path, against raw durable publishes
  fanout    end-to-end latency to every member's feed
  read      timeline reads per viewer by concurrent readers on a generated dataset
  rebuild   fold every case's state over a generated history, against the raw ordered read
  restart   the real server killed with SIGKILL and restarted: time until /readyz, and RSS (--events, --kills)
  serve     the real server over HTTP: 64 timeline readers, 8 command writers, access log and feeds on (--duration default 20s)
  verify    verify every case's hash chain over a generated history, against the raw ordered read

Flags:
`

// runBench runs one benchmark scenario: a table on stdout, progress on
// stderr, and optionally the report as JSON and CPU or heap profiles.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "restart" {
		return runRestartBench(ctx, args[1:], stdout, stderr) // the real server, killed and restarted: benchrestart.go
	}
	fs := flag.NewFlagSet("maillage bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	var (
		opts                        bench.Options
		jsonPath, cpuPath, heapPath string
	)
	fs.StringVar(&opts.DataDir, "data", "", "empty directory for the embedded store (default: a temporary directory, removed after)")
	fs.DurationVar(&opts.Duration, "duration", 0, "length of each timed phase of append, fanout and read (default 10s)")
	fs.IntVar(&opts.Writers, "writers", 0, "append: concurrent writers (default 64)")
	fs.IntVar(&opts.Cases, "cases", 0, "append, fanout: cases written to (default 256)")
	fs.IntVar(&opts.Readers, "readers", 0, "read: concurrent readers (default 64)")
	fs.Float64Var(&opts.Rate, "rate", 0, "fanout: events appended per second (default 200)")
	fs.IntVar(&opts.Events, "events", 0, "read, rebuild, verify: events generated (default 100000 for read, 1000000 otherwise)")
	fs.IntVar(&opts.EventsPerCase, "events-per-case", 0, "mean length of a generated case (default 50)")
	fs.IntVar(&opts.Batch, "batch", 1, "events per message when writing generated cases: 1 as commands store them, 0 a whole case per message")
	fs.StringVar(&opts.Peer, "peer", "", "append: also measure a peer in the same run: postgres (an events table on a PostgreSQL server the bench starts; skipped when not installed)")
	fs.IntVar(&opts.GroupCommit, "group-commit", 0, "append: smallest group of waiting appends sent as one atomic batch: 0 the store's default (8), -1 no group commit")
	fs.BoolVar(&opts.Listen, "listen", false, "let the embedded server listen on a local port, as serve --nats-listen does (reads then check the store)")
	fs.Int64Var(&opts.Seed, "seed", 0, "generator seed (default 1)")
	fs.StringVar(&jsonPath, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&cpuPath, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	fs.StringVar(&heapPath, "memprofile", "", "write a heap profile at the end of the run to this file")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs.Usage()
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		return errors.New("bench: name a scenario: " + strings.Join(bench.Scenarios, ", "))
	}
	scenario := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q after the scenario", fs.Arg(0))
	}
	switch {
	case opts.Batch == 0:
		opts.Batch = bench.WholeCase
	case opts.Batch < 0:
		return fmt.Errorf("bench: --batch %d: give a number of events per message (1 or more), or 0 for a whole case per message", opts.Batch)
	}
	opts.Progress = stderr
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	report, err := runScenario(ctx, scenario, opts, stderr)
	if err != nil {
		return fmt.Errorf("bench %s: %w", scenario, err)
	}
	if heapPath != "" {
		if err := writeHeapProfile(heapPath); err != nil {
			return err
		}
	}
	if err := report.WriteTable(stdout); err != nil {
		return err
	}
	if jsonPath == "" {
		return nil
	}
	f, err := os.Create(jsonPath)
	if err != nil {
		return err
	}
	if err := report.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
