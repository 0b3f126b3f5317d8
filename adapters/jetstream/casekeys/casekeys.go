// Package casekeys keeps the per-case keys of personal data
// (personal.Keys) in a NATS KV bucket, outside the event log, so that
// destroying a case's key erases its personal data for good while its
// events stay in the log (docs/personal-data.md).
//
// The bucket (MAILLAGE_KEYS, file storage, history 2, deletes allowed) holds one entry per
// case, keyed by the case id: {"key": <32 bytes, base64>} while the case is
// alive, then {"erasure": {...}} once erased. An erasure replaces the key
// with the record (an update at the key's revision, so two erasures never
// race), then securely deletes the key's message (the server overwrites
// its bytes on disk). Backups of the bucket hold keys: keep them no longer
// than the retention period, or an erased case can be read again from them.
//
// Each process keeps a mirror of the bucket in memory, fed by a watcher, so
// that reading a key costs no round trip and an erasure by another process
// is seen within milliseconds.
package casekeys

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream/internal/settle"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/personal"
)

// DefaultBucket is the name of the KV bucket.
const DefaultBucket = "MAILLAGE_KEYS"

// Keys is personal.Keys on a NATS KV bucket. Safe for concurrent use.
type Keys struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream // the bucket's stream, for secure deletes
	log    *slog.Logger

	mu      sync.RWMutex
	mirror  map[domain.CaseID]entry
	watcher jetstream.KeyWatcher
	stopped chan struct{}
}

var _ personal.Keys = (*Keys)(nil)

// entry is what the bucket holds for a case: a key, an erasure, or nothing
// (absent: known to have no entry).
type entry struct {
	key     []byte
	erasure *personal.Erasure
	absent  bool
}

// value is the JSON of a bucket entry.
type value struct {
	Key     []byte            `json:"key,omitempty"`
	Erasure *personal.Erasure `json:"erasure,omitempty"`
}

// Option configures Open.
type Option func(*config) error

type config struct {
	bucket   string
	replicas int
	log      *slog.Logger
}

// WithBucket sets the bucket name (default MAILLAGE_KEYS).
func WithBucket(name string) Option {
	return func(c *config) error {
		if name == "" || strings.ContainsAny(name, " \t\r\n.*>/\\") {
			return fmt.Errorf("casekeys: WithBucket: invalid bucket name %q", name)
		}
		c.bucket = name
		return nil
	}
}

// WithReplicas sets the bucket's replicas (1 to 5; default 1).
func WithReplicas(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("casekeys: WithReplicas: %d, want 1 to 5", n)
		}
		c.replicas = n
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("casekeys: WithLogger: nil logger")
		}
		c.log = l
		return nil
	}
}

// Open creates or opens the bucket on js's server and loads its mirror.
// Close it when done (it does not close js's connection).
func Open(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Keys, error) {
	cfg := config{bucket: DefaultBucket, replicas: 1, log: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	// The bucket's stream is made here rather than by CreateKeyValue, which
	// denies message deletes for good: a destroyed key must be deleted
	// securely (see Erase). The layout is the KV one, so that the KV API
	// binds to it.
	stream, err := settle.CreateOrUpdateStream(ctx, js, jetstream.StreamConfig{
		Name:              "KV_" + cfg.bucket,
		Description:       "maillage: per-case keys of personal data, and erasure records",
		Subjects:          []string{"$KV." + cfg.bucket + ".>"},
		MaxMsgsPerSubject: 2, // the key stays as history until its secure delete (see Erase)
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxConsumers:      -1,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.replicas,
		AllowRollup:       true,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
		Duplicates:        2 * time.Minute,
	})
	if err != nil {
		return nil, unavailable("create bucket", err)
	}
	kv, err := js.KeyValue(ctx, cfg.bucket)
	if err != nil {
		return nil, unavailable("open bucket", err)
	}
	k := &Keys{kv: kv, stream: stream, log: cfg.log, mirror: map[domain.CaseID]entry{}, stopped: make(chan struct{})}
	// The watcher outlives ctx: it stops with Close.
	k.watcher, err = kv.WatchAll(context.Background())
	if err != nil {
		return nil, unavailable("watch bucket", err)
	}
	if err := k.loadMirror(ctx); err != nil {
		k.watcher.Stop()
		return nil, err
	}
	go k.follow()
	return k, nil
}

// loadMirror applies the bucket's current entries, up to the watcher's
// marker that they were all delivered.
func (k *Keys) loadMirror(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return unavailable("load bucket", ctx.Err())
		case e, ok := <-k.watcher.Updates():
			if !ok {
				return unavailable("load bucket", errors.New("watcher stopped"))
			}
			if e == nil {
				return nil
			}
			k.apply(e)
		}
	}
}

func (k *Keys) follow() {
	defer close(k.stopped)
	for e := range k.watcher.Updates() {
		if e != nil {
			k.apply(e)
		}
	}
}

// apply records a bucket entry in the mirror.
func (k *Keys) apply(e jetstream.KeyValueEntry) {
	id, err := uuid.Parse(e.Key())
	if err != nil {
		return
	}
	var ent entry
	if e.Operation() == jetstream.KeyValuePut {
		if ent, err = decode(e.Value()); err != nil {
			k.log.Error("casekeys: unreadable entry", "revision", e.Revision(), "err", err)
			return
		}
	} else {
		ent.absent = true
	}
	k.set(id, ent)
}

