package jetstream

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/maillage/maillage/adapters/storetest"
)

// TestReadAllEndsWithoutAMessageTheServerDrops: a byte flipped in the last
// message makes the server drop it (its checksum fails) while the stream
// still counts it; ReadAll, which the read models and the head signer catch
// up with, ends with the messages it can read rather than wait for it.
func TestReadAllEndsWithoutAMessageTheServerDrops(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(t.Context(), WithEmbedded(dir), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	c := storetest.NewCase()
	for range 5 {
		events := c.Next(1)
		if _, err := s.Append(t.Context(), c.Version, events); err != nil {
			t.Fatal(err)
		}
		c.Commit(events)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	blocks, _ := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", DefaultStreamName, "msgs", "*.blk"))
	if len(blocks) == 0 {
		t.Fatal("no block file")
	}
	slices.Sort(blocks)
	b, err := os.ReadFile(blocks[len(blocks)-1])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-20] ^= 0x01 // in the last message's body
	if err := os.WriteFile(blocks[len(blocks)-1], b, 0o600); err != nil {
		t.Fatal(err)
	}

	s, err = Open(t.Context(), WithEmbedded(dir), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The deadline only keeps a regression from hanging the test.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	n := 0
	for _, err := range s.ReadAll(ctx, 0) {
		if err != nil {
			t.Fatalf("after %d events: %v", n, err)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("read %d events, want the 4 the server still delivers", n)
	}
}
