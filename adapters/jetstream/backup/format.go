package backup

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// The file: the line "MAILLAGE-BACKUP/1", then frames, each one byte of
// kind, four of length (big-endian) and the payload; the last frame, the
// end, holds the SHA-256 of every byte before it. Nothing is compressed on
// top: the stream snapshots are already (s2), and the rest is small.
const magic = "MAILLAGE-BACKUP/1\n"

// Frame kinds.
const (
	frameHeader = 'H' // JSON Header
	frameStream = 'S' // JSON streamStart: a stream's snapshot follows
	frameChunk  = 'C' // bytes of the current stream's snapshot
	frameDone   = 'D' // JSON streamDone: the current stream's snapshot ended
	frameKey    = 'K' // JSON keyEntry: a case's entry of the keys bucket
	frameFile   = 'F' // JSON fileEntry: a file of the data directory
	frameEnd    = 'Z' // JSON Summary, with the digest of what precedes
)

// maxFrame bounds a frame: a snapshot chunk is at most 1 MiB.
const maxFrame = 4 << 20

// Kinds of files.
const (
	KindFull     = "full"     // a backup of the store
	KindErasures = "erasures" // the erasures only (Backup with ErasuresOnly)
)

// Header opens a file.
type Header struct {
	Format    int       `json:"format"`
	Kind      string    `json:"kind"`
	StartedAt time.Time `json:"startedAt"`
	Source    string    `json:"source"` // where it was read: "embedded" or "nats"
}

// Summary closes a file: what it holds, and when the keys bucket (so the
// erasures) was read. Erasures recorded after KeysFrom may be missing from
// it; every erasure recorded before KeysFrom is in it.
type Summary struct {
	Streams    []StreamSummary `json:"streams"`
	Keys       int             `json:"keys"`     // cases with a live key
	Erasures   int             `json:"erasures"` // erased cases
	Files      []string        `json:"files"`
	KeysFrom   time.Time       `json:"keysFrom"`  // the keys bucket's read started
	KeysUntil  time.Time       `json:"keysUntil"` // and ended
	FinishedAt time.Time       `json:"finishedAt"`
	SHA256     string          `json:"sha256"`
}

// StreamSummary is what a stream's snapshot holds.
type StreamSummary struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	FirstSeq uint64 `json:"firstSeq"`
	LastSeq  uint64 `json:"lastSeq"`
	Bytes    uint64 `json:"bytes"` // of the snapshot
}

type streamStart struct {
	Name   string          `json:"name"`
	Config json.RawMessage `json:"config"`
	State  json.RawMessage `json:"state"`
}

type streamDone struct {
	Name  string `json:"name"`
	Bytes uint64 `json:"bytes"`
}

type keyEntry struct {
	Case  string          `json:"case"`
	Value json.RawMessage `json:"value"`
}

type fileEntry struct {
	Name string `json:"name"` // relative to the data directory, "/" separated
	Mode uint32 `json:"mode"`
	Data []byte `json:"data"`
}

// writer writes frames, hashing them.
type writer struct {
	w    *bufio.Writer
	hash hash.Hash
	n    uint64
}

func newWriter(w io.Writer) (*writer, error) {
	fw := &writer{w: bufio.NewWriterSize(w, 1<<20), hash: sha256.New()}
	if err := fw.raw([]byte(magic)); err != nil {
		return nil, err
	}
	return fw, nil
}

func (w *writer) raw(b []byte) error {
	w.hash.Write(b)
	w.n += uint64(len(b))
	_, err := w.w.Write(b)
	return err
}

func (w *writer) frame(kind byte, payload []byte) error {
	var h [5]byte
	h[0] = kind
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	if err := w.raw(h[:]); err != nil {
		return err
	}
	return w.raw(payload)
}

func (w *writer) json(kind byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.frame(kind, b)
}

// end writes the summary with the digest, and flushes.
func (w *writer) end(s *Summary) error {
	s.SHA256 = hex.EncodeToString(w.hash.Sum(nil))
	if err := w.json(frameEnd, *s); err != nil {
		return err
	}
	return w.w.Flush()
}

// ErrDamaged: the file is not a whole backup (cut short, altered, or not a
// backup at all).
var ErrDamaged = errors.New("backup: damaged or incomplete file")

// reader reads frames, hashing them, and checks the digest at the end.
type reader struct {
	r    *bufio.Reader
	hash hash.Hash
	buf  []byte
	read uint64
}

func newReader(r io.Reader) (*reader, error) {
	fr := &reader{r: bufio.NewReaderSize(r, 1<<20), hash: sha256.New()}
	m := make([]byte, len(magic))
	if _, err := io.ReadFull(fr.r, m); err != nil || string(m) != magic {
		return nil, fmt.Errorf("%w: not a maillage backup", ErrDamaged)
	}
	fr.hash.Write(m)
	fr.read = uint64(len(m))
	return fr, nil
}

// next returns the next frame; its payload is valid until the next call.
// The end frame's digest is checked here.
func (r *reader) next() (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: cut short after %d bytes", ErrDamaged, r.read)
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes at byte %d", ErrDamaged, n, r.read)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return 0, nil, fmt.Errorf("%w: cut short after %d bytes", ErrDamaged, r.read)
	}
	if h[0] == frameEnd {
		var s Summary
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, nil, fmt.Errorf("%w: unreadable end", ErrDamaged)
		}
		if got := hex.EncodeToString(r.hash.Sum(nil)); got != s.SHA256 {
			return 0, nil, fmt.Errorf("%w: digest %s, the file says %s", ErrDamaged, got, s.SHA256)
		}
	}
	r.hash.Write(h[:])
	r.hash.Write(b)
	r.read += 5 + uint64(n)
	return h[0], b, nil
}
