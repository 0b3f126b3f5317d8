package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream/backup"
	"github.com/maillage/maillage/adapters/storetest"
)

// Given eight writers appending to the events stream, when it is backed
// up and restored again and again, then each restored stream holds exactly
// the messages its state says, the state the snapshot was taken at: no
// tail cut inside, no sequence claimed without its message.
func TestARestoredStreamIsItsStateAtTheSnapshotUnderWrites(t *testing.T) {
	ctx := context.Background()
	src := open(t, t.TempDir())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := storetest.NewCase()
			for {
				select {
				case <-stop:
					return
				default:
				}
				events := c.Next(1)
				if _, err := src.store.Append(ctx, c.Version, events); err != nil {
					t.Error(err)
					return
				}
				c.Commit(events)
			}
		}()
	}
	for range 3 {
		dir := t.TempDir()
		file := filepath.Join(dir, "b")
		sum := backupTo(t, src, file)
		target := filepath.Join(dir, "r")
		srv, err := backup.StartEmbeddedForRestore(filepath.Join(target, "jetstream"))
		if err != nil {
			t.Fatal(err)
		}
		f, _ := os.Open(file)
		if _, err := backup.Restore(ctx, srv.Conn(), f, target, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
		js, _ := jetstream.New(srv.Conn())
		st, _ := js.Stream(ctx, "MAILLAGE_EVENTS")
		info, _ := st.Info(ctx)
		var n, last uint64
		for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
			if _, err := st.GetMsg(ctx, seq); err == nil {
				n++
				last = seq
			}
		}
		snap := sum.Streams[len(sum.Streams)-1]
		if n != info.State.Msgs || last != info.State.LastSeq || n < snap.Messages {
			t.Errorf("snapshot %+v; restored state %d messages up to %d; holding %d messages up to %d", snap, info.State.Msgs, info.State.LastSeq, n, last)
		}
		srv.Close()
	}
	close(stop)
	wg.Wait()
}
