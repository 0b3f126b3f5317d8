package projections

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/maillage/maillage/domain"
)

// The snapshot file: the read models' case logs and their checkpoint.
//
//	magic          "maillage-projections\n"
//	version        byte (snapshotVersion)
//	position       uvarint: every event up to it is in the logs
//	anchor         case id (16 bytes), sequence (uvarint), chain hash (32 bytes) of the event at position
//	cases          uvarint, then per case: id (16 bytes), events (uvarint), log (uvarint length, bytes)
//	checksum       SHA-256 of everything before it
//
// A case's log may hold events after the position (a read brought the case
// up to date ahead of the runner): following from the position skips them.
// The access states, the membership index and the observatory facts are
// folded again from the logs when the snapshot is loaded, so the file does
// not depend on how they are held in memory.
const (
	snapshotMagic   = "maillage-projections\n"
	snapshotVersion = 1
)

var errNoSnapshot = errors.New("no snapshot")

// SaveSnapshot writes the read models and their checkpoint to the snapshot
// file, atomically (temporary file, fsync, rename).
func (r *Runner) SaveSnapshot() error {
	if r.snapshotPath == "" {
		return errors.New("projections: no snapshot file configured (WithSnapshot)")
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	start := time.Now()
	// The checkpoint is taken before the logs: each log copied after it
	// holds at least every event of its case up to it.
	r.mu.Lock()
	pos, anc := r.pos, r.anchor
	r.mu.Unlock()
	m := r.m()
	dir := filepath.Dir(r.snapshotPath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".projections-*")
	if err != nil {
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	defer os.Remove(tmp.Name())
	sum := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(tmp, sum), 1<<20)
	var head []byte
	head = append(head, snapshotMagic...)
	head = append(head, snapshotVersion)
	head = binary.AppendUvarint(head, uint64(pos))
	head = append(head, anc.caseID[:]...)
	head = binary.AppendUvarint(head, anc.sequence)
	head = append(head, anc.chain[:]...)
	ids := m.caseIDs()
	head = binary.AppendUvarint(head, uint64(len(ids)))
	if _, err := w.Write(head); err != nil {
		tmp.Close()
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	var buf []byte
	for _, id := range ids {
		c := m.get(id)
		c.mu.Lock()
		log := c.log // bytes once written never change: safe to write unlocked
		c.mu.Unlock()
		buf = append(buf[:0], id[:]...)
		buf = binary.AppendUvarint(buf, uint64(log.n))
		buf = binary.AppendUvarint(buf, uint64(len(log.b)))
		if _, err := w.Write(buf); err != nil {
			tmp.Close()
			return fmt.Errorf("projections: snapshot: %w", err)
		}
		if _, err := w.Write(log.b); err != nil {
			tmp.Close()
			return fmt.Errorf("projections: snapshot: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	if _, err := tmp.Write(sum.Sum(nil)); err != nil {
		tmp.Close()
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), r.snapshotPath); err != nil {
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	r.mu.Lock()
	r.savedPos = pos
	r.mu.Unlock()
	r.log.Info("projections: snapshot written", "position", pos, "cases", len(ids), "took", time.Since(start))
	return nil
}

func (r *Runner) snapshotLoop(ctx context.Context) {
	defer r.wg.Done()
	t := time.NewTicker(r.snapshotEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.mu.Lock()
			moved := r.pos != r.savedPos
			r.mu.Unlock()
			if moved {
				if err := r.SaveSnapshot(); err != nil {
					r.log.Error("projections: writing the snapshot failed", "err", err)
				}
			}
		}
	}
}

// loadSnapshot reads the snapshot file into fresh models and checks that
// its checkpoint's event is in the store, so a snapshot of another store (a
// data directory emptied or replaced) is never used. errNoSnapshot when
// there is no file.
func (r *Runner) loadSnapshot(ctx context.Context) error {
	f, err := os.Open(r.snapshotPath)
	if errors.Is(err, os.ErrNotExist) {
		return errNoSnapshot
	}
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.Size() < int64(len(snapshotMagic))+sha256.Size {
		return errors.New("snapshot too short")
	}
	sum := sha256.New()
	body := io.TeeReader(io.LimitReader(f, info.Size()-sha256.Size), sum)
	m, pos, anc, err := readSnapshot(bufio.NewReaderSize(body, 1<<20), r.open)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", r.snapshotPath, err)
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return fmt.Errorf("snapshot %s: checksum: %w", r.snapshotPath, err)
	}
	if !bytes.Equal(want, sum.Sum(nil)) {
		return fmt.Errorf("snapshot %s: checksum mismatch (truncated or damaged)", r.snapshotPath)
	}
	if pos > 0 {
		events, err := r.src.ReadCase(ctx, anc.caseID, anc.sequence-1)
		if err != nil {
			return fmt.Errorf("checking the snapshot against the store: %w", err)
		}
		if len(events) == 0 || events[0].Sequence != anc.sequence || events[0].ChainHash != anc.chain {
			return fmt.Errorf("snapshot %s was made from another store: its checkpoint's event (case %s, sequence %d) is not there",
				r.snapshotPath, anc.caseID, anc.sequence)
		}
	}
	r.models.Store(m)
	r.mu.Lock()
	r.pos, r.anchor, r.savedPos = pos, anc, pos
	r.mu.Unlock()
	return nil
}

// readSnapshot decodes the snapshot's body (everything before the checksum,
// which the caller checks once the body is read).
func readSnapshot(br *bufio.Reader, open opener) (*models, domain.Position, anchor, error) {
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return nil, 0, anchor{}, errors.New("not a read models snapshot")
	}
	version, err := br.ReadByte()
	if err != nil {
		return nil, 0, anchor{}, err
	}
	if version != snapshotVersion {
		return nil, 0, anchor{}, fmt.Errorf("snapshot format %d, this version reads %d", version, snapshotVersion)
	}
	var anc anchor
	pos, err := binary.ReadUvarint(br)
	if err == nil {
		_, err = io.ReadFull(br, anc.caseID[:])
	}
	if err == nil {
		anc.sequence, err = binary.ReadUvarint(br)
	}
	if err == nil {
		_, err = io.ReadFull(br, anc.chain[:])
	}
	var n uint64
	if err == nil {
		n, err = binary.ReadUvarint(br)
	}
	if err != nil {
		return nil, 0, anchor{}, fmt.Errorf("header: %w", err)
	}
	// The cases are folded again in parallel while the file is read: each
	// case's fold is independent of the others'.
	m := newModels(open)
	type job struct {
		id  domain.CaseID
		log caseLog
	}
	jobs := make(chan job, 64)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for j := range jobs {
				if errs[w] == nil {
					errs[w] = m.restore(j.id, j.log)
				}
			}
		})
	}
	readErr := func() error {
		defer close(jobs)
		for i := range n {
			var id domain.CaseID
			var events, size uint64
			_, err := io.ReadFull(br, id[:])
			if err == nil {
				events, err = binary.ReadUvarint(br)
			}
			if err == nil {
				size, err = binary.ReadUvarint(br)
			}
			if err == nil && size > 1<<31 {
				err = fmt.Errorf("case log of %d bytes", size)
			}
			if err != nil {
				return fmt.Errorf("case %d: %w", i, err)
			}
			log := caseLog{b: make([]byte, size), n: int(events)}
			if _, err := io.ReadFull(br, log.b); err != nil {
				return fmt.Errorf("case %s: %w", id, err)
			}
			jobs <- job{id, log}
		}
		return nil
	}()
	wg.Wait()
	if err := errors.Join(append(errs, readErr)...); err != nil {
		return nil, 0, anchor{}, err
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, 0, anchor{}, errors.New("bytes after the last case")
	}
	return m, domain.Position(pos), anc, nil
}
