package backup_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/adapters/jetstream/backup"
	"github.com/maillage/maillage/adapters/jetstream/casekeys"
	"github.com/maillage/maillage/adapters/jetstream/checkpoints"
	"github.com/maillage/maillage/adapters/storetest"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/personal"
)

var quiet = slog.New(slog.DiscardHandler)

// env is a store with everything a server keeps on NATS: events, keys,
// signed heads, access log and seals.
type env struct {
	store  *jetstream.Store
	keys   *casekeys.Keys
	heads  *checkpoints.Heads
	access *accesslog.Log
}

func open(t *testing.T, dir string) *env {
	t.Helper()
	ctx := context.Background()
	s, err := jetstream.Open(ctx, jetstream.WithEmbedded(filepath.Join(dir, "jetstream")), jetstream.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: s}
	t.Cleanup(func() { e.close(t) })
	if e.keys, err = casekeys.Open(ctx, s.JetStream(), casekeys.WithLogger(quiet)); err != nil {
		t.Fatal(err)
	}
	if e.heads, err = checkpoints.OpenHeads(ctx, s.JetStream()); err != nil {
		t.Fatal(err)
	}
	if e.access, err = accesslog.Open(ctx, s.JetStream(), accesslog.WithLogger(quiet)); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) close(t *testing.T) {
	if e.store == nil {
		return
	}
	e.keys.Close()
	if err := e.store.Close(); err != nil {
		t.Error(err)
	}
	e.store = nil
}

// write appends n events to c, with its key, an access record and a
// signed head of its new version.
func (e *env) write(t testing.TB, c *storetest.Case, n int, key ed25519.PrivateKey) {
	ctx := context.Background()
	if _, err := e.keys.Key(ctx, c.ID, true); err != nil {
		t.Error(err)
		return
	}
	events := c.Next(n)
	if _, err := e.store.Append(ctx, c.Version, events); err != nil {
		t.Error(err)
		return
	}
	c.Commit(events)
	if err := e.access.Record(ctx, domain.AccessRecord{Kind: domain.AccessTimeline, CaseID: c.ID, FromSequence: 1, ToSequence: c.Version,
		Role: domain.RoleProfessional, Institution: "mecs-35", Purpose: "synthèse"}); err != nil {
		t.Error(err)
	}
	if err := e.heads.Publish(ctx, audit.Sign(key, audit.SignedHead{CaseID: c.ID, Version: c.Version, ChainHash: c.Head, SignedAt: time.Now()})); err != nil {
		t.Error(err)
	}
}

