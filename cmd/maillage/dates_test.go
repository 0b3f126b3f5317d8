package main

import (
	"bytes"
	"net/http"
	"testing"
)

// TestDatesOutOfRangeRefused: a date outside 1900-2200 is refused with a
// problem naming its field, in a command (occurredAt, also the zero time,
// which was taken for "now"; a payload date) and in a read (asOf, from),
// and nothing is recorded.
func TestDatesOutOfRangeRefused(t *testing.T) {
	s := mustServe(t, "")
	events := "/v1/cases/" + s.vars["CASE_LEO"] + "/events"
	before := len(s.timeline("CASE_LEO", "ASE"))
	for _, tc := range []struct {
		name, method, path, body, field string
	}{
		{"occurredAt 9999", "POST", events, `{"type":"ObservationRecorded","occurredAt":"9999-12-31T00:00:00Z","payload":{"summary":"x"}}`, "occurredAt"},
		{"occurredAt zero", "POST", events, `{"type":"ObservationRecorded","occurredAt":"0001-01-01T00:00:00Z","payload":{"summary":"x"}}`, "occurredAt"},
		{"occurredAt 1899", "POST", events, `{"type":"ObservationRecorded","occurredAt":"1899-12-31T23:59:59Z","payload":{"summary":"x"}}`, "occurredAt"},
		{"payload date", "POST", events, `{"type":"ObservationRecorded","payload":{"summary":"x","occurredUntil":"2201-01-01T00:00:00Z"}}`, "payload.occurredUntil"},
		{"asOf", "GET", "/v1/cases/" + s.vars["CASE_LEO"] + "/chronology?asOf=9999-12-31T00:00:00Z", "", "asOf"},
		{"access from", "GET", "/v1/cases/" + s.vars["CASE_LEO"] + "/access?from=0001-01-01T00:00:00Z", "", "from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := s.do(tc.method, tc.path, "ASE", tc.body)
			if a.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", a.status, a.body)
			}
			p := a.json(t)
			if p["rule"] != "date_out_of_range" || p["field"] != tc.field {
				t.Fatalf("problem %v, want rule date_out_of_range on %s", p, tc.field)
			}
		})
	}
	if after := len(s.timeline("CASE_LEO", "ASE")); after != before {
		t.Fatalf("%d events recorded by refused commands", after-before)
	}
	// The bounds themselves are dates like any other.
	a := s.do("POST", events, "ASE", `{"type":"ObservationRecorded","occurredAt":"2200-12-31T23:59:59Z","payload":{"summary":"x"}}`)
	if a.status != http.StatusCreated && a.status != http.StatusOK {
		t.Fatalf("occurredAt 2200-12-31: %d %s", a.status, a.body)
	}
	chrono := s.do("GET", "/v1/cases/"+s.vars["CASE_LEO"]+"/chronology", "ASE", "")
	if chrono.status != http.StatusOK || !bytes.Contains(chrono.body, []byte("2200-12-31T23:59:59Z")) {
		t.Fatalf("the chronology does not show 2200-12-31 as such: %d %s", chrono.status, chrono.body)
	}
}
