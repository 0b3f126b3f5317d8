package servebench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maillage/maillage/adapters/jetstream/bench"
)

// measured is what the timed phase found.
type measured struct {
	took          time.Duration
	reads, writes []time.Duration
	readErrors    int64
	writeErrors   int64
	firstError    error
	cpu           time.Duration // the server's, during the phase
	clientCPU     time.Duration // the load generator's (this process), during the phase
	samples       []sample
	loadBefore    string
	loadAfter     string
}

// sample is the server's memory and CPU at one second of the phase.
type sample struct {
	at    time.Duration
	rss   uint64
	heap  uint64        // the server's Go heap in use (/metrics), 0 if unknown
	cpu   time.Duration // since the phase started
	reads int64
}

// measure runs the readers and writers for the configured duration, and
// samples the server's RSS and CPU time every second.
func (r *run) measure(ctx context.Context) (*measured, error) {
	m := &measured{loadBefore: LoadAverage()}
	pid := r.proc.Process.Pid
	cpu0, rss0, statErr := procStats(pid)
	self0, _, _ := procStats(os.Getpid())
	if statErr == nil {
		m.samples = append(m.samples, sample{rss: rss0, heap: r.heapInUse(ctx)})
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()
	r.progress("serve: %d readers and %d writers for %s", r.cfg.Readers, r.cfg.Writers, r.cfg.Duration)

	var mu sync.Mutex
	var wg sync.WaitGroup
	var readCount atomic.Int64
	worker := func(w int, write bool) {
		defer wg.Done()
		rnd := mrand.New(mrand.NewPCG(uint64(r.cfg.Seed), uint64(w)))
		var lat []time.Duration
		var errs int64
		var first error
		for ctx.Err() == nil {
			c := r.cases[rnd.IntN(len(r.cases))]
			inst := c.members[rnd.IntN(len(c.members))]
			start := time.Now()
			var err error
			if write {
				err = r.post(ctx, "/v1/cases/"+c.id.String()+"/events", inst, observation(), nil)
			} else {
				err = r.read(ctx, c, inst)
			}
			if ctx.Err() != nil {
				break // cut off by the end of the phase: not counted
			}
			if err != nil {
				errs++
				if first == nil {
					first = err
				}
				continue
			}
			lat = append(lat, time.Since(start))
			if !write {
				readCount.Add(1)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if write {
			m.writes, m.writeErrors = append(m.writes, lat...), m.writeErrors+errs
		} else {
			m.reads, m.readErrors = append(m.reads, lat...), m.readErrors+errs
		}
		if m.firstError == nil {
			m.firstError = first
		}
	}
	start := time.Now()
	for w := range r.cfg.Readers {
		wg.Add(1)
		go worker(w, false)
	}
	for w := range r.cfg.Writers {
		wg.Add(1)
		go worker(r.cfg.Readers+w, true)
	}
	if statErr == nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				cpu, rss, err := procStats(pid)
				if err != nil {
					return
				}
				s := sample{at: time.Since(start).Round(time.Second), rss: rss, heap: r.heapInUse(ctx), cpu: cpu - cpu0, reads: readCount.Load()}
				mu.Lock()
				m.samples = append(m.samples, s)
				mu.Unlock()
				r.progress("serve: t=%2ds  rss %6.1f MiB  heap %6.1f MiB  server cpu %5.1fs  reads %d", int(s.at.Seconds()), mib(s.rss), mib(s.heap), s.cpu.Seconds(), s.reads)
			}
		}()
	}
	wg.Wait()
	m.took = time.Since(start)
	if cpu1, _, err := procStats(pid); err == nil && statErr == nil {
		m.cpu = cpu1 - cpu0
	}
	if self1, _, err := procStats(os.Getpid()); err == nil && self0 > 0 {
		m.clientCPU = self1 - self0
	}
	m.loadAfter = LoadAverage()
	if len(m.reads) == 0 && len(m.writes) == 0 {
		return nil, fmt.Errorf("servebench: no request succeeded: %w", errors.Join(m.firstError, errors.New(r.logTail())))
	}
	return m, nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// LoadAverage is the machine's load average (1, 5, 15 min), "" where
// /proc/loadavg is not.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// percentiles returns p50, p95 and p99 in milliseconds.
func percentiles(ds []time.Duration) (p50, p95, p99 float64) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(q*float64(len(ds))+0.5) - 1
		return float64(ds[max(0, min(i, len(ds)-1))]) / float64(time.Millisecond)
	}
	return at(.50), at(.95), at(.99)
}

