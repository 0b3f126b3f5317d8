package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkHTTPTimelineReads is the path users take (issue 14): the real
// server on the demo, over loopback HTTP, the access log on (each read
// recorded, durably, before it is served), 64 readers reading timelines
// and 8 writers recording observations, for MAILLAGE_BENCH_DURATION
// (default 10s) whatever b.N (MAILLAGE_BENCH_WRITERS changes the number
// of writers). Reported: reads/s, p50 and p99 of a read,
// writes/s, p50 and p99 of a write; run it with -benchtime 1x.
func BenchmarkHTTPTimelineReads(b *testing.B) {
	duration := 10 * time.Second
	if v := os.Getenv("MAILLAGE_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		duration = d
	}
	readers, writers := 64, 8
	if v := os.Getenv("MAILLAGE_BENCH_WRITERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		writers = n
	}
	s := mustServe(b, "")
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * (readers + writers), MaxIdleConnsPerHost: 2 * (readers + writers)}}
	defer client.CloseIdleConnections()
	type target struct{ who, caseVar string }
	reads := []target{{"ASE", "CASE_LEO"}, {"ASE", "CASE_INES"}, {"ASE", "CASE_NOAH"}, {"MECS", "CASE_LEO"}, {"DITEP", "CASE_LEO"},
		{"CMP", "CASE_LEO"}, {"SCHOOL", "CASE_LEO"}, {"MOTHER", "CASE_LEO"}, {"AED", "CASE_INES"}}
	writes := []target{{"ASE", "CASE_LEO"}, {"AED", "CASE_INES"}, {"ASE", "CASE_NOAH"}}
	do := func(method, path, who, body string, want int) (time.Duration, error) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, s.main.URL()+path, rd)
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+s.vars[who])
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err == nil && resp.StatusCode != want {
			err = fmt.Errorf("%s %s as %s: %d, want %d", method, path, who, resp.StatusCode, want)
		}
		return d, err
	}
	for _, r := range reads {
		if _, err := do("GET", "/v1/cases/"+s.vars[r.caseVar]+"/timeline?limit=50", r.who, "", http.StatusOK); err != nil {
			b.Fatal(err)
		}
	}
	var (
		mu              sync.Mutex
		readLat, wrtLat []time.Duration
		wg              sync.WaitGroup
		stop            = make(chan struct{})
		failed          error
	)
	run := func(n int, fn func(i, j int) (time.Duration, error), into *[]time.Duration) {
		for i := range n {
			wg.Go(func() {
				var mine []time.Duration
				for j := 0; ; j++ {
					select {
					case <-stop:
						mu.Lock()
						*into = append(*into, mine...)
						mu.Unlock()
						return
					default:
					}
					d, err := fn(i, j)
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
						continue
					}
					mine = append(mine, d)
				}
			})
		}
	}
	b.ResetTimer()
	start := time.Now()
	run(readers, func(i, j int) (time.Duration, error) {
		r := reads[(i+j)%len(reads)]
		return do("GET", "/v1/cases/"+s.vars[r.caseVar]+"/timeline?limit=50", r.who, "", http.StatusOK)
	}, &readLat)
	run(writers, func(i, j int) (time.Duration, error) {
		w := writes[(i+j)%len(writes)]
		body := fmt.Sprintf(`{"type":"ObservationRecorded","payload":{"summary":"observation %d-%d"}}`, i, j)
		return do("POST", "/v1/cases/"+s.vars[w.caseVar]+"/events", w.who, body, http.StatusCreated)
	}, &wrtLat)
	time.Sleep(duration)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed != nil {
		b.Fatal(failed)
	}
	report := func(name string, ds []time.Duration) {
		slices.Sort(ds)
		if len(ds) == 0 {
			return
		}
		b.ReportMetric(float64(len(ds))/elapsed.Seconds(), name+"s/s")
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, name+"-p99-ms")
	}
	report("read", readLat)
	report("write", wrtLat)
}
