package projections

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maillage/maillage/domain"
)

// appendUpTo appends each case's events up to the fraction num/den of its
// history (from what done says is there), a case at a time; it returns the
// last position.
func appendUpTo(t testing.TB, s domain.EventStore, histories [][]domain.Event, done []int, num, den int) domain.Position {
	t.Helper()
	var last domain.Position
	for i, h := range histories {
		to := len(h) * num / den
		if to <= done[i] {
			continue
		}
		chunk := slices.Clone(h[done[i]:to])
		for j := range chunk {
			chunk[j].Position = 0
		}
		res, err := s.Append(context.Background(), uint64(done[i]), chunk)
		if err != nil {
			t.Fatal(err)
		}
		done[i], last = to, res.Position
	}
	return last
}

// crash stops a runner as kill -9 would leave its files: no checkpoint at
// the end, nothing written after.
func crash(r *Runner) {
	r.cancel()
	r.wg.Wait()
	r.snapshotPath = ""
}

func waitFor(t testing.TB, r *Runner, p domain.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitFor(ctx, p); err != nil {
		t.Fatal(err)
	}
}

// checkpointed makes a snapshot of a base and two segments, then more
// events the snapshot does not hold, and leaves the runner crashed. It
// returns the store's last position, the position of each checkpoint and
// what a rebuild answers.
func checkpointed(t *testing.T, snapshot string) (store domainStore, last domain.Position, checkpoints []domain.Position, want string) {
	t.Helper()
	ctx := context.Background()
	s := mustStore(t)
	histories := generated(t, 41, 12, 30)
	done := make([]int, len(histories))
	live := mustRunner(t, s, WithSnapshot(snapshot), WithSnapshotInterval(0))
	if err := live.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for step := 1; step <= 4; step++ {
		last = appendUpTo(t, s, histories, done, step, 4)
		waitFor(t, live, last)
		if step == 4 {
			break // recorded, applied, never checkpointed
		}
		if err := live.checkpoint(); err != nil {
			t.Fatal(err)
		}
		checkpoints = append(checkpoints, last)
	}
	crash(live)
	rebuilt := mustRunner(t, s)
	if _, err := rebuilt.Rebuild(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return s, last, checkpoints, dump(t, rebuilt)
}

type domainStore = interface {
	Source
	domain.EventStore
}

// restart starts a runner on the snapshot and returns it once it holds
// last, with its log.
func restart(t *testing.T, s Source, snapshot string, last domain.Position) (*Runner, string) {
	t.Helper()
	var logs syncBuffer
	r := mustRunner(t, s, WithSnapshot(snapshot), WithSnapshotInterval(0), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, last)
	return r, logs.String()
}

// TestACrashLosesOnlyWhatFollowsTheLastCheckpoint: after a crash the runner
// starts from its last checkpoint (a base and the delta file's segments),
// reads only what follows from the store, and answers every read as a
// rebuild does; its next checkpoints continue the same files.
func TestACrashLosesOnlyWhatFollowsTheLastCheckpoint(t *testing.T) {
	snapshot := filepath.Join(t.TempDir(), "projections.snapshot")
	s, last, checkpoints, want := checkpointed(t, snapshot)
	r, logs := restart(t, s, snapshot, last)
	if !strings.Contains(logs, "snapshot loaded") || !strings.Contains(logs, "segments=2") ||
		!strings.Contains(logs, "position="+positionText(checkpoints[2])) || strings.Contains(logs, "WARN") {
		t.Fatalf("not restarted from the last checkpoint (%d):\n%s", checkpoints[2], logs)
	}
	if got := dump(t, r); got != want {
		t.Fatalf("the read models restarted from the checkpoints differ from a rebuild:\n%s", firstDifference(got, want))
	}
	if err := r.checkpoint(); err != nil {
		t.Fatal(err)
	}
	crash(r)
	again, logs := restart(t, s, snapshot, last)
	if !strings.Contains(logs, "segments=3") || !strings.Contains(logs, "position="+positionText(last)) {
		t.Fatalf("the checkpoint after the restart was not used:\n%s", logs)
	}
	if got := dump(t, again); got != want {
		t.Fatalf("the read models restarted a second time differ from a rebuild:\n%s", firstDifference(got, want))
	}
}

func positionText(p domain.Position) string { return fmt.Sprint(uint64(p)) }

// TestADamagedSnapshotIsNeverServed damages the snapshot's files in the
// ways a crash or a disk does: a segment torn or with a flipped byte is
// dropped with the ones after it (the store gives what they held), a damaged
// or missing base is not used at all; each time the reads are those of a
// rebuild, and the next checkpoint writes over the damage.
func TestADamagedSnapshotIsNeverServed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		damage   func(t *testing.T, base, delta string)
		segments int    // segments used
		log      string // what the log says
	}{
		{name: "last segment torn", segments: 1, log: "delta file is damaged", damage: func(t *testing.T, _, delta string) {
			truncate(t, delta, -10)
		}},
		{name: "last segment's length only", segments: 2 - 1, log: "delta file is damaged", damage: func(t *testing.T, _, delta string) {
			truncate(t, delta, -(int64(fileSize(t, delta)) - firstSegmentEnd(t, delta) - 3))
		}},
		{name: "byte flipped in the first segment", segments: 0, log: "delta file is damaged", damage: func(t *testing.T, _, delta string) {
			flip(t, delta, 40)
		}},
		{name: "byte flipped in the base", log: "snapshot not used", damage: func(t *testing.T, base, _ string) {
			flip(t, base, fileSize(t, base)/2)
		}},
		{name: "base truncated", log: "snapshot not used", damage: func(t *testing.T, base, _ string) {
			truncate(t, base, -100)
		}},
		{name: "base deleted", log: "no snapshot", damage: func(t *testing.T, base, _ string) {
			if err := os.Remove(base); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snapshot := filepath.Join(t.TempDir(), "projections.snapshot")
			s, last, _, want := checkpointed(t, snapshot)
			tc.damage(t, snapshot, snapshot+deltaSuffix)
			r, logs := restart(t, s, snapshot, last)
			if !strings.Contains(logs, tc.log) {
				t.Fatalf("the log does not say %q:\n%s", tc.log, logs)
			}
			if tc.log == "delta file is damaged" && !strings.Contains(logs, "snapshot loaded") {
				t.Fatalf("the base and the good segments were not used:\n%s", logs)
			}
			r.saveMu.Lock()
			segments := r.snap.segments
			r.saveMu.Unlock()
			if segments != uint64(tc.segments) {
				t.Fatalf("%d segments used, want %d", segments, tc.segments)
			}
			if got := dump(t, r); got != want {
				t.Fatalf("the read models differ from a rebuild:\n%s", firstDifference(got, want))
			}
			if err := r.checkpoint(); err != nil {
				t.Fatal(err)
			}
			crash(r)
			again, logs := restart(t, s, snapshot, last)
			if strings.Contains(logs, "WARN") || !strings.Contains(logs, "snapshot loaded") {
				t.Fatalf("the checkpoint after the damage did not write over it:\n%s", logs)
			}
			if got := dump(t, again); got != want {
				t.Fatalf("the read models differ from a rebuild after the next checkpoint:\n%s", firstDifference(got, want))
			}
		})
	}
}

