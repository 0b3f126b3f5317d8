package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	mhttp "github.com/maillage/maillage/adapters/http"
	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/projections"
)

// snapshotFile is the read models' snapshot, under the data directory.
const snapshotFile = "projections.snapshot"

const projectionsUsage = `Usage:
  maillage projections rebuild [--data DIR] [--nats URL]
      rebuild the read models from the whole event store and write their
      snapshot (stop the server first when the store is embedded)
  maillage projections bench [--events 1000000] [--cases 20000] [--seed 1] [--workers N] [--data DIR]
      generate cases into an embedded store, rebuild the read models, and
      report time, rate and memory (docs/projections.md)
`

// startProjections starts the read models on the store as stored, from
// their snapshot under dataDir. They run until Close (not until ctx ends),
// so that a shutdown finishes its requests before they stop. When the case
// service seals personal data, pass projections.WithPersonalData with the
// same keys (and still the store as stored: see its documentation).
func startProjections(ctx context.Context, store projections.Source, dataDir string, log *slog.Logger, opts ...projections.Option) (*projections.Runner, error) {
	opts = append([]projections.Option{projections.WithLogger(log), projections.WithSnapshot(filepath.Join(dataDir, snapshotFile))}, opts...)
	r, err := projections.NewRunner(store, opts...)
	if err != nil {
		return nil, err
	}
	if err := r.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	return r, nil
}

// projectionOptions open the personal data the case service seals, with
// the same keys.
func (m *Main) projectionOptions() []projections.Option {
	if m.keys == nil {
		return nil
	}
	return []projections.Option{projections.WithPersonalData(m.keys)}
}

// projectionsReady is /readyz's check of the read models: caught up with
// the store, and not stopped on an event.
func projectionsReady(r *projections.Runner) mhttp.ReadinessCheck {
	return func(context.Context) error {
		if err := r.Err(); err != nil {
			return err
		}
		if !r.CaughtUp() {
			return fmt.Errorf("read models catching up with the store (lag %s)", r.Lag().Round(time.Millisecond))
		}
		return nil
	}
}

func runProjections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, projectionsUsage)
		return errors.New("projections: rebuild or bench?")
	}
	switch args[0] {
	case "rebuild":
		return rebuildProjections(ctx, args[1:], stderr)
	case "bench":
		return benchProjections(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, projectionsUsage)
		return nil
	}
	fmt.Fprint(stderr, projectionsUsage)
	return fmt.Errorf("projections: unknown command %q", args[0])
}

func rebuildProjections(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage projections rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", env("MAILLAGE_DATA", "data"), "data directory: embedded JetStream storage and the snapshot (env MAILLAGE_DATA)")
	natsURL := fs.String("nats", env("MAILLAGE_NATS", ""), "external NATS server or cluster URL(s); empty opens the embedded store under --data (env MAILLAGE_NATS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := []jetstream.Option{jetstream.WithLogger(quiet)}
	if *natsURL != "" {
		opts = append(opts, jetstream.WithURL(*natsURL))
	} else {
		dir := filepath.Join(*dataDir, "jetstream")
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("aucun journal d'événements dans %s (choisissez le répertoire avec --data) : %w", dir, err)
		}
		lock, err := lockData(*dataDir)
		if errors.Is(err, errDataInUse) {
			return fmt.Errorf("le répertoire de données %s est utilisé par un serveur en marche : arrêtez-le avant de reconstruire : %w", *dataDir, err)
		}
		if err != nil {
			return err
		}
		if lock != nil {
			defer lock.Close()
		}
		opts = append(opts, jetstream.WithEmbedded(dir))
	}
	store, err := jetstream.Open(ctx, opts...)
	if err != nil {
		return fmt.Errorf("journal d'événements : %w (le serveur est-il arrêté ?)", err)
	}
	defer store.Close()
	r, err := projections.NewRunner(store, projections.WithLogger(quiet), projections.WithSnapshot(filepath.Join(*dataDir, snapshotFile)))
	if err != nil {
		return err
	}
	total, err := lastSequence(ctx, store)
	if err != nil {
		return err
	}
	bar := newProgressBar(stderr, "reconstruction", total, "événements")
	stats, err := r.Rebuild(ctx, func(events int, pos domain.Position) {
		seq, _ := jetstream.SplitPosition(pos)
		bar.update(seq, events)
	})
	bar.finish()
	if err != nil {
		return fmt.Errorf("reconstruction : %w", err)
	}
	if err := r.SaveSnapshot(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "Vues de synthèse reconstruites : %d événements de %d dossiers en %s, soit %.0f événements/s ; instantané écrit dans %s (position %d).\n",
		stats.Events, stats.Cases, stats.Took.Round(time.Millisecond), stats.EventsPerSecond(), filepath.Join(*dataDir, snapshotFile), stats.Position)
	return nil
}

