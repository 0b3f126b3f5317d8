package main

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkNotFoundExistingOverUnknown measures, per route, what a caller
// who may not know a case waits for its 404 when the case exists and when
// it does not, over HTTP on the real server (access log and feeds on), and
// reports the ratio of the medians (1 means nothing tells them apart):
//
//	go test ./cmd/maillage -run '^$' -bench NotFoundExistingOverUnknown -benchtime 2000x
//
// The two requests of a pair are sent one after the other, alternating
// which goes first, so that load changes touch both alike.
func BenchmarkNotFoundExistingOverUnknown(b *testing.B) {
	s := mustServe(b, "")
	existing := s.vars["CASE_LEO"] // the AED is a member of another case, not of Léo's
	for _, route := range []string{"", "/timeline", "/access", "/head", "/export", "/plan", "/chronology", "/visibility", "/deadlines"} {
		b.Run("route="+route, func(b *testing.B) {
			var known, unknown []time.Duration
			get := func(id string) time.Duration {
				start := time.Now()
				a := s.do("GET", "/v1/cases/"+id+route, "AED", "")
				d := time.Since(start)
				if a.status != http.StatusNotFound {
					b.Fatalf("%s: %d, want 404: %s", route, a.status, a.body)
				}
				return d
			}
			for i := range b.N {
				other := uuid.NewString()
				if i%2 == 0 {
					known, unknown = append(known, get(existing)), append(unknown, get(other))
				} else {
					unknown, known = append(unknown, get(other)), append(known, get(existing))
				}
			}
			mk, mu := median(known), median(unknown)
			b.ReportMetric(float64(mk.Microseconds()), "existing-µs")
			b.ReportMetric(float64(mu.Microseconds()), "unknown-µs")
			b.ReportMetric(float64(mk)/float64(mu), "existing/unknown")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