// TestASnapshotAheadOfTheStoreIsRefused: a store that lost its last events
// (the same history, shorter) does not hold the snapshot's checkpoint; the
// snapshot is refused, never served with events the store does not have.
func TestASnapshotAheadOfTheStoreIsRefused(t *testing.T) {
	ctx := context.Background()
	snapshot := filepath.Join(t.TempDir(), "projections.snapshot")
	histories := generated(t, 43, 4, 20)
	a := mustStore(t)
	last := appendUpTo(t, a, histories, make([]int, len(histories)), 1, 1)
	ra := mustRunner(t, a, WithSnapshot(snapshot), WithSnapshotInterval(0))
	if err := ra.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ra, last)
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	b := mustStore(t) // the same events but the last case's last two
	shorter := slices.Clone(histories)
	shorter[len(shorter)-1] = shorter[len(shorter)-1][:len(shorter[len(shorter)-1])-2]
	lastB := appendUpTo(t, b, shorter, make([]int, len(shorter)), 1, 1)
	rb, logs := restart(t, b, snapshot, lastB)
	if !strings.Contains(logs, "events this store lost") || !strings.Contains(logs, "snapshot not used") {
		t.Fatalf("the snapshot ahead of the store was not refused:\n%s", logs)
	}
	id := shorter[len(shorter)-1][0].CaseID
	if c := rb.m().get(id); c == nil || c.log.n != len(shorter[len(shorter)-1]) {
		t.Fatalf("the read models do not hold the store's version of case %s", id)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// truncate cuts by bytes from the end (by a negative number).
func truncate(t *testing.T, path string, by int64) {
	t.Helper()
	if err := os.Truncate(path, fileSize(t, path)+by); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, at int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 0x40
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// firstSegmentEnd is the offset after the delta file's first segment.
func firstSegmentEnd(t *testing.T, delta string) int64 {
	t.Helper()
	b, err := os.ReadFile(delta)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(b[0])<<56 | int64(b[1])<<48 | int64(b[2])<<40 | int64(b[3])<<32 | int64(b[4])<<24 | int64(b[5])<<16 | int64(b[6])<<8 | int64(b[7])
	return 8 + n + 32
}
