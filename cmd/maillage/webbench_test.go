package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func percentiles(b *testing.B, name string, ds []time.Duration) {
	slices.Sort(ds)
	if len(ds) == 0 {
		return
	}
	at := func(q float64) float64 {
		return float64(ds[min(len(ds)-1, int(q*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
}

// The case page, server-side, for 64 signed-in sessions at once (each page
// is six reads through the facade, each recorded in the access log).
func BenchmarkWebCasePage64Sessions(b *testing.B) {
	d := startWebDemo(b)
	const sessions = 64
	who := []string{"ASE", "MECS", "DITEP", "CMP", "SCHOOL", "MOTHER", "FATHER"}
	clients := make([]*webClient, sessions)
	for i := range clients {
		clients[i] = newWebClient(b, d)
		clients[i].signIn(d.env[who[i%len(who)]])
	}
	leo := "/dossiers/" + d.env["CASE_LEO"]
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	var wg sync.WaitGroup
	per := max(1, b.N/sessions)
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, per)
			for range per {
				start := time.Now()
				res, err := c.c.Get(c.base + leo)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = bufio.NewReader(res.Body).Discard(1 << 30)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Errorf("case page: %d", res.StatusCode)
					return
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	percentiles(b, "page", lat)
}

// The live path: an append acknowledged, then the event shown in 20 open
// case pages (the "version" event of each stream, after its sections).
func BenchmarkWebLive20Streams(b *testing.B) {
	d := startWebDemo(b)
	const streams = 20
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leo := "/dossiers/" + d.env["CASE_LEO"]
	versions := make([]chan string, streams)
	shown := caseVersion(b, d)
	for i := range streams {
		c := newWebClient(b, d)
		c.signIn(d.env[[]string{"MECS", "DITEP", "ASE", "CMP"}[i%4]])
		c.c.Timeout = 0
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s%s/flux?version=%d", d.url, leo, shown), nil)
		res, err := c.c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		ch := make(chan string, 64)
		versions[i] = ch
		go func() {
			defer res.Body.Close()
			sc := bufio.NewScanner(res.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			next := false
			for sc.Scan() {
				line := sc.Text()
				switch {
				case line == "event: ready":
					ch <- "ready"
				case line == "event: version":
					next = true
				case next && strings.HasPrefix(line, "data: "):
					ch <- strings.TrimPrefix(line, "data: ")
					next = false
				}
			}
		}()
		if v := <-ch; v != "ready" {
			b.Fatalf("stream %d: %s", i, v)
		}
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		res, err := d.m.cases.Record(ctx, observation(mustUUID(b, d.env["CASE_LEO"]), fmt.Sprintf("bench-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		want := fmt.Sprint(res.Version)
		for _, ch := range versions {
			for v := range ch {
				if v == want {
					lat = append(lat, time.Since(acked))
					break
				}
			}
		}
	}
	b.StopTimer()
	percentiles(b, "live", lat)
}
