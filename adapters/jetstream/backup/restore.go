package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream/casekeys"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/personal"
)

// Contents is what Read found in a whole file, its digest checked.
type Contents struct {
	Header   Header
	Summary  Summary
	Erasures map[domain.CaseID]personal.Erasure
}

// Read reads a whole file (a backup or an erasure list), checks its digest
// and returns its header, its summary and the erasures it holds.
func Read(r io.Reader) (Contents, error) {
	fr, err := newReader(r)
	if err != nil {
		return Contents{}, err
	}
	c := Contents{Erasures: map[domain.CaseID]personal.Erasure{}}
	for i := 0; ; i++ {
		kind, b, err := fr.next()
		if err != nil {
			return Contents{}, err
		}
		switch {
		case i == 0 && kind != frameHeader:
			return Contents{}, fmt.Errorf("%w: no header", ErrDamaged)
		case kind == frameHeader:
			if err := json.Unmarshal(b, &c.Header); err != nil || c.Header.Format != 1 {
				return Contents{}, fmt.Errorf("%w: unknown header %q", ErrDamaged, b)
			}
		case kind == frameKey:
			id, rec, err := decodeKey(b)
			if err != nil {
				return Contents{}, err
			}
			if rec != nil {
				c.Erasures[id] = *rec
			}
		case kind == frameEnd:
			json.Unmarshal(b, &c.Summary) // checked by next
			if _, err := fr.r.ReadByte(); err != io.EOF {
				return Contents{}, fmt.Errorf("%w: bytes after the end", ErrDamaged)
			}
			return c, nil
		}
	}
}

func decodeKey(b []byte) (domain.CaseID, *personal.Erasure, error) {
	var k keyEntry
	if err := json.Unmarshal(b, &k); err != nil {
		return uuid.Nil, nil, fmt.Errorf("%w: key entry: %w", ErrDamaged, err)
	}
	id, err := uuid.Parse(k.Case)
	if err != nil {
		return uuid.Nil, nil, fmt.Errorf("%w: key entry of %q", ErrDamaged, k.Case)
	}
	rec, err := casekeys.DecodeEntry(k.Value)
	if err != nil {
		return uuid.Nil, nil, fmt.Errorf("%w: key entry of %s: %w", ErrDamaged, id, err)
	}
	return id, rec, nil
}

// Report is what Restore did.
type Report struct {
	Streams []StreamSummary
	Keys    int      // live keys restored
	Erased  int      // erased cases in the restored bucket
	Later   int      // of which erased after the backup (from the erasures given)
	Files   []string // files written in the data directory
}

// signingPub and signingKey are the data directory's signing key files
// (cmd/maillage, auditserve.go). Without the key, serve makes a new one and
// writes its public key over signing.pub: the former public key, which
// checks the restored signed heads, is written beside it as
// SigningPubBefore.
const (
	signingPub       = "signing.pub"
	signingKey       = "signing.key"
	SigningPubBefore = "signing.before-restore.pub"
)

