// Package servebench is `maillage bench serve`: the real server, started as
// a process of its own (`maillage serve`, access log and partner feeds on,
// as in production), driven over HTTP on loopback by concurrent timeline
// readers and command writers, with the server's CPU time per request and
// its resident memory read from the operating system (docs/benchmarks.md).
// It measures what a user gets, where `bench read` measures the read path
// in-process without HTTP or access records.
package servebench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/directory"
	"github.com/maillage/maillage/adapters/jetstream/bench"
	"github.com/maillage/maillage/domain"
)

// Config shapes a run. Zero values take the defaults.
type Config struct {
	// Binary is the maillage executable started as `serve` (required).
	Binary string
	// DataDir is the server's data directory; empty makes a temporary one,
	// removed after. It must be empty: the bench writes the directory of
	// institutions and tokens there before the server starts.
	DataDir string
	// Duration of the measured phase (default 20s).
	Duration time.Duration
	// Readers and Writers run at once during the measured phase (default
	// 64 and 8): a reader reads a case's timeline as one of its members, a
	// writer records an observation on a case as one of its members.
	Readers, Writers int
	// Cases opened before measuring (default 64), each with 5 to 20
	// members drawn from Institutions institutions (default 40), the
	// coordinator included, and History observations each (default 20).
	Cases, Institutions, History int
	// Seed makes the territory and the choices repeatable (default 1).
	Seed int64
	// Progress receives a line per phase and one per RSS sample (nil:
	// nothing).
	Progress io.Writer
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Duration <= 0 {
		c.Duration = 20 * time.Second
	}
	def(&c.Readers, 64)
	def(&c.Writers, 8)
	def(&c.Cases, 64)
	def(&c.Institutions, 40)
	def(&c.History, 20)
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// Targets of issue 14, printed next to the figures.
const (
	TargetReadP99Ms   = 10.0
	TargetReadsPerSec = 5000.0
)

const (
	minMembers  = 5
	maxMembers  = 20
	coordinator = domain.InstitutionID("ase-bench")
	setupConns  = 16
)

var kinds = []domain.InstitutionKind{domain.KindMECS, domain.KindSchool, domain.KindDITEP, domain.KindAEMO, domain.KindCMP,
	domain.KindFoster, domain.KindAED, domain.KindMDPH, domain.KindPJJ, domain.KindOther}

// run is one benchmark.
type run struct {
	cfg    Config
	dir    string
	temp   bool
	url    string
	client *http.Client
	tokens map[domain.InstitutionID]string
	insts  []domain.InstitutionID
	cases  []benchCase
	proc   *exec.Cmd
	exited chan error
	log    *os.File
}

type benchCase struct {
	id      domain.CaseID
	members []domain.InstitutionID
}

// Run starts the server, fills it, measures, stops it and reports.
func Run(ctx context.Context, cfg Config) (*bench.Report, error) {
	cfg = cfg.withDefaults()
	if cfg.Binary == "" {
		return nil, errors.New("servebench: no maillage binary to start")
	}
	if cfg.Institutions < maxMembers-1 {
		return nil, fmt.Errorf("servebench: %d institutions, want at least %d", cfg.Institutions, maxMembers-1)
	}
	r := &run{cfg: cfg, dir: cfg.DataDir, tokens: map[domain.InstitutionID]string{}}
	if r.dir == "" {
		dir, err := os.MkdirTemp("", "maillage-bench-serve-")
		if err != nil {
			return nil, err
		}
		r.dir, r.temp = dir, true
	} else if entries, err := os.ReadDir(r.dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("servebench: %s is not empty: the bench needs an empty data directory", r.dir)
	}
	defer r.cleanup()
	if err := r.territory(); err != nil {
		return nil, err
	}
	started := time.Now()
	if err := r.start(ctx); err != nil {
		return nil, err
	}
	defer r.stop()
	r.progress("serve: server ready in %s (pid %d, data %s)", time.Since(started).Round(time.Millisecond), r.proc.Process.Pid, r.dir)
	started = time.Now()
	if err := r.openCases(ctx); err != nil {
		return nil, err
	}
	events := r.cfg.Cases * (1 + r.cfg.History)
	for _, c := range r.cases {
		events += len(c.members) - 1
	}
	setup := fmt.Sprintf("%d cases of %.1f members on average, %d events, recorded over HTTP in %s", len(r.cases), r.meanMembers(), events,
		time.Since(started).Round(time.Millisecond))
	r.progress("serve: %s", setup)
	m, err := r.measure(ctx)
	if err != nil {
		return nil, err
	}
	return r.report(m, setup), nil
}

func (r *run) progress(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, format+"\n", args...)
}

// territory writes the directory the server opens: the coordinator and
// the partner institutions, and a professional's token for each.
func (r *run) territory() error {
	dir, err := directory.Open(filepath.Join(r.dir, "directory.json"))
	if err != nil {
		return err
	}
	add := func(id domain.InstitutionID, kind domain.InstitutionKind) error {
		if err := dir.AddInstitution(directory.Institution{ID: id, Kind: kind, Name: "Institution " + string(id), Departement: "35"}); err != nil {
			return err
		}
		tok, _, err := dir.Issue(directory.Principal{Role: domain.RoleProfessional, Institution: id, Name: "Référent " + string(id)}, time.Now())
		if err != nil {
			return err
		}
		r.tokens[id] = tok
		return nil
	}
	if err := add(coordinator, domain.KindASE); err != nil {
		return err
	}
	for i := range r.cfg.Institutions {
		kind := kinds[i%len(kinds)]
		id := domain.InstitutionID(fmt.Sprintf("%s-bench-%02d", kind, i))
		if err := add(id, kind); err != nil {
			return err
		}
		r.insts = append(r.insts, id)
	}
	return nil
}

