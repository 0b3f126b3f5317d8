package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/generate"
	"github.com/maillage/maillage/internal/servebench"
)

// runRestartBench is `maillage bench restart`: how long the real server
// takes to be ready again after kill -9, on a store of generated events.
// It fills an embedded store under the data directory (one event per
// message, as commands store them), starts this binary as `maillage serve`
// on it, and, once it is ready and has checkpointed its read models, kills
// it with SIGKILL and times the restart until /readyz answers 200; then
// once more with the read models' snapshot deleted (what every restart
// after kill -9 did when the snapshot was only written at shutdown). It
// reports the server's resident set (RSS) once ready, too.
func runRestartBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("maillage bench restart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	events := fs.Int("events", 100_000, "events to generate, at least")
	perCase := fs.Int("events-per-case", 50, "mean length of a generated case")
	kills := fs.Int("kills", 3, "kill -9 and restart this many times")
	seed := fs.Int64("seed", 1, "generator seed")
	dataDir := fs.String("data", "", "directory for the server's data: empty, or holding the store of an earlier run, used as it is (default: a temporary directory, removed after)")
	settle := fs.Duration("settle", 30*time.Second, "how long after ready the resident set is read again (the read models fold their cases in the background)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir := *dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "maillage-bench-restart-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	var n, cases int
	_, err = os.Stat(filepath.Join(dir, "jetstream"))
	reused := err == nil
	if reused {
		if n, cases, err = storedCounts(ctx, filepath.Join(dir, "jetstream")); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "maillage bench restart: the store of %s, %d events in %d cases (%d CPUs)\n", dir, n, cases, runtime.GOMAXPROCS(0))
	} else {
		fmt.Fprintf(stderr, "restart: writing %d generated events\n", *events)
		start := time.Now()
		if n, cases, err = fillOneEventPerMessage(ctx, filepath.Join(dir, "jetstream"), *events, *perCase, *seed); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "maillage bench restart: %d generated events in %d cases, one event per message, embedded JetStream (%d CPUs; written in %s)\n",
			n, cases, runtime.GOMAXPROCS(0), time.Since(start).Round(time.Millisecond))
	}
	fmt.Fprintf(stdout, "%-44s %8s %12s %12s %14s %s\n", "start", "ready s", "RSS MiB", "B/event", "settled MiB", "load average")
	row := func(what string, ready time.Duration, srv *restartServer) error {
		rss := srv.rss()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(*settle):
		}
		settled := srv.rss()
		fmt.Fprintf(stdout, "%-44s %8.2f %12.0f %12.0f %8.0f (%4.0f) %s\n", what, ready.Seconds(), float64(rss)/(1<<20), float64(rss)/float64(n),
			float64(settled)/(1<<20), float64(settled)/float64(n), loadAvg())
		return nil
	}
	srv := &restartServer{exe: exe, dir: dir}
	defer srv.kill()
	ready, err := srv.start(ctx)
	if err != nil {
		return err
	}
	if err := srv.waitCheckpoint(ctx); err != nil {
		return err
	}
	first := "first start (no snapshot: the whole store)"
	if reused {
		first = "first start (the data directory as found)"
	}
	if err := row(first, ready, srv); err != nil {
		return err
	}
	for i := range *kills {
		srv.kill()
		if ready, err = srv.start(ctx); err != nil {
			return err
		}
		if err := row(fmt.Sprintf("after kill -9 (%d)", i+1), ready, srv); err != nil {
			return err
		}
		if err := srv.waitCheckpoint(ctx); err != nil {
			return err
		}
	}
	srv.kill()
	for _, f := range []string{snapshotFile, snapshotFile + ".delta"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if ready, err = srv.start(ctx); err != nil {
		return err
	}
	if err := row("after kill -9, snapshot deleted", ready, srv); err != nil {
		return err
	}
	srv.kill()
	return nil
}

