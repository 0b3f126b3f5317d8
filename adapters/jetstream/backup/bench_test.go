package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/backup"
	"github.com/maillage/maillage/adapters/storetest"
)

// BenchmarkBackupRestore backs up and restores an events stream of
// MAILLAGE_BACKUP_EVENTS events (default 100,000: 10,000 cases of 10,
// written unsynced to load quickly), and reports the time of each and the
// file's size.
//
//	MAILLAGE_BACKUP_EVENTS=1000000 go test -run '^$' -bench BackupRestore -benchtime 1x ./adapters/jetstream/backup/
func BenchmarkBackupRestore(b *testing.B) {
	ctx := context.Background()
	total := 100_000
	if v, err := strconv.Atoi(os.Getenv("MAILLAGE_BACKUP_EVENTS")); err == nil && v > 0 {
		total = v
	}
	dir := b.TempDir()
	s, err := jetstream.Open(ctx, jetstream.WithEmbedded(filepath.Join(dir, "jetstream")), jetstream.WithLogger(quiet), jetstream.WithUnsyncedWrites())
	if err != nil {
		b.Fatal(err)
	}
	for range total / 10 {
		c := storetest.NewCase()
		if _, err := s.Append(ctx, 0, c.Next(10)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		file := filepath.Join(dir, "b"+strconv.Itoa(i))
		f, err := os.Create(file)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		sum, err := backup.Backup(ctx, s.Conn(), f)
		if err != nil {
			b.Fatal(err)
		}
		f.Sync()
		f.Close()
		took := time.Since(start)
		info, _ := os.Stat(file)
		target := filepath.Join(dir, "r"+strconv.Itoa(i))
		start = time.Now()
		srv, err := backup.StartEmbeddedForRestore(filepath.Join(target, "jetstream"))
		if err != nil {
			b.Fatal(err)
		}
		in, _ := os.Open(file)
		if _, err := backup.Restore(ctx, srv.Conn(), in, target, nil); err != nil {
			b.Fatal(err)
		}
		in.Close()
		srv.Close()
		restored := time.Since(start)
		b.ReportMetric(took.Seconds(), "backup-s")
		b.ReportMetric(restored.Seconds(), "restore-s")
		b.ReportMetric(float64(info.Size())/(1<<20), "file-MiB")
		b.ReportMetric(float64(sum.Streams[len(sum.Streams)-1].Messages), "messages")
	}
	b.StopTimer()
	s.Close()
}
