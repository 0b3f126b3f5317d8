package projections

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/maillage/maillage/domain"
)

// The snapshot is two files: a base, written whole now and then, and a
// delta file next to it (the base's path + ".delta"), to which each
// checkpoint appends one segment holding what changed since the last one.
//
// The base:
//
//	magic          "maillage-projections\n"
//	version        byte (snapshotVersion)
//	id             16 random bytes: the segments of the delta file name it
//	position       uvarint: every event up to it is in the logs
//	anchor         case id (16 bytes), sequence (uvarint), chain hash (32 bytes) of the event at position
//	cases          uvarint, then per case: id (16 bytes), events (uvarint), log (bytes), summary (bytes)
//	checksum       SHA-256 of everything before it
//
// A segment of the delta file:
//
//	length         8 bytes, big endian: of the body
//	body           magic "maillage-projections-delta\n", version byte, the base's id, segment number
//	               (uvarint, from 1), position and anchor (as the base), cases (uvarint), then per
//	               case changed: id, events before (uvarint), events added (uvarint), the log's new
//	               bytes (bytes), summary (bytes)
//	checksum       SHA-256 of the body
//
// where bytes are a uvarint length then the bytes. A case's log may hold
// events after the position (a read brought the case up to date ahead of
// the runner): following from the position skips them. The summary (see
// summary.go) restores the reads across cases without folding any case; a
// case's access state is folded from its log when it is first read.
//
// Loading checks the base's checksum, then each segment's, its base id, its
// number and that it continues each case's log where the previous ones left
// it. A base that fails is not used (the read models are built from the
// store); a segment that fails ends the delta file there: the segments
// before it are used, the store is read from their position, and the next
// checkpoint overwrites the damaged tail. Then the checkpoint's event must
// be in the store, at that position and with that chain hash, or nothing is
// used: a snapshot of another store, or ahead of what the store holds (a
// lost tail), is never served.
const (
	snapshotMagic   = "maillage-projections\n"
	deltaMagic      = "maillage-projections-delta\n"
	snapshotVersion = 2
	deltaSuffix     = ".delta"
	// compactAt: a checkpoint writes a new base instead of a segment once
	// the delta file is larger than this or than half the base.
	compactAt = 64 << 20
	// maxSegment bounds a segment read from the file.
	maxSegment = 1 << 31
)

var errNoSnapshot = errors.New("no snapshot")

// snapshotFiles is what the runner knows of its snapshot files; saveMu
// guards it.
type snapshotFiles struct {
	base     [16]byte // the base's id; zero: no base written or loaded
	baseSize int64
	segments uint64 // segments in the delta file after the base
	deltaLen int64  // bytes of those segments (anything after is a torn write)
}

// pending is one case's part of a checkpoint: what is written, and the
// case's saved marks once it is durable.
type pending struct {
	c             *caseModel
	saved, savedN int
}