// fillOneEventPerMessage writes generated cases, event by event, with 32
// writers, without an fsync per write (what is measured is the restart).
func fillOneEventPerMessage(ctx context.Context, dir string, events, perCase int, seed int64) (int, int, error) {
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(dir), jetstream.WithLogger(slog.New(slog.DiscardHandler)), jetstream.WithUnsyncedWrites())
	if err != nil {
		return 0, 0, err
	}
	defer store.Close()
	histories := make(chan []domain.Event, 64)
	var budget atomic.Int64
	budget.Store(int64(events))
	var gens sync.WaitGroup
	for g := range runtime.GOMAXPROCS(0) {
		gens.Go(func() {
			gen := generate.New(generate.Options{Seed: seed*1000 + int64(g), EventsPerCase: perCase})
			for budget.Load() > 0 && ctx.Err() == nil {
				h := gen.Case()
				if budget.Add(-int64(len(h))) < -int64(len(h)) {
					return
				}
				histories <- h
			}
		})
	}
	go func() { gens.Wait(); close(histories) }()
	var written, cases atomic.Int64
	var writers sync.WaitGroup
	errs := make([]error, 32)
	for w := range errs {
		writers.Go(func() {
			for h := range histories {
				if errs[w] != nil {
					continue
				}
				for i, e := range h {
					e.Position = 0
					if _, err := store.Append(ctx, uint64(i), []domain.Event{e}); err != nil {
						errs[w] = err
						break
					}
				}
				cases.Add(1)
				written.Add(int64(len(h)))
			}
		})
	}
	writers.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	return int(written.Load()), int(cases.Load()), nil
}

// storedCounts reads how many events (one per message) and cases
// (subjects) a store holds.
func storedCounts(ctx context.Context, dir string) (int, int, error) {
	store, err := jetstream.Open(ctx, jetstream.WithEmbedded(dir), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, 0, err
	}
	defer store.Close()
	stream, err := store.JetStream().Stream(ctx, store.StreamName())
	if err != nil {
		return 0, 0, err
	}
	st := stream.CachedInfo().State
	return int(st.Msgs), int(st.NumSubjects), nil
}

// restartServer is `maillage serve` as a subprocess.
type restartServer struct {
	exe, dir string
	proc     *exec.Cmd
	exited   chan error
	log      *os.File
}

// start starts the server and returns how long it took to answer /readyz
// 200.
func (s *restartServer) start(ctx context.Context) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	addr := ln.Addr().String()
	ln.Close()
	if s.log, err = os.OpenFile(filepath.Join(s.dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return 0, err
	}
	s.proc = exec.Command(s.exe, "serve", "--data", s.dir, "--addr", addr, "--log-format", "json")
	s.proc.Stdout, s.proc.Stderr = s.log, s.log
	s.proc.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "MAILLAGE_") })
	begin := time.Now()
	if err := s.proc.Start(); err != nil {
		return 0, err
	}
	s.exited = make(chan error, 1)
	go func() { s.exited <- s.proc.Wait() }()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		res, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return time.Since(begin), nil
			}
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			return 0, fmt.Errorf("the server exited (%v): see %s", err, s.log.Name())
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(begin) > 15*time.Minute {
			return 0, errors.New("the server is not ready after 15 minutes")
		}
	}
}

// waitCheckpoint waits until the read models' snapshot was written since
// the server became ready, then one checkpoint interval more.
func (s *restartServer) waitCheckpoint(ctx context.Context) error {
	since := time.Now()
	for {
		fi, err := os.Stat(filepath.Join(s.dir, snapshotFile))
		if err == nil && fi.ModTime().After(since.Add(-time.Hour)) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(6 * time.Second): // WithSnapshotInterval's default, and a margin
	}
	return nil
}

// rss reads the server's resident set from /proc (0 elsewhere).
func (s *restartServer) rss() uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.proc.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *restartServer) kill() {
	if s.proc == nil || s.proc.Process == nil {
		return
	}
	_ = s.proc.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.proc = nil
	s.log.Close()
}

// loadAvg is the machine's load average, "-" where it is not known.
func loadAvg() string { return cmp.Or(servebench.LoadAverage(), "-") }
