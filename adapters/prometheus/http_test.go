package prometheus

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHTTPMetricsByRoutePattern(t *testing.T) {
	reg := NewRegistry()
	m, err := NewHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveRequest("POST", "/v1/cases/{caseID}/events", 201, 3*time.Millisecond)
	m.ObserveRequest("POST", "/v1/cases/{caseID}/events", 201, 4*time.Millisecond)
	m.ObserveRequest("BREW", "", 404, time.Millisecond)

	if got := sampleValue(t, reg, "maillage_http_requests_total", map[string]string{"method": "POST", "route": "/v1/cases/{caseID}/events", "status": "201"}); got != 2 {
		t.Errorf("201s on the events route: %v, want 2", got)
	}
	if got := sampleValue(t, reg, "maillage_http_requests_total", map[string]string{"method": "other", "route": UnmatchedRoute, "status": "404"}); got != 1 {
		t.Errorf("unmatched request with an unknown method: %v, want 1", got)
	}
	if got := sampleValue(t, reg, "maillage_http_request_duration_seconds", map[string]string{"route": "/v1/cases/{caseID}/events"}); got != 2 {
		t.Errorf("latency samples: %v, want 2", got)
	}
	if _, err := NewHTTPMetrics(reg); err == nil {
		t.Error("registering the request metrics twice on one registry did not fail")
	}

	srv := httptest.NewServer(Handler(reg, quiet))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes", "go_build_info", `maillage_http_requests_total{method="POST",route="/v1/cases/{caseID}/events",status="201"} 2`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

type fakeRunner struct {
	lag      time.Duration
	caughtUp bool
}

func (f *fakeRunner) Lag() time.Duration { return f.lag }
func (f *fakeRunner) CaughtUp() bool     { return f.caughtUp }
func (f *fakeRunner) Err() error         { return nil }

func TestReadModelsLagIsReadAtScrape(t *testing.T) {
	reg := NewRegistry()
	r := &fakeRunner{lag: 1500 * time.Millisecond}
	if err := RegisterReadModels(reg, r); err != nil {
		t.Fatal(err)
	}
	gauge := func(name string) float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == name {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no %s", name)
		return 0
	}
	if gauge("maillage_projections_lag_seconds") != 1.5 || gauge("maillage_projections_caught_up") != 0 {
		t.Fatalf("lag %v, caught up %v", gauge("maillage_projections_lag_seconds"), gauge("maillage_projections_caught_up"))
	}
	r.lag, r.caughtUp = 2*time.Millisecond, true
	if gauge("maillage_projections_lag_seconds") != 0.002 || gauge("maillage_projections_caught_up") != 1 || gauge("maillage_projections_stopped") != 0 {
		t.Fatalf("after catching up: lag %v, caught up %v", gauge("maillage_projections_lag_seconds"), gauge("maillage_projections_caught_up"))
	}
}