// SaveSnapshot writes the whole read models and their checkpoint as a new
// base, atomically (temporary file, fsync, rename), and empties the delta
// file.
func (r *Runner) SaveSnapshot() error {
	if r.snapshotPath == "" {
		return errors.New("projections: no snapshot file configured (WithSnapshot)")
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	return r.saveBaseLocked()
}

// checkpoint appends what changed since the last checkpoint to the delta
// file (fsync), or writes a new base when there is none yet or the delta
// file has grown past compactAt.
func (r *Runner) checkpoint() error {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	if r.snap.base == ([16]byte{}) || r.snap.deltaLen > max(compactAt, r.snap.baseSize/2) {
		return r.saveBaseLocked()
	}
	r.mu.Lock()
	pos, anc, moved := r.pos, r.anchor, r.pos != r.savedPos
	r.mu.Unlock()
	m := r.m()
	dirty := m.takeDirty()
	if !moved && len(dirty) == 0 {
		return nil
	}
	// The checkpoint is taken before the logs: each log copied after it
	// holds at least every event of its case up to it.
	body := append([]byte(nil), deltaMagic...)
	body = append(body, snapshotVersion)
	body = append(body, r.snap.base[:]...)
	body = binary.AppendUvarint(body, r.snap.segments+1)
	body = appendCheckpoint(body, pos, anc)
	var cases []pending
	var chunks [][]byte
	for _, c := range dirty {
		c.mu.Lock()
		if len(c.log.b) > c.saved {
			cases = append(cases, pending{c: c, saved: len(c.log.b), savedN: c.log.n})
			chunk := append([]byte(nil), c.id[:]...)
			chunk = binary.AppendUvarint(chunk, uint64(c.savedN))
			chunk = binary.AppendUvarint(chunk, uint64(c.log.n-c.savedN))
			chunk = appendBytes(chunk, c.log.b[c.saved:])
			chunk = appendBytes(chunk, appendSummary(nil, &c.facts, c.active))
			chunks = append(chunks, chunk)
		}
		c.mu.Unlock()
	}
	body = binary.AppendUvarint(body, uint64(len(chunks)))
	for _, ch := range chunks {
		body = append(body, ch...)
	}
	seg := binary.BigEndian.AppendUint64(nil, uint64(len(body)))
	seg = append(seg, body...)
	sum := sha256.Sum256(body)
	seg = append(seg, sum[:]...)
	if err := r.appendSegment(seg); err != nil {
		m.putDirty(dirty)
		return fmt.Errorf("projections: snapshot checkpoint: %w", err)
	}
	r.snap.segments++
	r.snap.deltaLen += int64(len(seg))
	for _, p := range cases {
		p.c.mu.Lock()
		p.c.saved, p.c.savedN = p.saved, p.savedN
		p.c.mu.Unlock()
	}
	r.mu.Lock()
	r.savedPos = pos
	r.mu.Unlock()
	return nil
}

// appendSegment writes a segment at the end of the good part of the delta
// file (over a torn write, if any), durably.
func (r *Runner) appendSegment(seg []byte) error {
	f, err := os.OpenFile(r.snapshotPath+deltaSuffix, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(r.snap.deltaLen); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteAt(seg, r.snap.deltaLen); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func appendCheckpoint(b []byte, pos domain.Position, anc anchor) []byte {
	b = binary.AppendUvarint(b, uint64(pos))
	b = append(b, anc.caseID[:]...)
	b = binary.AppendUvarint(b, anc.sequence)
	return append(b, anc.chain[:]...)
}

// saveBaseLocked writes a new base; the caller holds saveMu.
func (r *Runner) saveBaseLocked() error {
	start := time.Now()
	r.mu.Lock()
	pos, anc := r.pos, r.anchor
	r.mu.Unlock()
	m := r.m()
	dirty := m.takeDirty()
	cases, id, size, err := r.writeBase(m, pos, anc)
	if err != nil {
		m.putDirty(dirty)
		return fmt.Errorf("projections: snapshot: %w", err)
	}
	for _, p := range cases {
		p.c.mu.Lock()
		p.c.saved, p.c.savedN = p.saved, p.savedN
		p.c.mu.Unlock()
	}
	r.snap = snapshotFiles{base: id, baseSize: size}
	// The segments of the previous base are of no use now (and would be
	// refused: they name it).
	if err := os.Truncate(r.snapshotPath+deltaSuffix, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.log.Warn("projections: emptying the snapshot's delta file failed", "err", err)
	}
	r.mu.Lock()
	r.savedPos = pos
	r.mu.Unlock()
	r.log.Info("projections: snapshot written", "position", pos, "cases", len(cases), "bytes", size, "took", time.Since(start))
	return nil
}

func (r *Runner) writeBase(m *models, pos domain.Position, anc anchor) ([]pending, [16]byte, int64, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, id, 0, err
	}
	dir := filepath.Dir(r.snapshotPath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, id, 0, err
	}
	tmp, err := os.CreateTemp(dir, ".projections-*")
	if err != nil {
		return nil, id, 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(tmp, sum)}
	w := bufio.NewWriterSize(cw, 1<<20)
	head := append([]byte(nil), snapshotMagic...)
	head = append(head, snapshotVersion)
	head = append(head, id[:]...)
	head = appendCheckpoint(head, pos, anc)
	ids := m.caseIDs()
	head = binary.AppendUvarint(head, uint64(len(ids)))
	if _, err := w.Write(head); err != nil {
		return nil, id, 0, err
	}
	cases := make([]pending, 0, len(ids))
	var buf, summary []byte
	for _, cid := range ids {
		c := m.get(cid)
		c.mu.Lock()
		log := c.log // bytes once written never change: safe to write unlocked
		summary = appendSummary(summary[:0], &c.facts, c.active)
		c.mu.Unlock()
		cases = append(cases, pending{c: c, saved: len(log.b), savedN: log.n})
		buf = append(buf[:0], cid[:]...)
		buf = binary.AppendUvarint(buf, uint64(log.n))
		buf = binary.AppendUvarint(buf, uint64(len(log.b)))
		if _, err := w.Write(buf); err != nil {
			return nil, id, 0, err
		}
		if _, err := w.Write(log.b); err != nil {
			return nil, id, 0, err
		}
		if _, err := w.Write(appendBytes(buf[:0], summary)); err != nil {
			return nil, id, 0, err
		}
	}
	if err := w.Flush(); err != nil {
		return nil, id, 0, err
	}
	if _, err := tmp.Write(sum.Sum(nil)); err != nil {
		return nil, id, 0, err
	}
	if err := tmp.Chmod(0o600); err != nil {
		return nil, id, 0, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, id, 0, err
	}
	if err := tmp.Close(); err != nil {
		return nil, id, 0, err
	}
	if err := os.Rename(tmp.Name(), r.snapshotPath); err != nil {
		return nil, id, 0, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable
		d.Close()
	}
	return cases, id, cw.n + sha256.Size, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
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
			if err := r.checkpoint(); err != nil {
				r.log.Error("projections: writing the snapshot failed", "err", err)
			}
		}
	}
}

