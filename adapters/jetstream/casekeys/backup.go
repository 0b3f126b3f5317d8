package casekeys

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream/internal/streamread"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/personal"
)

// What backups (adapters/jetstream/backup) need of the bucket: its current
// entries as stored, and putting them back. Only the current entry of each
// case is read, never the history the bucket keeps until a secure delete:
// a backup never holds the key of a case whose erasure was recorded before
// it read that case.

// Entry is a case's current entry: Raw as the bucket stores it (a key or
// an erasure record), and the erasure when it is one.
type Entry struct {
	CaseID  domain.CaseID
	Raw     []byte
	Erasure *personal.Erasure
}

// Entries calls fn, in no particular order, with the current entry of
// every case of the bucket on js's server (default name unless bucket is
// given). A bucket that does not exist has no entries. An entry that does
// not decode is an error: a backup must not leave a key out.
func Entries(ctx context.Context, js jetstream.JetStream, bucket string, fn func(Entry) error) error {
	if bucket == "" {
		bucket = DefaultBucket
	}
	stream := "KV_" + bucket
	prefix := "$KV." + bucket + "."
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + ">"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}
	var bad error
	err := streamread.Read(ctx, js, stream, cfg, func(m jetstream.Msg) error {
		if op := m.Headers().Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			return nil
		}
		id, err := uuid.Parse(m.Subject()[len(prefix):])
		if err != nil {
			return nil // not a case's entry
		}
		ent, err := decode(m.Data())
		if err != nil {
			bad = fmt.Errorf("casekeys: case %s: %w", id, err)
			return bad
		}
		return fn(Entry{CaseID: id, Raw: append([]byte(nil), m.Data()...), Erasure: ent.erasure})
	})
	switch {
	case bad != nil:
		return bad
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil
	case err != nil:
		return unavailable("read entries", err)
	}
	return nil
}

// DecodeEntry returns the erasure raw holds (nil for a key), or an error
// when raw is neither a key nor an erasure.
func DecodeEntry(raw []byte) (*personal.Erasure, error) {
	ent, err := decode(raw)
	return ent.erasure, err
}

// Restore puts an entry read by Entries back into the bucket, as the
// case's current entry. It is for a bucket being restored, before any
// server uses it: it does not check what the bucket held.
func (k *Keys) Restore(ctx context.Context, id domain.CaseID, raw []byte) error {
	ent, err := decode(raw)
	if err != nil {
		return fmt.Errorf("casekeys: case %s: %w", id, err)
	}
	if _, err := k.kv.Put(ctx, id.String(), raw); err != nil {
		return unavailable("restore entry", err)
	}
	k.set(id, ent)
	return nil
}