// start runs `maillage serve` on a free loopback port and waits until it
// is ready.
func (r *run) start(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	r.log, err = os.Create(filepath.Join(r.dir, "serve.log"))
	if err != nil {
		return err
	}
	r.proc = exec.Command(r.cfg.Binary, "serve", "--data", r.dir, "--addr", addr, "--log-format", "json")
	r.proc.Stdout, r.proc.Stderr = r.log, r.log
	r.proc.Env = withoutMaillageEnv(os.Environ())
	if err := r.proc.Start(); err != nil {
		return fmt.Errorf("servebench: start %s serve: %w", r.cfg.Binary, err)
	}
	r.exited = make(chan error, 1)
	go func() { r.exited <- r.proc.Wait() }()
	r.url = "http://" + addr
	conns := r.cfg.Readers + r.cfg.Writers + setupConns
	r.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := r.client.Get(r.url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-r.exited:
			r.exited <- err
			return fmt.Errorf("servebench: the server exited (%v): %s", err, r.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("servebench: the server is not ready after 60s: %s", r.logTail())
		}
	}
}

// withoutMaillageEnv drops MAILLAGE_* variables, so that the server runs
// with serve's defaults whatever the caller's shell holds.
func withoutMaillageEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "MAILLAGE_") })
}

func (r *run) logTail() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "serve.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// stop asks the server to shut down (as SIGINT does) and waits for it.
func (r *run) stop() {
	if r.proc == nil || r.proc.Process == nil {
		return
	}
	_ = r.proc.Process.Signal(os.Interrupt)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		_ = r.proc.Process.Kill()
		<-r.exited
	}
	r.proc = nil
}

func (r *run) cleanup() {
	r.stop()
	if r.log != nil {
		r.log.Close()
	}
	if r.temp {
		os.RemoveAll(r.dir)
	}
}

// openCases opens the cases, has their members join and records their
// history, over HTTP as a coordinator and members would.
func (r *run) openCases(ctx context.Context) error {
	rnd := mrand.New(mrand.NewPCG(uint64(r.cfg.Seed), 0x7365727665))
	r.cases = make([]benchCase, r.cfg.Cases)
	for i := range r.cases {
		n := minMembers + rnd.IntN(maxMembers-minMembers+1)
		c := benchCase{members: []domain.InstitutionID{coordinator}}
		for _, p := range rnd.Perm(len(r.insts))[:n-1] {
			c.members = append(c.members, r.insts[p])
		}
		r.cases[i] = c
	}
	return parallel(ctx, setupConns, len(r.cases), func(i int) error {
		c := &r.cases[i]
		var opened struct {
			CaseID domain.CaseID `json:"caseId"`
		}
		body := map[string]any{"payload": map[string]any{"childReference": fmt.Sprintf("BENCH-%04d", i), "legalFrame": "administrative",
			"departement": "35", "referent": map[string]string{"name": "Référent ASE"}}}
		if err := r.post(ctx, "/v1/cases", coordinator, body, &opened); err != nil {
			return fmt.Errorf("open case %d: %w", i, err)
		}
		c.id = opened.CaseID
		for _, m := range c.members[1:] {
			if err := r.post(ctx, "/v1/cases/"+c.id.String()+"/events", coordinator, map[string]any{"type": "PartnerJoined",
				"payload": map[string]any{"institution": m, "referent": map[string]string{"name": "Référent"}, "reason": "banc d'essai"}}, nil); err != nil {
				return fmt.Errorf("case %d: join %s: %w", i, m, err)
			}
		}
		for k := range r.cfg.History {
			if err := r.post(ctx, "/v1/cases/"+c.id.String()+"/events", c.members[k%len(c.members)], observation(), nil); err != nil {
				return fmt.Errorf("case %d: history: %w", i, err)
			}
		}
		return nil
	})
}

func observation() map[string]any {
	return map[string]any{"type": "ObservationRecorded", "payload": map[string]any{"summary": "Observation du banc d'essai."}}
}

func (r *run) meanMembers() float64 {
	n := 0
	for _, c := range r.cases {
		n += len(c.members)
	}
	return float64(n) / float64(max(1, len(r.cases)))
}

// post sends a command as inst's professional, with an idempotency key,
// and decodes the answer into out (if not nil).
func (r *run) post(ctx context.Context, path string, inst domain.InstitutionID, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.tokens[inst])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", uuid.NewString())
	res, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		detail, _ := io.ReadAll(io.LimitReader(res.Body, 500))
		return fmt.Errorf("POST %s: %d %s", path, res.StatusCode, bytes.TrimSpace(detail))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// read gets a case's timeline as inst's professional and reads it whole.
func (r *run) read(ctx context.Context, c benchCase, inst domain.InstitutionID) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/v1/cases/"+c.id.String()+"/timeline?limit=100", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.tokens[inst])
	res, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("timeline: %d", res.StatusCode)
	}
	return nil
}

// parallel runs fn for 0..n-1 on workers goroutines, stopping at the
// first error.
func parallel(ctx context.Context, workers, n int, fn func(int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