func decode(b []byte) (entry, error) {
	var v value
	if err := json.Unmarshal(b, &v); err != nil {
		return entry{}, err
	}
	switch {
	case v.Erasure != nil:
		return entry{erasure: v.Erasure}, nil
	case len(v.Key) == personal.KeySize:
		return entry{key: v.Key}, nil
	}
	return entry{}, fmt.Errorf("neither a %d-byte key nor an erasure", personal.KeySize)
}

// Close stops the watcher. It does not fail: there is nothing to save.
func (k *Keys) Close() error {
	_ = k.watcher.Stop() // fails only when the connection is already closed
	select {
	case <-k.stopped:
	case <-time.After(5 * time.Second):
	}
	return nil
}

// lookup returns the case's entry: from the mirror, or from the server when
// the mirror does not know the case yet.
func (k *Keys) lookup(ctx context.Context, id domain.CaseID) (entry, error) {
	k.mu.RLock()
	ent, ok := k.mirror[id]
	k.mu.RUnlock()
	if ok {
		return ent, nil
	}
	e, err := k.kv.Get(ctx, id.String())
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		ent = entry{absent: true}
	case err != nil:
		return entry{}, unavailable("read key", err)
	default:
		if ent, err = decode(e.Value()); err != nil {
			return entry{}, fmt.Errorf("casekeys: case %s: %w", id, err)
		}
	}
	k.mu.Lock()
	if _, known := k.mirror[id]; !known { // the watcher may have brought newer news
		k.mirror[id] = ent
	}
	k.mu.Unlock()
	return ent, nil
}

// Key implements personal.Keys.
func (k *Keys) Key(ctx context.Context, id domain.CaseID, create bool) ([]byte, error) {
	for attempt := 0; attempt < 3; attempt++ {
		ent, err := k.lookup(ctx, id)
		switch {
		case err != nil:
			return nil, err
		case ent.erasure != nil:
			return nil, fmt.Errorf("case %s: %w", id, personal.ErrErased)
		case ent.key != nil:
			return append([]byte(nil), ent.key...), nil
		case !create:
			return nil, fmt.Errorf("case %s: %w", id, personal.ErrNoKey)
		}
		key := make([]byte, personal.KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(value{Key: key})
		_, err = k.kv.Create(ctx, id.String(), b)
		if err == nil {
			k.set(id, entry{key: key})
			return append([]byte(nil), key...), nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, unavailable("create key", err)
		}
		k.forget(id) // created meanwhile by another process: read it
	}
	return nil, fmt.Errorf("casekeys: case %s: %w: its entry keeps changing", id, domain.ErrStoreUnavailable)
}

// Erase implements personal.Keys.
func (k *Keys) Erase(ctx context.Context, id domain.CaseID, rec personal.Erasure) (personal.Erasure, error) {
	rec.CaseID = id
	b, _ := json.Marshal(value{Erasure: &rec})
	for attempt := 0; attempt < 8; attempt++ {
		cur, err := k.kv.Get(ctx, id.String())
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = k.kv.Create(ctx, id.String(), b)
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return personal.Erasure{}, unavailable("record erasure", err)
			}
			k.set(id, entry{erasure: &rec})
			return rec, nil
		case err != nil:
			return personal.Erasure{}, unavailable("read key", err)
		}
		ent, err := decode(cur.Value())
		if err != nil {
			return personal.Erasure{}, fmt.Errorf("casekeys: case %s: %w", id, err)
		}
		if ent.erasure != nil {
			k.set(id, ent)
			return *ent.erasure, nil
		}
		if _, err := k.kv.Update(ctx, id.String(), b, cur.Revision()); err != nil {
			if isWrongRevision(err) {
				continue
			}
			return personal.Erasure{}, unavailable("record erasure", err)
		}
		// The key is now history: overwrite its bytes on disk.
		if err := k.stream.SecureDeleteMsg(ctx, cur.Revision()); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return personal.Erasure{}, unavailable("destroy key", err)
		}
		clear(ent.key)
		k.set(id, entry{erasure: &rec})
		return rec, nil
	}
	return personal.Erasure{}, fmt.Errorf("casekeys: case %s: %w: its entry keeps changing", id, domain.ErrStoreUnavailable)
}

// Erasure implements personal.Keys.
func (k *Keys) Erasure(ctx context.Context, id domain.CaseID) (personal.Erasure, bool, error) {
	ent, err := k.lookup(ctx, id)
	if err != nil || ent.erasure == nil {
		return personal.Erasure{}, false, err
	}
	return *ent.erasure, true, nil
}

func (k *Keys) set(id domain.CaseID, ent entry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if old, ok := k.mirror[id]; ok && old.erasure != nil && ent.erasure == nil {
		return // an erasure is final
	}
	k.mirror[id] = ent
}

func (k *Keys) forget(id domain.CaseID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if old, ok := k.mirror[id]; ok && old.absent {
		delete(k.mirror, id)
	}
}

func isWrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant))
}

func unavailable(op string, err error) error {
	return fmt.Errorf("casekeys: %s: %w: %w", op, domain.ErrStoreUnavailable, err)
}
