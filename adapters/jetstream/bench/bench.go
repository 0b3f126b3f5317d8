// Package bench measures Maillage on the embedded NATS JetStream store
// against the limits of that same store, measured in the same run: the
// scenarios behind `maillage bench` (see docs/benchmarks.md).
//
//   - Append: N concurrent writers over M cases through the real write path
//     (domain/cases over the store, fsync on every write), and the raw rate
//     of the same server doing plain durable publishes of the same messages
//     at the same concurrency.
//   - Read: timeline reads per viewer by concurrent readers over a large
//     generated dataset.
//   - Rebuild and Verify: events per second folding every case's state, or
//     verifying every case's hash chain, over ReadAll of a generated history
//     (1,000,000 events by default), against the raw ordered read rate of
//     the same stream.
//   - Fanout: end-to-end latency to every member's feed.
//
// A scenario returns a Report: rows of measurements (rate, latency
// percentiles, errors, memory) and the ratios against the raw store with
// their targets. The package is a benchmark harness, not a test: nothing
// here asserts a figure.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/maillage/maillage/adapters/jetstream"
)

// Options shape a run. Zero values take the defaults of each scenario.
type Options struct {
	// DataDir is where the embedded server stores the stream; empty makes a
	// temporary directory, removed at the end. Choose a directory on the disk
	// you want to measure: on tmpfs fsync costs nothing.
	DataDir string
	// Duration of each timed phase (append, read; default 10s).
	Duration time.Duration
	// Writers and Cases of the append scenario (default 64 writers over 256
	// cases).
	Writers, Cases int
	// Readers of the read scenario (default 64).
	Readers int
	// Rate of the fanout scenario: events appended per second (default 200).
	Rate float64
	// Events is the size of the generated history: about 100,000 for read,
	// 1,000,000 for rebuild and verify by default.
	Events int
	// EventsPerCase is the generator's mean case length (default 50).
	EventsPerCase int
	// Batch is how many events of a generated case go in one append (one
	// message): by default 1, as commands store them (most record one
	// event); WholeCase writes each case's whole history in one append.
	Batch int
	// Listen makes the embedded server listen on a local port, as serve
	// --nats-listen does: other processes may then append, so every read
	// of a cached case asks the store whether it moved. Without it the
	// store is the only writer and trusts the heads it learnt.
	Listen bool
	// GroupCommit is the smallest group of waiting appends the store sends
	// as one atomic batch (jetstream.WithGroupCommit): 0 for the store's
	// default, -1 for no group commit (every append published at once).
	GroupCommit int
	// Peer of the append scenario: PeerPostgres measures, in the same run,
	// a PostgreSQL events table written by as many writers (skipped, with a
	// note, when PostgreSQL is not installed); "" for none.
	Peer string
	// Seed of the generator (default 1).
	Seed int64
	// Progress receives progress lines of long phases (default: none).
	Progress io.Writer
	// Log receives the store's log (default: none).
	Log *slog.Logger
}

// WholeCase, as Options.Batch, writes each generated case's whole history
// in one append.
const WholeCase = -1

