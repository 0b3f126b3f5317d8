package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// personalData is what must never appear in metrics or logs: the demo's
// case ids, child references, family names and ids, and tokens.
func personalData(s *server) []string {
	out := []string{"LEO-35-0147", "INE-35-0212", "NOA-35-0305", "Durand", "Haddad", "Perrin"}
	for _, v := range s.vars {
		out = append(out, v)
	}
	return out
}

var uuidPattern = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// waitReady polls /readyz until it answers 200: the read models catch up
// in the background after the start.
func waitReady(t *testing.T, s *server) answer {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := s.do("GET", "/readyz", "", "")
		if a.status == http.StatusOK || time.Now().After(deadline) {
			return a
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetricsAfterTheDemoCarryNoPersonalData(t *testing.T) {
	s := mustServe(t, "")
	waitReady(t, s)
	wantStatus(t, s.do("POST", "/v1/cases/"+s.vars["CASE_INES"]+"/events", "AED",
		`{"type":"ObservationRecorded","payload":{"summary":"Samira Haddad est venue au rendez-vous."}}`), 201)
	s.timeline("CASE_LEO", "FATHER")
	s.timeline("CASE_LEO", "MECS")
	s.do("GET", "/v1/cases/"+s.vars["CASE_LEO"], "AED", "")    // 404: not a member
	s.do("GET", "/v1/no/such/"+s.vars["CASE_NOAH"], "ASE", "") // unmatched API route (the web view answers the others)
	s.do("GET", "/v1/me", "", "")                              // 401

	scrape := s.do("GET", "/metrics", "", "")
	wantStatus(t, scrape, 200)
	body := string(scrape.body)
	for _, want := range []string{
		`maillage_http_requests_total{method="POST",route="/v1/cases/{caseID}/events",status="201"} 1`,
		`maillage_http_requests_total{method="GET",route="/v1/cases/{caseID}/timeline",status="200"}`,
		`maillage_http_requests_total{method="GET",route="/v1/cases/{caseID}",status="404"} 1`,
		`maillage_http_requests_total{method="GET",route="/v1/*",status="404"} 1`, // the pattern, never the path
		`maillage_http_request_duration_seconds_bucket{method="GET",route="/v1/cases/{caseID}/timeline",le="0.005"}`,
		`maillage_store_append_duration_seconds_count{outcome="ok"}`,
		`maillage_store_appended_events_total`,
		`maillage_store_append_conflicts_total 0`,
		`maillage_store_read_case_duration_seconds_count`, `maillage_projections_lag_seconds`, `maillage_projections_caught_up 1`,
		`go_goroutines`, `go_memstats_heap_inuse_bytes`, `process_resident_memory_bytes`, `process_open_fds`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, secret := range personalData(s) {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics contains %q", secret)
		}
	}
	if id := uuidPattern.FindString(body); id != "" {
		t.Errorf("/metrics contains an id: %s", id)
	}
	if strings.Contains(body, `route="/metrics"`) {
		t.Errorf("scrapes are counted as API requests")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	s := mustServe(t, "")
	wantStatus(t, s.do("GET", "/healthz", "", ""), 200)
	ready := waitReady(t, s)
	wantStatus(t, ready, 200)
	if got := ready.json(t); got["status"] != "ready" || got["checks"].(map[string]any)["store"] != "ok" {
		t.Errorf("/readyz answered %s", ready.body)
	}

	// The store goes away: not ready any more, yet alive.
	if err := s.main.store.Close(); err != nil {
		t.Fatal(err)
	}
	notReady := s.do("GET", "/readyz", "", "")
	wantProblem(t, notReady, http.StatusServiceUnavailable, "", "not_ready")
	if !strings.Contains(string(notReady.body), "store") {
		t.Errorf("/readyz does not name the failing check: %s", notReady.body)
	}
	wantStatus(t, s.do("GET", "/healthz", "", ""), 200)
}

// syncBuffer is a bytes.Buffer safe for the server's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestJSONLogsCarryTheRequestIDAndNoPersonalData(t *testing.T) {
	var stdout bytes.Buffer
	var logs syncBuffer
	m := NewMain(&stdout, &logs)
	if err := m.ParseFlags([]string{"--data", t.TempDir(), "--addr", "127.0.0.1:0", "--demo", "--log-format", "json"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, main: m, vars: map[string]string{}}
	t.Cleanup(s.close)
	for _, line := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(strings.Fields(rest)[0], "=")
			s.vars[k] = v
		}
	}
	before := len(logs.String())

	ok := s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events?note=Thomas+Durand", "MECS",
		`{"type":"ObservationRecorded","payload":{"summary":"Thomas Durand a appelé la MECS."}}`)
	wantStatus(t, ok, 201)
	refused := s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "MECS",
		`{"type":"InterventionAgreed","payload":{"intervention":"7d1f7a52-2b7e-4d0a-9a51-4c3e8f0b7d21","institution":"mecs-les-tilleuls",
		"description":"Week-end chez Thomas Durand","modalities":"hébergement","timing":"un week-end sur deux","start":"2026-12-05T10:00:00+01:00",
		"contacts":[{"familyMember":"`+s.vars["FATHER_ID"]+`","supervised":false}]}}`)
	wantProblem(t, refused, 409, "", "contact_suspended")
	if err := m.store.Close(); err != nil { // the next request fails on the store and is logged as an error
		t.Fatal(err)
	}
	failed := s.do("POST", "/v1/cases/"+s.vars["CASE_LEO"]+"/events", "MECS",
		`{"type":"ObservationRecorded","payload":{"summary":"Thomas Durand a rappelé."}}`)
	wantStatus(t, failed, 503)
	s.close()

	ids := map[string]bool{}
	for _, a := range []answer{ok, refused, failed} {
		id := a.header.Get("X-Request-Id")
		if id == "" {
			t.Fatalf("answer %d without X-Request-Id", a.status)
		}
		ids[id] = true
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(logs.String()[before:]))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, sc.Bytes())
		}
		for _, secret := range append(personalData(s), "Thomas", "week-end", "Week-end", "note=") {
			if strings.Contains(sc.Text(), secret) {
				t.Errorf("log line contains %q: %s", secret, sc.Text())
			}
		}
		if id, ok := line["request_id"].(string); ok {
			seen[id]++
		} else if line["msg"] == "request" || (line["level"] == "ERROR" && line["component"] == nil) {
			// Background components (feed-relay, head-signer) log their
			// own failures, e.g. the access log closed under the relay.
			t.Errorf("request log line without request_id: %s", sc.Text())
		}
	}
	for id := range ids {
		if seen[id] == 0 {
			t.Errorf("no log line for request %s", id)
		}
	}
	failedID := failed.header.Get("X-Request-Id")
	if seen[failedID] < 2 {
		t.Errorf("the failed request has %d log lines, want the error and the request line: %s", seen[failedID], logs.String()[before:])
	}
}
