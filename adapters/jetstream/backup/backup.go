package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	mjs "github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/adapters/jetstream/accesslog"
	"github.com/maillage/maillage/adapters/jetstream/casekeys"
	"github.com/maillage/maillage/adapters/jetstream/checkpoints"
)

// Order is the order the streams are snapshotted in, each after the one
// before has ended (see the package documentation for why): the signed
// heads, the access log's seals, its write-ahead batches, its records,
// the events. The keys bucket is read after them all. Any other maillage
// stream on the server comes after the events.
func Order() []string {
	return []string{
		checkpoints.DefaultStream,
		accesslog.DefaultStream + "_SEALS",
		accesslog.DefaultStream + "_WAL",
		accesslog.DefaultStream,
		mjs.DefaultStreamName,
	}
}

// keysStream is the stream of the keys bucket: read entry by entry, not
// snapshotted (casekeys.Entries).
const keysStream = "KV_" + casekeys.DefaultBucket

// derived are streams the server rebuilds and a backup leaves out: the
// partner feeds' relay checkpoint and boundaries, if the feeds ever share
// the store's server (serve puts them on a server of their own).
var derived = []string{"KV_MAILLAGE_FEED_RELAY", "KV_MAILLAGE_FEED_BOUNDARIES"}

// Option configures Backup.
type Option func(*config) error

type config struct {
	erasuresOnly bool
	dir          string
	files        []string
	progress     func(stage string, done uint64)
	source       string
	now          func() time.Time
}

// WithErasuresOnly writes the erasure records only: no stream, no key, no
// file. Such a file is what Restore takes to re-apply the erasures
// recorded after a backup (docs/operations.md, "Backup and restore").
func WithErasuresOnly() Option {
	return func(c *config) error { c.erasuresOnly = true; return nil }
}

// WithFiles adds files of the data directory dir (names relative to it,
// "/" separated); those that do not exist are left out.
func WithFiles(dir string, names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			if !localName(n) {
				return fmt.Errorf("backup: WithFiles: %q is not a name inside the data directory", n)
			}
		}
		c.dir, c.files = dir, append(c.files, names...)
		return nil
	}
}

// WithProgress calls fn now and then with the stage (a stream's name, or
// "keys") and the bytes written so far.
func WithProgress(fn func(stage string, done uint64)) Option {
	return func(c *config) error { c.progress = fn; return nil }
}

// WithSource names where the store is, for the header ("embedded",
// "nats").
func WithSource(s string) Option {
	return func(c *config) error { c.source = s; return nil }
}

func localName(n string) bool {
	return n != "" && filepath.IsLocal(filepath.FromSlash(n)) && !strings.Contains(n, "\\")
}

// Backup writes a backup of the store on nc's server to out, while it is
// running: the streams one after another in Order, then the keys bucket's
// current entries, then the files asked for. It returns what the file
// holds. Nothing is held in memory but a chunk at a time.
func Backup(ctx context.Context, nc *nats.Conn, out io.Writer, opts ...Option) (Summary, error) {
	cfg := config{source: "nats", now: time.Now}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return Summary{}, err
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return Summary{}, err
	}
	w, err := newWriter(out)
	if err != nil {
		return Summary{}, err
	}
	kind := KindFull
	if cfg.erasuresOnly {
		kind = KindErasures
	}
	if err := w.json(frameHeader, Header{Format: 1, Kind: kind, StartedAt: cfg.now().UTC(), Source: cfg.source}); err != nil {
		return Summary{}, err
	}
	var sum Summary
	if !cfg.erasuresOnly {
		names, err := streams(ctx, js)
		if err != nil {
			return Summary{}, err
		}
		for _, name := range names {
			base := w.n
			s, err := snapshotStream(ctx, nc, name, w, func(n uint64) {
				if cfg.progress != nil {
					cfg.progress(name, base+n)
				}
			})
			if errors.Is(err, errNoStream) {
				continue // removed since listed: nothing to keep
			}
			if err != nil {
				return Summary{}, err
			}
			sum.Streams = append(sum.Streams, s)
		}
	}
	sum.KeysFrom = cfg.now().UTC()
	err = casekeys.Entries(ctx, js, "", func(e casekeys.Entry) error {
		if e.Erasure != nil {
			sum.Erasures++
		} else if cfg.erasuresOnly {
			return nil
		} else {
			sum.Keys++
		}
		if cfg.progress != nil && (sum.Keys+sum.Erasures)%1024 == 0 {
			cfg.progress("keys", w.n)
		}
		return w.json(frameKey, keyEntry{Case: e.CaseID.String(), Value: e.Raw})
	})
	if err != nil {
		return Summary{}, fmt.Errorf("backup: keys bucket: %w", err)
	}
	sum.KeysUntil = cfg.now().UTC()
	if !cfg.erasuresOnly {
		for _, name := range cfg.files {
			path := filepath.Join(cfg.dir, filepath.FromSlash(name))
			info, err := os.Stat(path)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return Summary{}, fmt.Errorf("backup: %w", err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return Summary{}, fmt.Errorf("backup: %w", err)
			}
			if err := w.json(frameFile, fileEntry{Name: name, Mode: uint32(info.Mode().Perm()), Data: b}); err != nil {
				return Summary{}, err
			}
			sum.Files = append(sum.Files, name)
		}
	}
	sum.FinishedAt = cfg.now().UTC()
	if err := w.end(&sum); err != nil {
		return Summary{}, err
	}
	return sum, nil
}

// streams returns the streams to snapshot, in order: those of Order that
// exist, then the other maillage streams but the keys bucket and derived
// data.
func streams(ctx context.Context, js jetstream.JetStream) ([]string, error) {
	have := map[string]bool{}
	list := js.StreamNames(ctx)
	for name := range list.Name() {
		have[name] = true
	}
	if err := list.Err(); err != nil {
		return nil, fmt.Errorf("backup: list the streams: %w", err)
	}
	var out []string
	for _, name := range Order() {
		if have[name] {
			out = append(out, name)
			delete(have, name)
		}
	}
	var rest []string
	for name := range have {
		if (strings.HasPrefix(name, "MAILLAGE_") || strings.HasPrefix(name, "KV_MAILLAGE_")) && name != keysStream && !slices.Contains(derived, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	return append(out, rest...), nil
}