// lastSequence is the stream sequence of the store's last message: where
// a rebuild's progress ends.
func lastSequence(ctx context.Context, store *jetstream.Store) (uint64, error) {
	stream, err := store.JetStream().Stream(ctx, store.StreamName())
	if err != nil {
		return 0, fmt.Errorf("journal d'événements : %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("journal d'événements : %w", err)
	}
	return info.State.LastSeq, nil
}

func benchProjections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage projections bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	events := fs.Int("events", 1_000_000, "events to generate, at least")
	cases := fs.Int("cases", 20_000, "cases to generate, at least (more are made until --events is reached)")
	seed := fs.Int64("seed", 1, "seed of the generators")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "generators in parallel")
	samples := fs.Int("reads", 200, "cases read to time the per-case reads")
	dataDir := fs.String("data", "", "directory for the embedded store and the snapshot (default: a temporary directory, removed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cases < 1 || *events < *cases {
		return fmt.Errorf("--events %d --cases %d: want at least one event per case", *events, *cases)
	}
	dir := *dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "maillage-projections-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(filepath.Join(dir, "jetstream")), jetstream.WithLogger(quiet))
	if err != nil {
		return err
	}
	defer store.Close()

	bar := newProgressBar(stderr, "generate and store", uint64(*events), "events")
	load, err := projections.LoadGenerated(ctx, store, *seed, *events, *cases, *workers, func(n int) { bar.update(uint64(n), n) })
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stored:       %d events, %d cases, one append per case, in %s (%.0f events/s, %d generators)\n",
		load.Events, load.Cases, load.Took.Round(time.Millisecond), float64(load.Events)/load.Took.Seconds(), *workers)

	heapBefore := projections.HeapInUse()
	snapshot := filepath.Join(dir, snapshotFile)
	r, err := projections.NewRunner(store, projections.WithSnapshot(snapshot))
	if err != nil {
		return err
	}
	total, err := lastSequence(ctx, store)
	if err != nil {
		return err
	}
	bar = newProgressBar(stderr, "rebuild", total, "events")
	stats, err := r.Rebuild(ctx, func(n int, pos domain.Position) {
		seq, _ := jetstream.SplitPosition(pos)
		bar.update(seq, n)
	})
	bar.finish()
	if err != nil {
		return err
	}
	heapAfter := projections.HeapInUse()
	fmt.Fprintf(stdout, "rebuild:      %d events, %d cases in %s: %.0f events/s\n",
		stats.Events, stats.Cases, stats.Took.Round(time.Millisecond), stats.EventsPerSecond())
	fmt.Fprintf(stdout, "heap in use:  %s before the rebuild, %s after it (runtime.MemStats.HeapInuse after GC, nats-server's caches included)\n",
		mib(heapBefore), mib(heapAfter))

	reads, err := r.MeasureReads(ctx, *samples)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "reads (mean of %d cases, as their coordinator): plan %s, chronology %s, who-sees-what %s, deadlines %s\n",
		reads.Samples, reads.Plan.Round(time.Microsecond), reads.Chronology.Round(time.Microsecond), reads.WhoSeesWhat.Round(time.Microsecond), reads.CaseDeadlines.Round(time.Microsecond))
	fmt.Fprintf(stdout, "reads across cases: deadlines of %s (%d cases) %s, observatory %s\n",
		reads.Institution, reads.InstitutionCases, reads.InstitutionDeadlines.Round(time.Millisecond), reads.Observatory.Round(time.Millisecond))

	start := time.Now()
	if err := r.SaveSnapshot(); err != nil {
		return err
	}
	saved := time.Since(start)
	info, err := os.Stat(snapshot)
	if err != nil {
		return err
	}
	r = nil // one set of read models in memory at a time
	restored, err := projections.NewRunner(store, projections.WithSnapshot(snapshot), projections.WithSnapshotInterval(0))
	if err != nil {
		return err
	}
	start = time.Now()
	if err := restored.Start(ctx); err != nil {
		return err
	}
	loaded := time.Since(start)
	if restored.Position() != stats.Position {
		return fmt.Errorf("the snapshot was not used: position %d, want %d", restored.Position(), stats.Position)
	}
	fmt.Fprintf(stdout, "snapshot:     %s written in %s, loaded in %s (checksum, anchor; cases restored cold, folded on first read)\n", mib(uint64(info.Size())), saved.Round(time.Millisecond), loaded.Round(time.Millisecond))
	if err := restored.Close(); err != nil {
		return err
	}
	// The read models' own size: the heap with one set of them (the
	// restored runner's) less the heap with none, both measured now, with
	// the same nats-server caches.
	with := projections.HeapInUse()
	runtime.KeepAlive(restored)
	restored = nil
	without := projections.HeapInUse()
	fmt.Fprintf(stdout, "read models:  %s in the heap (%s with them, %s without), %.0f bytes per event\n",
		mib(with-min(with, without)), mib(with), mib(without), float64(with-min(with, without))/float64(stats.Events))
	return nil
}

func mib(n uint64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// progressBar draws a progress bar on a terminal line, at most ten times a
// second. It is safe for concurrent use.
type progressBar struct {
	mu           sync.Mutex
	w            io.Writer
	label, unit  string
	total        uint64
	start, drawn time.Time
	count        int
}

func newProgressBar(w io.Writer, label string, total uint64, unit string) *progressBar {
	return &progressBar{w: w, label: label, unit: unit, total: total, start: time.Now()}
}

// update draws the bar at done of total, count items so far.
func (b *progressBar) update(done uint64, count int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count = max(b.count, count)
	if time.Since(b.drawn) < 100*time.Millisecond {
		return
	}
	b.drawn = time.Now()
	b.draw(done)
}

func (b *progressBar) draw(done uint64) {
	const width = 30
	frac := 1.0
	if b.total > 0 {
		frac = min(1, float64(done)/float64(b.total))
	}
	filled := int(frac * width)
	rate := float64(b.count) / max(time.Since(b.start).Seconds(), 1e-9)
	fmt.Fprintf(b.w, "\r%s [%s%s] %3.0f%%  %d %s  %.0f %s/s ", b.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		frac*100, b.count, b.unit, rate, b.unit)
}

func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw(b.total)
	fmt.Fprintln(b.w)
}