// loadSnapshot reads the snapshot files into fresh models and checks that
// its checkpoint's event is in the store (see the format above).
// errNoSnapshot when there is no base.
func (r *Runner) loadSnapshot(ctx context.Context) error {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	m, base, err := readBase(r.snapshotPath, r.open)
	if err != nil {
		return err
	}
	files := snapshotFiles{base: base.id, baseSize: base.size}
	pos, anc := base.pos, base.anchor
	d, err := readDelta(r.snapshotPath+deltaSuffix, base, m)
	if err != nil {
		r.log.Warn("projections: the snapshot's delta file is damaged from there: its segments before are used, the rest is read from the store",
			"segments", d.segments, "offset", d.length, "err", err)
	}
	if d.segments > 0 {
		pos, anc = d.pos, d.anchor
	}
	files.segments, files.deltaLen = d.segments, d.length
	if pos > 0 {
		events, err := r.src.ReadCase(ctx, anc.caseID, anc.sequence-1)
		if err != nil {
			return fmt.Errorf("checking the snapshot against the store: %w", err)
		}
		if len(events) == 0 || events[0].Sequence != anc.sequence || events[0].ChainHash != anc.chain {
			return fmt.Errorf("snapshot %s was made from another store, or from events this store lost: its checkpoint's event (case %s, sequence %d) is not there",
				r.snapshotPath, anc.caseID, anc.sequence)
		}
		if events[0].Position != pos {
			return fmt.Errorf("snapshot %s does not match the store: its checkpoint's event (case %s, sequence %d) is at position %d in the store, %d in the snapshot",
				r.snapshotPath, anc.caseID, anc.sequence, events[0].Position, pos)
		}
	}
	r.models.Store(m)
	r.snap = files
	r.mu.Lock()
	r.pos, r.anchor, r.savedPos = pos, anc, pos
	r.mu.Unlock()
	return nil
}

// baseInfo is what the base's header says.
type baseInfo struct {
	id     [16]byte
	pos    domain.Position
	anchor anchor
	size   int64
}

// readBase reads and checks the base into cold models.
func readBase(path string, open opener) (*models, baseInfo, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, baseInfo{}, errNoSnapshot
	}
	if err != nil {
		return nil, baseInfo{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, baseInfo{}, err
	}
	if fi.Size() < int64(len(snapshotMagic))+sha256.Size {
		return nil, baseInfo{}, fmt.Errorf("snapshot %s: too short", path)
	}
	sum := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(io.LimitReader(f, fi.Size()-sha256.Size), sum), 1<<20)
	m, info, err := readBaseBody(br, open)
	if err != nil {
		return nil, baseInfo{}, fmt.Errorf("snapshot %s: %w", path, err)
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return nil, baseInfo{}, fmt.Errorf("snapshot %s: checksum: %w", path, err)
	}
	if !bytes.Equal(want, sum.Sum(nil)) {
		return nil, baseInfo{}, fmt.Errorf("snapshot %s: checksum mismatch (truncated or damaged)", path)
	}
	info.size = fi.Size()
	return m, info, nil
}

