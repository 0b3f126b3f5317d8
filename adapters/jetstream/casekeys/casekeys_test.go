package casekeys_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/casekeys"
	"github.com/maillage/maillage/domain/personal"
)

func mustStore(t *testing.T, dir string) *jetstream.Store {
	t.Helper()
	s, err := jetstream.Open(context.Background(), jetstream.WithEmbedded(dir), jetstream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustKeys(t *testing.T, s *jetstream.Store) *casekeys.Keys {
	t.Helper()
	k, err := casekeys.Open(context.Background(), s.JetStream(), casekeys.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func TestKeysAreCreatedOnceSharedAndErasedForGood(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := mustStore(t, dir)
	a, b := mustKeys(t, store), mustKeys(t, store) // two processes
	id := uuid.New()

	if _, err := a.Key(ctx, id, false); !errors.Is(err, personal.ErrNoKey) {
		t.Fatalf("no key yet: %v", err)
	}
	// Concurrent creators get one key.
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := a
			if i%2 == 1 {
				k = b
			}
			key, err := k.Key(ctx, id, true)
			if err != nil {
				t.Error(err)
			}
			got[i] = key
		}()
	}
	wg.Wait()
	for _, k := range got[1:] {
		if !bytes.Equal(k, got[0]) || len(k) != personal.KeySize {
			t.Fatalf("creators got different keys")
		}
	}
	key := got[0]

	rec, err := a.Erase(ctx, id, personal.Erasure{At: time.Now().UTC(), Role: "auditor", Name: "DPD", Reason: "fin de conservation"})
	if err != nil || rec.CaseID != id {
		t.Fatalf("erase: %+v %v", rec, err)
	}
	if _, err := a.Key(ctx, id, true); !errors.Is(err, personal.ErrErased) {
		t.Fatalf("key after erasure: %v", err)
	}
	// The other process learns it from its watcher.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := b.Key(ctx, id, false)
		if errors.Is(err, personal.ErrErased) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other process still reads the key: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	again, err := b.Erase(ctx, id, personal.Erasure{Reason: "deuxième"})
	if err != nil || again.Reason != "fin de conservation" {
		t.Fatalf("second erasure: %+v %v, want the first record", again, err)
	}
	if e, ok, err := b.Erasure(ctx, id); err != nil || !ok || e.Name != "DPD" {
		t.Fatalf("erasure record: %+v %v %v", e, ok, err)
	}
	// A case without a key is erased too: nothing can be recorded on it.
	bare := uuid.New()
	if _, err := a.Erase(ctx, bare, personal.Erasure{Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Key(ctx, bare, true); !errors.Is(err, personal.ErrErased) {
		t.Fatalf("key of an erased case without key: %v", err)
	}

	// The key's bytes are gone from the server's files.
	a.Close()
	b.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, enc := range [][]byte{key, []byte(b64(key))} {
			if bytes.Contains(b, enc) {
				t.Errorf("the destroyed key is still in %s", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// And after a restart the case is still erased.
	store = mustStore(t, dir)
	defer store.Close()
	c := mustKeys(t, store)
	if _, err := c.Key(ctx, id, true); !errors.Is(err, personal.ErrErased) {
		t.Fatalf("after restart: %v", err)
	}
}