// report builds the table: a row for reads, one for writes, one for the
// server's CPU over every request; the targets; RSS over time.
func (r *run) report(m *measured, setup string) *bench.Report {
	rep := &bench.Report{Scenario: "serve", CPUs: runtime.NumCPU(), Started: time.Now().UTC().Truncate(time.Second),
		Setup: fmt.Sprintf("maillage serve over HTTP on loopback (own process: embedded JetStream, fsync always, access log and partner feeds on); %d readers + %d writers for %s; %s",
			r.cfg.Readers, r.cfg.Writers, m.took.Round(time.Millisecond), setup)}
	secs := m.took.Seconds()
	row := func(phase, unit string, ds []time.Duration, errs int64) bench.Row {
		p50, p95, p99 := percentiles(ds)
		return bench.Row{Phase: phase, Ops: int64(len(ds)), Unit: unit, Seconds: secs, Rate: float64(len(ds)) / secs,
			P50: p50, P95: p95, P99: p99, Errors: errs}
	}
	reads := row("GET timeline (HTTP, access recorded)", "read", m.reads, m.readErrors)
	writes := row("POST command (HTTP, durable, fanned out)", "cmd", m.writes, m.writeErrors)
	all := bench.Row{Phase: "all requests: server process CPU", Ops: reads.Ops + writes.Ops, Unit: "req", Seconds: secs,
		Rate: float64(reads.Ops+writes.Ops) / secs}
	if m.cpu > 0 && all.Ops > 0 {
		all.CPUPerOp = float64(m.cpu) / float64(time.Microsecond) / float64(all.Ops)
	}
	rep.Rows = []bench.Row{reads, writes, all}
	rep.Ratios = []bench.Ratio{
		{Name: "reads p99 ms", Value: reads.P99, Target: TargetReadP99Ms, AtMost: true, Met: reads.Ops > 0 && reads.P99 < TargetReadP99Ms},
		{Name: "reads/s", Value: reads.Rate, Target: TargetReadsPerSec, Met: reads.Rate >= TargetReadsPerSec},
	}
	if m.loadBefore != "" {
		rep.Notes = append(rep.Notes, fmt.Sprintf("load average before %s, after %s (the machine is shared: a busy one slows every figure but the CPU per request)", m.loadBefore, m.loadAfter))
	}
	if m.cpu > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("server CPU %.1f s over %.1f s (%.2f cores), %.0f µs per request; the load generator's, not counted: %.1f s (%.2f cores)",
			m.cpu.Seconds(), secs, m.cpu.Seconds()/secs, all.CPUPerOp, m.clientCPU.Seconds(), m.clientCPU.Seconds()/secs))
	} else if !procStatsMeasured {
		rep.Notes = append(rep.Notes, "server CPU and RSS not measured: they are read from /proc (Linux only)")
	}
	if len(m.samples) > 0 {
		var b strings.Builder
		for i, s := range m.samples {
			if i > 0 {
				b.WriteString("  ")
			}
			fmt.Fprintf(&b, "%ds %.0f/%.0f", int(s.at.Seconds()), mib(s.rss), mib(s.heap))
		}
		rep.Notes = append(rep.Notes, "server RSS/Go heap in use over time (s MiB/MiB, every second; heap from /metrics, 0 if unread): "+b.String())
	}
	if m.firstError != nil {
		rep.Notes = append(rep.Notes, "first error: "+m.firstError.Error())
	}
	rep.Notes = append(rep.Notes, "appends against a Postgres events table: maillage bench append --peer postgres (issue 14); in-process reads without HTTP or access records: maillage bench read")
	return rep
}

// heapInUse reads the server's Go heap in use from its /metrics
// (go_memstats_heap_inuse_bytes), 0 when it cannot: it tells what of the
// RSS is live Go memory (the embedded nats-server's caches included).
func (r *run) heapInUse(ctx context.Context) uint64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/metrics", nil)
	if err != nil {
		return 0
	}
	res, err := r.client.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0
			}
			return uint64(f)
		}
	}
	return 0
}