func (o Options) withDefaults() Options {
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Batch == 0 {
		o.Batch = 1
	}
	if o.Writers <= 0 {
		o.Writers = 64
	}
	if o.Cases <= 0 {
		o.Cases = 256
	}
	if o.Readers <= 0 {
		o.Readers = 64
	}
	if o.EventsPerCase <= 0 {
		o.EventsPerCase = 50
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Report is the outcome of one scenario.
type Report struct {
	Scenario string    `json:"scenario"`
	Setup    string    `json:"setup"` // what was measured, in one line
	CPUs     int       `json:"cpus"`
	Started  time.Time `json:"started"`
	Rows     []Row     `json:"rows"`
	Ratios   []Ratio   `json:"ratios,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
}

// Row is one measured phase.
type Row struct {
	Phase   string  `json:"phase"`
	Ops     int64   `json:"ops"`  // operations completed (commands, messages, reads, events)
	Unit    string  `json:"unit"` // what an op is: "cmd", "msg", "read", "event"
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"` // ops per second
	// Latency percentiles of one op, in milliseconds (zero where ops are
	// not timed one by one: rebuild, verify, raw read).
	P50    float64 `json:"p50Ms"`
	P95    float64 `json:"p95Ms"`
	P99    float64 `json:"p99Ms"`
	Errors int64   `json:"errors"`
	// CPUPerOp is the process's CPU time (all goroutines, the embedded
	// server's included) per op, in microseconds: unlike the rate, it does
	// not move with the load other processes put on the machine.
	CPUPerOp float64 `json:"cpuPerOpUs"`
	// HeapBytes is the live heap after the phase (after a GC), the whole
	// process's, embedded server included.
	HeapBytes uint64 `json:"heapBytes"`
	// BytesPerEvent is the heap held per event by what the phase keeps in
	// memory (read models, caches), where it keeps events; zero otherwise.
	BytesPerEvent float64 `json:"bytesPerEvent,omitempty"`
}

// Ratio compares a phase with the raw store.
type Ratio struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	// AtMost is true when the target is an upper bound (latency, memory).
	AtMost bool `json:"atMost,omitempty"`
	Met    bool `json:"met"`
}

func ratio(name string, value, target float64, atMost bool) Ratio {
	met := value >= target
	if atMost {
		met = value <= target
	}
	return Ratio{Name: name, Value: value, Target: target, AtMost: atMost, Met: met}
}

// WriteTable prints the report as a table.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "maillage bench %s: %s (%d CPUs)\n", r.Scenario, r.Setup, r.CPUs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tops\tunit\trate/s\tp50 ms\tp95 ms\tp99 ms\terrors\tcpu us/op\theap MiB\tB/event\t")
	for _, row := range r.Rows {
		cpu := "-" // not measured (fanout)
		if row.CPUPerOp > 0 {
			cpu = fmt.Sprintf("%.1f", row.CPUPerOp)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%s\t%d\t%s\t%.1f\t%s\t\n", row.Phase, row.Ops, row.Unit, row.Rate,
			ms(row.P50), ms(row.P95), ms(row.P99), row.Errors, cpu, float64(row.HeapBytes)/(1<<20), perEvent(row.BytesPerEvent))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, q := range r.Ratios {
		op, verdict := ">=", "met"
		if q.AtMost {
			op = "<="
		}
		if !q.Met {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "%s = %.3g (target %s %.3g): %s\n", q.Name, q.Value, op, q.Target, verdict)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

func ms(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

func perEvent(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func newReport(scenario, setup string) *Report {
	return &Report{Scenario: scenario, Setup: setup, CPUs: runtime.GOMAXPROCS(0), Started: time.Now().UTC().Truncate(time.Second)}
}

// env is the store a scenario runs on.
type env struct {
	opts  Options
	store *jetstream.Store
	dir   string
	temp  bool
}

// openEnv starts the embedded server (fsync always) on the data directory.
func openEnv(ctx context.Context, opts Options) (*env, error) {
	e := &env{opts: opts, dir: opts.DataDir}
	if e.dir == "" {
		dir, err := os.MkdirTemp("", "maillage-bench-")
		if err != nil {
			return nil, err
		}
		e.dir, e.temp = dir, true
	}
	s, err := e.open(ctx)
	if err != nil {
		e.removeTemp()
		return nil, err
	}
	e.store = s
	info, err := s.JetStream().Stream(ctx, s.StreamName())
	if err == nil && info.CachedInfo().State.Msgs > 0 {
		err = fmt.Errorf("%s already holds %d messages: benchmarks need an empty data directory", e.dir, info.CachedInfo().State.Msgs)
	}
	if err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// open opens the store of the environment's directory.
func (e *env) open(ctx context.Context, opts ...jetstream.Option) (*jetstream.Store, error) {
	base := []jetstream.Option{jetstream.WithEmbedded(e.dir), jetstream.WithLogger(e.opts.Log)}
	if e.opts.Listen {
		base = append(base, jetstream.WithListen("127.0.0.1:0"))
	}
	switch {
	case e.opts.GroupCommit < 0:
		base = append(base, jetstream.WithGroupCommit(0))
	case e.opts.GroupCommit > 0:
		base = append(base, jetstream.WithGroupCommit(e.opts.GroupCommit))
	}
	return jetstream.Open(ctx, append(base, opts...)...)
}

// reopen closes the store and opens it again with opts.
func (e *env) reopen(ctx context.Context, opts ...jetstream.Option) error {
	if err := e.store.Close(); err != nil {
		return fmt.Errorf("close the store to reopen it: %w", err)
	}
	s, err := e.open(ctx, opts...)
	if err != nil {
		return fmt.Errorf("reopen the store: %w", err)
	}
	e.store = s
	return nil
}

func (e *env) Close() error {
	err := e.store.Close()
	e.removeTemp()
	return err
}

func (e *env) removeTemp() {
	if e.temp {
		os.RemoveAll(e.dir)
	}
}

func (e *env) progress(format string, args ...any) {
	fmt.Fprintf(e.opts.Progress, format+"\n", args...)
}

// latencies collects the durations of one worker's operations.
type latencies []time.Duration

// percentiles merges the workers' latencies and returns p50, p95 and p99 in
// milliseconds.
func percentiles(workers []latencies) (p50, p95, p99 float64) {
	var all latencies
	for _, w := range workers {
		all = append(all, w...)
	}
	if len(all) == 0 {
		return 0, 0, 0
	}
	slices.Sort(all)
	at := func(q float64) float64 {
		i := int(q*float64(len(all))+0.5) - 1
		return float64(all[max(0, min(i, len(all)-1))]) / float64(time.Millisecond)
	}
	return at(.50), at(.95), at(.99)
}

// cpuPerOp is CPU time per op in microseconds.
func cpuPerOp(cpu time.Duration, ops int64) float64 {
	if ops == 0 {
		return 0
	}
	return float64(cpu) / float64(time.Microsecond) / float64(ops)
}

// liveHeap runs a GC and returns the live heap.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// ParseScenario names the scenarios in the order of the documentation.
var Scenarios = []string{"append", "fanout", "read", "rebuild", "verify"}

// Run runs a scenario by name.
func Run(ctx context.Context, scenario string, opts Options) (*Report, error) {
	if opts.Batch < 0 && opts.Batch != WholeCase {
		return nil, fmt.Errorf("batch %d: events per message must be 1 or more, or WholeCase", opts.Batch)
	}
	switch scenario {
	case "append":
		return Append(ctx, opts)
	case "fanout":
		return Fanout(ctx, opts)
	case "read":
		return Read(ctx, opts)
	case "rebuild":
		return Rebuild(ctx, opts)
	case "verify":
		return Verify(ctx, opts)
	}
	return nil, fmt.Errorf("unknown scenario %q: choose one of %s", scenario, strings.Join(Scenarios, ", "))
}