func backupTo(t *testing.T, e *env, path string, opts ...backup.Option) backup.Summary {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := backup.Backup(context.Background(), e.store.Conn(), f, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func read(t *testing.T, path string) backup.Contents {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := backup.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func restore(t *testing.T, path, dir string, erasures map[domain.CaseID]personal.Erasure) backup.Report {
	t.Helper()
	srv, err := backup.StartEmbeddedForRestore(filepath.Join(dir, "jetstream"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := backup.Restore(context.Background(), srv.Conn(), f, dir, erasures)
	if cerr := srv.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Given a store being written to, when it is backed up, a case erased
// afterwards and the backup restored with the erasures exported after
// it, then the restored store holds every event acknowledged before the
// backup started, every chain verifies and goes through its signed heads,
// the access log verifies against its seals, and the case erased after the
// backup is erased.
func TestBackupUnderWritesRestoresAConsistentStoreWithLaterErasures(t *testing.T) {
	ctx := context.Background()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	src := open(t, t.TempDir())
	cases := make([]*storetest.Case, 12)
	for i := range cases {
		cases[i] = storetest.NewCase()
		for range 5 {
			src.write(t, cases[i], 3, key)
		}
	}
	if _, err := src.access.Seal(ctx, key); err != nil {
		t.Fatal(err)
	}
	acked := map[domain.CaseID]uint64{}
	for _, c := range cases {
		acked[c.ID] = c.Version
	}

	// Writers go on during the backup, each on cases of its own.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := []*storetest.Case{storetest.NewCase(), cases[w]}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				src.write(t, mine[i%2], 2, key)
				if i%5 == 0 {
					src.access.Seal(ctx, key)
				}
			}
		}()
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "store.mbk")
	os.WriteFile(filepath.Join(dir, "directory.json"), []byte(`{"institutions":[]}`), 0o600)
	sum := backupTo(t, src, file, backup.WithFiles(dir, "directory.json", "signing.key"))
	close(stop)
	wg.Wait()
	t.Logf("backup: %+v", sum)
	if len(sum.Streams) != 5 || sum.Keys < len(cases) || sum.Erasures != 0 || len(sum.Files) != 1 {
		t.Fatalf("summary %+v", sum)
	}

	// A case erased after the backup.
	erased := cases[5]
	rec := personal.Erasure{At: time.Now().UTC(), Name: "DPO", Role: domain.RoleAuditor, Reason: "fin de conservation"}
	if _, err := src.keys.Erase(ctx, erased.ID, rec); err != nil {
		t.Fatal(err)
	}
	erasuresFile := filepath.Join(dir, "erasures.mbk")
	esum := backupTo(t, src, erasuresFile, backup.WithErasuresOnly())
	if esum.Erasures != 1 || esum.Keys != 0 || len(esum.Streams) != 0 {
		t.Fatalf("erasures summary %+v", esum)
	}
	later := read(t, erasuresFile)
	if later.Header.Kind != backup.KindErasures || !later.Summary.KeysFrom.After(read(t, file).Summary.KeysUntil) || len(later.Erasures) != 1 {
		t.Fatalf("erasure list %+v", later)
	}
	if b, _ := os.ReadFile(erasuresFile); bytes.Contains(b, []byte(`"key"`)) {
		t.Error("the erasure list holds keys")
	}
	wantKey, err := src.keys.Key(ctx, cases[0].ID, false)
	if err != nil {
		t.Fatal(err)
	}
	src.close(t)

	target := filepath.Join(t.TempDir(), "restored")
	rep := restore(t, file, target, later.Erasures)
	if rep.Later != 1 || rep.Erased != 1 || len(rep.Files) != 1 {
		t.Errorf("report %+v", rep)
	}
	if b, err := os.ReadFile(filepath.Join(target, "directory.json")); err != nil || string(b) != `{"institutions":[]}` {
		t.Errorf("directory.json: %q %v", b, err)
	}

	dst := open(t, target)
	// Every event acknowledged before the backup, and every chain whole
	// through its signed heads.
	heads, err := dst.heads.All(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range heads {
		if err := h.Verify(pub); err != nil {
			t.Fatal(err)
		}
	}
	v := audit.NewVerifier(heads)
	versions := map[domain.CaseID]uint64{}
	for e, err := range dst.store.ReadAll(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		v.Add(e)
		versions[e.CaseID] = e.Sequence
	}
	if rep := v.Finish(); !rep.OK() || rep.SignedHeads != len(heads) {
		t.Fatalf("restored chains: %+v (%d heads)", rep, len(heads))
	}
	for id, n := range acked {
		if versions[id] < n {
			t.Errorf("case %s at version %d, %d were acknowledged before the backup", id, versions[id], n)
		}
	}
	// The access log and its seals.
	arep, err := dst.access.VerifySeals(ctx, audit.Keys{pub}, nil)
	if err != nil || !arep.OK() || arep.Verified == 0 {
		t.Fatalf("access log: %+v %v", arep, err)
	}
	// Keys: kept, but the one erased after the backup.
	if got, err := dst.keys.Key(ctx, cases[0].ID, false); err != nil || !bytes.Equal(got, wantKey) {
		t.Errorf("key of a live case: %v", err)
	}
	if _, err := dst.keys.Key(ctx, erased.ID, false); !errors.Is(err, personal.ErrErased) {
		t.Errorf("the case erased after the backup reads %v, want erased", err)
	}
	if got, ok, err := dst.keys.Erasure(ctx, erased.ID); err != nil || !ok || got.Reason != rec.Reason {
		t.Errorf("its erasure record: %+v %v %v", got, ok, err)
	}
	dst.close(t)
	if files := holding(t, target, wantKeyOf(t, file, erased.ID)); len(files) > 0 {
		t.Errorf("the erased case's key is on disk in %v", files)
	}
}

// wantKeyOf returns the raw entry the backup holds for a case.
func wantKeyOf(t *testing.T, file string, id domain.CaseID) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"case":"`+id.String()+`","value":{"key":"`))
	if i < 0 {
		t.Fatal("the backup does not hold the case's key")
	}
	rest := b[i+len(`"case":"`+id.String()+`","value":{"key":"`):]
	return rest[:bytes.IndexByte(rest, '"')]
}

func holding(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, _ := os.ReadFile(path); bytes.Contains(b, needle) {
			found = append(found, path)
		}
		return nil
	})
	return found
}

// Given a backup file, when a byte is changed or it is cut short, then
// Read says it is damaged, and an erasure list is not taken for a backup.
func TestDamagedOrPartialFilesAreRefused(t *testing.T) {
	src := open(t, t.TempDir())
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	src.write(t, storetest.NewCase(), 3, key)
	dir := t.TempDir()
	file := filepath.Join(dir, "b.mbk")
	backupTo(t, src, file)
	good, _ := os.ReadFile(file)
	for name, b := range map[string][]byte{
		"flipped": append(append(append([]byte(nil), good[:len(good)/2]...), good[len(good)/2]^1), good[len(good)/2+1:]...),
		"cut":     good[:len(good)-40],
		"empty":   nil,
		"longer":  append(append([]byte(nil), good...), 'x'),
	} {
		if _, err := backup.Read(bytes.NewReader(b)); !errors.Is(err, backup.ErrDamaged) {
			t.Errorf("%s: %v", name, err)
		}
	}
	list := filepath.Join(dir, "e.mbk")
	backupTo(t, src, list, backup.WithErasuresOnly())
	f, _ := os.Open(list)
	defer f.Close()
	target := t.TempDir()
	srv, err := backup.StartEmbeddedForRestore(filepath.Join(target, "jetstream"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := backup.Restore(context.Background(), srv.Conn(), f, target, nil); err == nil || !strings.Contains(err.Error(), "erasures only") {
		t.Errorf("restoring an erasure list: %v", err)
	}
	if err := backup.CheckEmpty(target); !errors.Is(err, backup.ErrNotEmpty) {
		t.Errorf("CheckEmpty: %v", err)
	}
	if err := backup.CheckEmpty(filepath.Join(target, "nope")); err != nil {
		t.Errorf("CheckEmpty of a missing directory: %v", err)
	}
	_ = uuid.Nil
}