func readCheckpoint(br io.ByteReader, rd io.Reader) (domain.Position, anchor, error) {
	var anc anchor
	pos, err := binary.ReadUvarint(br)
	if err == nil {
		_, err = io.ReadFull(rd, anc.caseID[:])
	}
	if err == nil {
		anc.sequence, err = binary.ReadUvarint(br)
	}
	if err == nil {
		_, err = io.ReadFull(rd, anc.chain[:])
	}
	return domain.Position(pos), anc, err
}

// readBytes reads a uvarint length then that many bytes (at most limit).
func readBytes(br *bufio.Reader, limit uint64) ([]byte, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%d bytes", n)
	}
	b := make([]byte, n)
	_, err = io.ReadFull(br, b)
	return b, err
}

// readBaseBody decodes the base before its checksum, which the caller
// checks once it is read.
func readBaseBody(br *bufio.Reader, open opener) (*models, baseInfo, error) {
	var info baseInfo
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return nil, info, errors.New("not a read models snapshot")
	}
	version, err := br.ReadByte()
	if err != nil {
		return nil, info, err
	}
	if version != snapshotVersion {
		return nil, info, fmt.Errorf("snapshot format %d, this version reads %d", version, snapshotVersion)
	}
	if _, err := io.ReadFull(br, info.id[:]); err != nil {
		return nil, info, fmt.Errorf("header: %w", err)
	}
	info.pos, info.anchor, err = readCheckpoint(br, br)
	var n uint64
	if err == nil {
		n, err = binary.ReadUvarint(br)
	}
	if err != nil {
		return nil, info, fmt.Errorf("header: %w", err)
	}
	m := newModels(open)
	for i := range n {
		var id domain.CaseID
		var events uint64
		var log, summary []byte
		_, err := io.ReadFull(br, id[:])
		if err == nil {
			events, err = binary.ReadUvarint(br)
		}
		if err == nil {
			log, err = readBytes(br, maxSegment)
		}
		if err == nil {
			summary, err = readBytes(br, maxSegment)
		}
		var f caseFacts
		var members []domain.InstitutionID
		if err == nil {
			f, members, err = readSummary(summary, &m.zones)
		}
		if err == nil && m.cases[id] != nil {
			err = errors.New("listed twice")
		}
		if err != nil {
			return nil, info, fmt.Errorf("case %d: %w", i, err)
		}
		m.restoreCold(id, caseLog{b: log, n: int(events)}, f, members)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, info, errors.New("bytes after the last case")
	}
	return m, info, nil
}

// deltaRead is how far the delta file was read.
type deltaRead struct {
	segments uint64
	length   int64 // bytes of the good segments
	pos      domain.Position
	anchor   anchor
}

// segmentCase is one case's part of a segment.
type segmentCase struct {
	id            domain.CaseID
	before, added int
	log, summary  []byte
}

