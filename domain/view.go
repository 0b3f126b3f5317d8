package domain

import (
	"bytes"
	"encoding/json"
	"io"
	"time"

	"github.com/google/uuid"
)

// EventView is an event as one viewer may see it, the form every reader of a
// case receives:
//   - Full: the whole event, salt, hashes and position included, so that the
//     viewer can recompute its leaf hash;
//   - Redacted: the event without its salt and without the payload fields
//     (top-level keys) named in RedactedFields; "actor" there means the
//     envelope's actor, "payload" the whole payload (when it is not a JSON
//     object and something in it had to go);
//   - Hidden: a stub with only the sequence, the hashes and the visibility.
//
// Every form keeps the sequence, the leaf hash and the chain hash, so that
// each viewer can check with ChainVerifier.Link that its timeline has no gap
// and matches everyone else's.
type EventView struct {
	Sequence      uint64          `json:"sequence"`
	ID            *uuid.UUID      `json:"id,omitempty"`
	CaseID        *CaseID         `json:"caseId,omitempty"`
	Type          EventType       `json:"type,omitempty"`
	SchemaVersion int             `json:"schemaVersion,omitempty"`
	RecordedAt    *time.Time      `json:"recordedAt,omitempty"`
	OccurredAt    *time.Time      `json:"occurredAt,omitempty"`
	Actor         *Actor          `json:"actor,omitempty"`
	Category      Category        `json:"category,omitempty"`
	CorrelationID *uuid.UUID      `json:"correlationId,omitempty"`
	CausationID   *uuid.UUID      `json:"causationId,omitempty"`
	Salt          []byte          `json:"salt,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	// SealedPayload is the payload as hashed, when it differs from Payload
	// (Event.SealedPayload): in full views only.
	SealedPayload json.RawMessage `json:"sealedPayload,omitempty"`
	LeafHash      Hash            `json:"leafHash"`
	ChainHash     Hash            `json:"chainHash"`
	Position      *Position       `json:"position,omitempty"`

	Visibility     Visibility `json:"visibility"`
	RedactedFields []string   `json:"redactedFields,omitempty"`
	// Known is false (and absent from the JSON) for an event of an unknown
	// type or a newer schema version, shown as it is, and for stubs.
	Known bool `json:"known,omitempty"`
}

// View returns event e as decision d lets its viewer see it. A decision of
// any other visibility than Full or Redacted gives a stub.
func View(e Event, d Decision) EventView {
	switch d.Visibility {
	case Full:
		return fullView(e)
	case Redacted:
		return redactedView(e, d.Fields)
	}
	return EventView{Sequence: e.Sequence, LeafHash: e.LeafHash, ChainHash: e.ChainHash, Visibility: Hidden}
}

// Timeline returns the events, in their order, as viewer v may see them at
// time now given the case's access state s (See, then View).
func Timeline(s *State, v Viewer, events []Event, now time.Time) []EventView {
	out := make([]EventView, len(events))
	sight := SightOf(s, v, now)
	for i, e := range events {
		out[i] = View(e, sight.See(e))
	}
	return out
}

func fullView(e Event) EventView {
	actor, pos := e.Actor, e.Position
	return EventView{
		Sequence: e.Sequence, ID: &e.ID, CaseID: &e.CaseID, Type: e.Type, SchemaVersion: e.SchemaVersion,
		RecordedAt: &e.RecordedAt, OccurredAt: &e.OccurredAt, Actor: &actor, Category: e.Category,
		CorrelationID: &e.CorrelationID, CausationID: &e.CausationID, Salt: e.Salt, Payload: e.Payload,
		SealedPayload: e.SealedPayload, LeafHash: e.LeafHash, ChainHash: e.ChainHash, Position: &pos,
		Visibility: Full, Known: e.Known(),
	}
}

func redactedView(e Event, fields []string) EventView {
	v := fullView(e)
	v.Visibility, v.Salt, v.SealedPayload = Redacted, nil, nil
	v.RedactedFields = append([]string(nil), fields...)
	var keys []string
	for _, f := range fields {
		if f == "actor" {
			v.Actor = nil
		} else {
			keys = append(keys, f)
		}
	}
	if len(keys) == 0 {
		return v
	}
	payload, ok := withoutMembers(e.Payload, keys)
	if !ok {
		payload = nil
		v.RedactedFields = union(v.RedactedFields, []string{"payload"})
	}
	v.Payload = payload
	return v
}

// jsonMember is one top-level member of a JSON object: its key and its value
// as the exact bytes found.
type jsonMember struct {
	Key   string
	Value json.RawMessage
}

// objectMembers returns the members of a JSON object in document order, or
// false when raw is not exactly one JSON object.
func objectMembers(raw []byte) ([]jsonMember, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var members []jsonMember
	for dec.More() {
		t, err := dec.Token()
		key, isKey := t.(string)
		if err != nil || !isKey {
			return nil, false
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, false
		}
		members = append(members, jsonMember{Key: key, Value: value})
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return members, true
}

// withoutMembers returns the JSON object raw without the members whose key
// is one of keys (compared as encoding/json matches keys: case-insensitively,
// duplicates included), the others kept in their order and bytes.
func withoutMembers(raw []byte, keys []string) (json.RawMessage, bool) {
	members, ok := objectMembers(raw)
	if !ok {
		return nil, false
	}
	b := []byte{'{'}
	for _, m := range members {
		if containsFold(keys, m.Key) {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		key, _ := json.Marshal(m.Key) // a string always encodes
		b = append(append(append(b, key...), ':'), m.Value...)
	}
	return append(b, '}'), true
}

// jsonStrings returns every string in a JSON value, object keys included, as
// decoded (escapes resolved). It stops at the first syntax error.
func jsonStrings(raw []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var out []string
	for {
		t, err := dec.Token()
		if err != nil {
			return out
		}
		if s, ok := t.(string); ok {
			out = append(out, s)
		}
	}
}
