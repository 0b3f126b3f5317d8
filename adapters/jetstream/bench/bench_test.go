package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// Tiny runs of every scenario: they check the harness measures what it
// says (every event written is read back, no error), not any figure.

func TestAppendMeasuresBothPaths(t *testing.T) {
	r, err := Append(t.Context(), Options{DataDir: t.TempDir(), Duration: 300 * time.Millisecond, Writers: 4, Cases: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 2 || len(r.Ratios) != 1 {
		t.Fatalf("rows %d, ratios %d", len(r.Rows), len(r.Ratios))
	}
	for _, row := range r.Rows {
		if row.Ops == 0 || row.Errors != 0 || row.Rate <= 0 || row.P50 <= 0 || row.P99 < row.P50 {
			t.Errorf("%+v", row)
		}
	}
	if want := r.Rows[1].Rate / r.Rows[0].Rate; r.Ratios[0].Value != want {
		t.Errorf("ratio %v, want %v", r.Ratios[0].Value, want)
	}
}

func TestVerifyAndRebuildReadEveryEvent(t *testing.T) {
	for _, scenario := range []string{"verify", "rebuild"} {
		t.Run(scenario, func(t *testing.T) {
			r, err := Run(t.Context(), scenario, Options{DataDir: t.TempDir(), Events: 3000, EventsPerCase: 20, Batch: 7})
			if err != nil {
				t.Fatal(err)
			}
			raw, row := r.Rows[0], r.Rows[1]
			if raw.Ops < 3000 || row.Ops != raw.Ops || row.Errors != 0 {
				t.Fatalf("raw %+v\n%s %+v", raw, scenario, row)
			}
		})
	}
}

func TestReadHoldsEveryCase(t *testing.T) {
	for _, listen := range []bool{false, true} {
		r, err := Read(t.Context(), Options{DataDir: t.TempDir(), Events: 2000, EventsPerCase: 20, Readers: 4, Duration: 200 * time.Millisecond, Listen: listen})
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range r.Rows {
			if row.Ops == 0 || row.Errors != 0 {
				t.Errorf("listen=%v: %+v", listen, row)
			}
		}
		if r.Rows[0].BytesPerEvent <= 0 {
			t.Errorf("listen=%v: no memory measured: %+v", listen, r.Rows[0])
		}
	}
}

func TestADataDirectoryWithEventsIsRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := Verify(t.Context(), Options{DataDir: dir, Events: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(t.Context(), Options{DataDir: dir, Events: 100}); err == nil || !strings.Contains(err.Error(), "empty data directory") {
		t.Fatalf("second run on the same directory: %v", err)
	}
}

func TestFanoutReachesEveryMember(t *testing.T) {
	r, err := Fanout(t.Context(), Options{DataDir: t.TempDir(), Duration: 300 * time.Millisecond, Cases: 10, Rate: 50})
	if err != nil {
		t.Fatal(err)
	}
	row := r.Rows[0]
	if row.Ops == 0 || row.Errors != 0 || row.P50 <= 0 {
		t.Fatalf("%+v", row)
	}
	if _, err := Run(t.Context(), "nonsense", Options{}); err == nil {
		t.Fatal("unknown scenario accepted")
	}
}

func TestReportTableAndJSON(t *testing.T) {
	r := newReport("append", "test")
	r.Rows = []Row{{Phase: "raw durable publish", Ops: 10, Unit: "msg", Rate: 5, P50: 1, P95: 2, P99: 3, HeapBytes: 1 << 20}}
	r.Ratios = []Ratio{ratio("a / b", 0.9, 0.8, false), ratio("p99 ms", 7, 5, true)}
	var table, js bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"raw durable publish", "a / b = 0.9 (target >= 0.8): met", "p99 ms = 7 (target <= 5): NOT met"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Rows) != 1 || back.Ratios[1].Met {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}