// readDelta applies the good segments of the delta file to the models
// loaded from the base. It returns how far it went, and why it stopped when
// not at the end of the file (a torn or damaged segment, or the segments of
// another base).
func readDelta(path string, base baseInfo, m *models) (deltaRead, error) {
	var d deltaRead
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	tails := map[domain.CaseID][][]byte{} // each case's new log bytes, joined at the end
	defer func() {
		for id, parts := range tails {
			c := m.cases[id]
			log := make([]byte, 0, len(c.log.b)+totalLen(parts))
			log = append(log, c.log.b...)
			for _, p := range parts {
				log = append(log, p...)
			}
			c.log.b, c.saved = log, len(log)
		}
	}()
	for {
		var length [8]byte
		if _, err := io.ReadFull(br, length[:]); err == io.EOF {
			return d, nil
		} else if err != nil {
			return d, fmt.Errorf("segment %d: length: %w", d.segments+1, err)
		}
		n := binary.BigEndian.Uint64(length[:])
		if n > maxSegment {
			return d, fmt.Errorf("segment %d: length %d", d.segments+1, n)
		}
		body := make([]byte, n+sha256.Size)
		if _, err := io.ReadFull(br, body); err != nil {
			return d, fmt.Errorf("segment %d: %w", d.segments+1, err)
		}
		body, want := body[:n], body[n:]
		if sum := sha256.Sum256(body); !bytes.Equal(sum[:], want) {
			return d, fmt.Errorf("segment %d: checksum mismatch (torn or damaged)", d.segments+1)
		}
		pos, anc, cases, err := parseSegment(body, base.id, d.segments+1)
		if errors.Is(err, errOtherBase) {
			return d, nil // left by a base since replaced: ends the file
		}
		if err != nil {
			return d, fmt.Errorf("segment %d: %w", d.segments+1, err)
		}
		// The whole segment is checked before any of it is applied.
		decoded := make([]caseFacts, len(cases))
		members := make([][]domain.InstitutionID, len(cases))
		seen := make(map[domain.CaseID]bool, len(cases))
		for i, sc := range cases {
			if seen[sc.id] {
				return d, fmt.Errorf("segment %d: case %s listed twice", d.segments+1, sc.id)
			}
			seen[sc.id] = true
			have := 0
			if c := m.cases[sc.id]; c != nil {
				have = c.log.n
			}
			if sc.before != have {
				return d, fmt.Errorf("segment %d: case %s continues its log at event %d, the snapshot holds %d", d.segments+1, sc.id, sc.before, have)
			}
			if decoded[i], members[i], err = readSummary(sc.summary, &m.zones); err != nil {
				return d, fmt.Errorf("segment %d: case %s: summary: %w", d.segments+1, sc.id, err)
			}
		}
		for i, sc := range cases {
			c := m.cases[sc.id]
			if c == nil {
				m.restoreCold(sc.id, caseLog{}, caseFacts{}, nil)
				c = m.cases[sc.id]
			}
			m.reindex(c, members[i])
			if !decoded[i].opened.IsZero() {
				m.obs.opened(decoded[i].opened)
			}
			c.facts = decoded[i]
			c.log.n += sc.added
			c.savedN = c.log.n
			m.events.Add(int64(sc.added))
			tails[sc.id] = append(tails[sc.id], sc.log)
		}
		d.segments++
		d.length += int64(len(length) + len(body) + sha256.Size)
		d.pos, d.anchor = pos, anc
	}
}

func totalLen(parts [][]byte) int {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	return n
}

var errOtherBase = errors.New("segment of another base")

// parseSegment decodes a segment's body whose checksum matched.
func parseSegment(body []byte, base [16]byte, want uint64) (domain.Position, anchor, []segmentCase, error) {
	br := bufio.NewReader(bytes.NewReader(body))
	magic := make([]byte, len(deltaMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != deltaMagic {
		return 0, anchor{}, nil, errors.New("not a snapshot segment")
	}
	if v, err := br.ReadByte(); err != nil || v != snapshotVersion {
		return 0, anchor{}, nil, fmt.Errorf("segment format %d, this version reads %d", v, snapshotVersion)
	}
	var id [16]byte
	if _, err := io.ReadFull(br, id[:]); err != nil {
		return 0, anchor{}, nil, err
	}
	if id != base {
		return 0, anchor{}, nil, errOtherBase
	}
	number, err := binary.ReadUvarint(br)
	if err != nil {
		return 0, anchor{}, nil, err
	}
	if number != want {
		return 0, anchor{}, nil, fmt.Errorf("numbered %d, want %d", number, want)
	}
	pos, anc, err := readCheckpoint(br, br)
	if err != nil {
		return 0, anchor{}, nil, err
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return 0, anchor{}, nil, err
	}
	if n > uint64(len(body)) {
		return 0, anchor{}, nil, fmt.Errorf("%d cases", n)
	}
	cases := make([]segmentCase, n)
	for i := range cases {
		sc := &cases[i]
		var before, added uint64
		_, err := io.ReadFull(br, sc.id[:])
		if err == nil {
			before, err = binary.ReadUvarint(br)
		}
		if err == nil {
			added, err = binary.ReadUvarint(br)
		}
		if err == nil {
			sc.log, err = readBytes(br, uint64(len(body)))
		}
		if err == nil {
			sc.summary, err = readBytes(br, uint64(len(body)))
		}
		if err == nil && (before > 1<<31 || added > 1<<31) {
			err = errors.New("event counts out of range")
		}
		if err != nil {
			return 0, anchor{}, nil, fmt.Errorf("case %d: %w", i, err)
		}
		sc.before, sc.added = int(before), int(added)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return 0, anchor{}, nil, errors.New("bytes after the last case")
	}
	return pos, anc, cases, nil
}
