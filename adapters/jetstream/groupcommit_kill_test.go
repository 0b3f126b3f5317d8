package jetstream

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
)

// Given a process appending from 64 writers over 256 cases with group
// commit on, killed (SIGKILL) after 2,000 acknowledgements, every append
// it acknowledged is in the store when the data directory is opened again,
// once, at the position and version its result gave; and no event is
// recorded twice.
func TestAcknowledgedAppendsSurviveAKill(t *testing.T) {
	if dir := os.Getenv("JETSTREAM_KILL_DIR"); dir != "" {
		appendUntilKilled(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcknowledgedAppendsSurviveAKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), "JETSTREAM_KILL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		version  uint64
		position domain.Position
	}
	acked := map[uuid.UUID]ack{} // last event id of each acknowledged append
	batches := ""
	sc := bufio.NewScanner(out)
	for len(acked) < 2000 && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "stats" {
			batches = f[1]
			continue
		}
		if len(f) != 3 {
			continue
		}
		id, err := uuid.Parse(f[0])
		v, verr := strconv.ParseUint(f[1], 10, 64)
		p, perr := strconv.ParseUint(f[2], 10, 64)
		if err == nil && verr == nil && perr == nil {
			acked[id] = ack{v, domain.Position(p)}
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 2000 {
		t.Fatalf("the appending process stopped after %d appends", len(acked))
	}
	s, err := Open(t.Context(), WithEmbedded(dir), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seen := map[uuid.UUID]int{}
	found := 0
	for e, err := range s.ReadAll(t.Context(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		if seen[e.ID]++; seen[e.ID] > 1 {
			t.Fatalf("event %s recorded twice", e.ID)
		}
		if a, ok := acked[e.ID]; ok {
			found++
			if e.Sequence != a.version || e.Position != a.position {
				t.Fatalf("event %s at version %d position %d, its append returned %d, %d", e.ID, e.Sequence, e.Position, a.version, a.position)
			}
		}
	}
	if found != len(acked) {
		t.Fatalf("%d of %d acknowledged appends found after the kill", found, len(acked))
	}
	t.Logf("%d acknowledged appends, all found once, %d events stored; batches before the kill: %s", len(acked), len(seen), batches)
}

// appendUntilKilled is the killed process: 64 writers append to 256 cases,
// printing each acknowledged append (its last event's id, version and
// position) once Append has returned.
func appendUntilKilled(t *testing.T, dir string) {
	s, err := Open(t.Context(), WithEmbedded(dir), WithLogger(quiet), WithGroupCommit(2))
	if err != nil {
		t.Fatal(err)
	}
	cs := make([]*storetest.Case, 256)
	locks := make([]sync.Mutex, len(cs))
	for i := range cs {
		cs[i] = storetest.NewCase()
	}
	w := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var wg sync.WaitGroup
	acks := 0
	for i := range 64 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for {
				k := rng.IntN(len(cs))
				// One writer per case at a time: each knows its case's
				// version, as the command service does.
				locks[k].Lock()
				c := cs[k]
				events := c.Next(1 + rng.IntN(2))
				res, err := s.Append(t.Context(), c.Version, events)
				if err == nil {
					c.Commit(events)
				}
				locks[k].Unlock()
				if err != nil && !errors.Is(err, domain.ErrVersionConflict) {
					t.Error(err)
					return
				}
				mu.Lock()
				if err == nil {
					fmt.Fprintln(w, events[len(events)-1].ID, res.Version, uint64(res.Position))
					acks++
				}
				if acks%100 == 0 {
					fmt.Fprintln(w, "stats", strings.ReplaceAll(fmt.Sprintf("%+v", s.GroupStats()), " ", ","))
				}
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
