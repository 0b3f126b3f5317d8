package bench

import (
	"errors"
	"testing"
	"time"
)

// TestAppendPostgresPeer runs the append scenario with its Postgres peer,
// on the PostgreSQL server of the machine: a third row and the ratio to
// it, or, without PostgreSQL, the note that says it was skipped.
func TestAppendPostgresPeer(t *testing.T) {
	r, err := Append(t.Context(), Options{DataDir: t.TempDir(), Duration: 300 * time.Millisecond, Writers: 4, Cases: 8, Peer: PeerPostgres})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgBinDir(); errors.Is(err, ErrNoPostgres) {
		for _, n := range r.Notes {
			if n == ErrNoPostgres.Error() {
				t.Skip(n)
			}
		}
		t.Fatalf("no PostgreSQL, and no note saying so: %q", r.Notes)
	}
	if len(r.Rows) != 3 || len(r.Ratios) != 2 {
		t.Fatalf("rows %d, ratios %d: %+v", len(r.Rows), len(r.Ratios), r.Notes)
	}
	pg := r.Rows[2]
	if pg.Ops == 0 || pg.Errors != 0 || pg.Rate <= 0 {
		t.Fatalf("peer row %+v", pg)
	}
	if want := r.Rows[1].Rate / pg.Rate; r.Ratios[1].Value != want {
		t.Errorf("ratio %v, want %v", r.Ratios[1].Value, want)
	}
}