// Restore restores the backup r, which Read has checked, into nc's server,
// which must hold none of its streams, and its files into dataDir; then
// it re-applies erasures: every case erased there ends erased here, with
// the record given, its key never written. Run it on a server no one
// else uses yet.
func Restore(ctx context.Context, nc *nats.Conn, r io.Reader, dataDir string, erasures map[domain.CaseID]personal.Erasure) (Report, error) {
	fr, err := newReader(r)
	if err != nil {
		return Report{}, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return Report{}, err
	}
	var (
		rep     Report
		current *streamRestore
		keys    *casekeys.Keys
		files   []fileEntry
		pending = map[domain.CaseID]personal.Erasure{}
	)
	for id, rec := range erasures {
		pending[id] = rec
	}
	defer func() {
		if keys != nil {
			keys.Close()
		}
	}()
	for i := 0; ; i++ {
		kind, b, err := fr.next()
		if err != nil {
			return rep, err
		}
		if i == 0 {
			var h Header
			if kind != frameHeader || json.Unmarshal(b, &h) != nil || h.Format != 1 {
				return rep, fmt.Errorf("%w: no header", ErrDamaged)
			}
			if h.Kind != KindFull {
				return rep, fmt.Errorf("backup: this file holds %s only, not a backup of the store", h.Kind)
			}
			continue
		}
		switch kind {
		case frameStream:
			var s streamStart
			if err := json.Unmarshal(b, &s); err != nil || current != nil {
				return rep, fmt.Errorf("%w: stream frame", ErrDamaged)
			}
			if current, err = beginRestore(ctx, nc, s); err != nil {
				return rep, err
			}
			var st streamState
			json.Unmarshal(s.State, &st)
			rep.Streams = append(rep.Streams, StreamSummary{Name: s.Name, Messages: st.Messages, FirstSeq: st.FirstSeq, LastSeq: st.LastSeq})
		case frameChunk:
			if current == nil {
				return rep, fmt.Errorf("%w: chunk outside a stream", ErrDamaged)
			}
			if err := current.chunk(ctx, b); err != nil {
				return rep, err
			}
			rep.Streams[len(rep.Streams)-1].Bytes += uint64(len(b))
		case frameDone:
			if current == nil {
				return rep, fmt.Errorf("%w: end of a stream outside one", ErrDamaged)
			}
			if err := current.finish(ctx); err != nil {
				return rep, err
			}
			current = nil
		case frameKey:
			id, rec, err := decodeKey(b)
			if err != nil {
				return rep, err
			}
			if keys == nil {
				if keys, err = casekeys.Open(ctx, js, casekeys.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
					return rep, err
				}
			}
			if rec == nil {
				if _, later := pending[id]; later {
					continue // erased after the backup: its key is not written (below)
				}
				rep.Keys++
			} else {
				delete(pending, id) // erased before: its own record
				rep.Erased++
			}
			var k keyEntry
			json.Unmarshal(b, &k)
			if err := keys.Restore(ctx, id, k.Value); err != nil {
				return rep, err
			}
		case frameFile:
			var f fileEntry
			if err := json.Unmarshal(b, &f); err != nil || !localName(f.Name) {
				return rep, fmt.Errorf("%w: file entry", ErrDamaged)
			}
			files = append(files, f)
		case frameEnd:
			if current != nil {
				return rep, fmt.Errorf("%w: a stream does not end", ErrDamaged)
			}
			if keys == nil && len(pending) > 0 {
				if keys, err = casekeys.Open(ctx, js, casekeys.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
					return rep, err
				}
			}
			for id, rec := range pending {
				if _, err := keys.Erase(ctx, id, rec); err != nil {
					return rep, fmt.Errorf("backup: re-apply the erasure of case %s: %w", id, err)
				}
				rep.Erased++
				rep.Later++
			}
			written, err := writeFiles(dataDir, files)
			rep.Files = written
			return rep, err
		default:
			return rep, fmt.Errorf("%w: unknown frame %q", ErrDamaged, kind)
		}
	}
}

// writeFiles writes the backup's files into dataDir, refusing to replace
// any. The former signing.pub goes beside the new key's when the key
// itself is not restored (see SigningPubBefore).
func writeFiles(dataDir string, files []fileEntry) ([]string, error) {
	withKey := false
	for _, f := range files {
		withKey = withKey || f.Name == signingKey
	}
	var written []string
	for _, f := range files {
		name := f.Name
		if name == signingPub && !withKey {
			name = SigningPubBefore
		}
		path := filepath.Join(dataDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return written, err
		}
		mode := os.FileMode(f.Mode).Perm()
		if mode == 0 {
			mode = 0o600
		}
		out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
		if err != nil {
			return written, fmt.Errorf("backup: %w", err)
		}
		_, err = out.Write(f.Data)
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return written, fmt.Errorf("backup: %s: %w", name, err)
		}
		written = append(written, name)
	}
	return written, nil
}

// ErrNotEmpty: the directory to restore into holds something.
var ErrNotEmpty = errors.New("backup: the directory is not empty")

// CheckEmpty returns nil when dir does not exist or is empty, ErrNotEmpty
// (naming the first entry) otherwise.
func CheckEmpty(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %s holds %s", ErrNotEmpty, dir, names[0])
}
