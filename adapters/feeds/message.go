package feeds

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/maillage/maillage/domain"
)

// Message is a feed message as a partner reads it.
type Message struct {
	Kind     Kind
	CaseID   domain.CaseID
	Sequence uint64
	// Cause is the sequence of the event whose relaying published the
	// message: the sequence itself for a live event, the joining for a
	// back-fill, the consent or order for a reveal or a retract; for a
	// former member never more than its leaving (domain.TellingOf).
	Cause uint64
	// Rule is the policy rule that decided a full or redacted view
	// ("health_consent", "default_audience", ...): the reader's own view.
	// A stub has none: what hid an event is not told.
	Rule string
	View domain.EventView
}

// EncodeMessage builds the NATS message of a feed message, as the relay
// publishes it.
func EncodeMessage(subject string, m Message) (*nats.Msg, error) {
	// A stub is the same whatever hid the event: sequence and hashes, and
	// nothing else of the view even when the caller left more in it.
	stub := m.View.Visibility == domain.Hidden
	if stub {
		m.View = domain.EventView{Sequence: m.View.Sequence, LeafHash: m.View.LeafHash, ChainHash: m.View.ChainHash, Visibility: domain.Hidden}
	}
	// The payload must reach the partner byte for byte, or its leaf hash
	// would not verify: no HTML escaping (encoding/json would otherwise
	// rewrite "<" in a raw payload).
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m.View); err != nil {
		return nil, fmt.Errorf("feeds: encode view: %w", err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = bytes.TrimSuffix(body.Bytes(), []byte("\n"))
	h := msg.Header
	h.Set(HeaderFormat, FeedFormat)
	h.Set(HeaderKind, string(m.Kind))
	h.Set(HeaderCase, m.CaseID.String())
	h.Set(HeaderSequence, formatUint(m.Sequence))
	h.Set(HeaderCause, formatUint(m.Cause))
	h.Set(HeaderVisibility, string(m.View.Visibility))
	if !stub {
		if m.View.Visibility == domain.Redacted {
			h.Set(HeaderRedacted, strings.Join(m.View.RedactedFields, ","))
		}
		if m.View.Type != "" {
			h.Set(HeaderType, string(m.View.Type))
		}
		if m.Rule != "" {
			h.Set(HeaderRule, m.Rule)
		}
	}
	h.Set(HeaderLeafHash, m.View.LeafHash.String())
	h.Set(HeaderChainHash, m.View.ChainHash.String())
	return msg, nil
}

// msgID is the message's de-duplication id: the case, the sequence, the
// partner, the kind, the cause's sequence, and the stream sequence of the
// case subject's last message the publish expects (after). It names no
// event, so that a stub's id does not tell which event it hides, and it is
// new for every publish: after moves with each message of the subject, so
// a sequence revealed and retracted again and again, even for the same
// cause (a consent that starts and ends with time alone), is never dropped
// as a duplicate, while a publish retried as it was is.
func msgID(id domain.CaseID, seq uint64, inst domain.InstitutionID, kind Kind, cause, after uint64) string {
	return id.String() + ":" + formatUint(seq) + ":" + Token(inst) + ":" + string(kind) + ":" + formatUint(cause) + ":" + formatUint(after)
}

// ErrBadMessage: a feed message whose headers or body cannot be read.
var ErrBadMessage = errors.New("feeds: bad feed message")

// msgHeader is what the relay reads back from a feed message's headers.
type msgHeader struct {
	kind     Kind
	caseID   domain.CaseID
	sequence uint64
	cause    uint64
	key      string // viewKey of the view
}

func parseHeader(h nats.Header) (msgHeader, error) {
	var m msgHeader
	var err error
	m.kind = Kind(h.Get(HeaderKind))
	switch m.kind {
	case KindEvent, KindReveal, KindRetract, KindErase:
	default:
		return m, fmt.Errorf("%w: kind %q", ErrBadMessage, m.kind)
	}
	if m.caseID, err = uuid.Parse(h.Get(HeaderCase)); err != nil {
		return m, fmt.Errorf("%w: case: %w", ErrBadMessage, err)
	}
	if m.sequence, err = strconv.ParseUint(h.Get(HeaderSequence), 10, 64); err != nil || m.sequence == 0 {
		return m, fmt.Errorf("%w: sequence %q", ErrBadMessage, h.Get(HeaderSequence))
	}
	if m.cause, err = strconv.ParseUint(h.Get(HeaderCause), 10, 64); err != nil {
		return m, fmt.Errorf("%w: cause %q", ErrBadMessage, h.Get(HeaderCause))
	}
	vis := domain.Visibility(h.Get(HeaderVisibility))
	var fields []string
	switch vis {
	case domain.Full, domain.Hidden:
	case domain.Redacted:
		fields = strings.Split(h.Get(HeaderRedacted), ",")
	default:
		return m, fmt.Errorf("%w: visibility %q", ErrBadMessage, vis)
	}
	m.key = viewKey(vis, fields)
	return m, nil
}

// ParseMessage reads a feed message: headers and body.
func ParseMessage(h nats.Header, data []byte) (Message, error) {
	mh, err := parseHeader(h)
	if err != nil {
		return Message{}, err
	}
	m := Message{Kind: mh.kind, CaseID: mh.caseID, Sequence: mh.sequence, Cause: mh.cause, Rule: h.Get(HeaderRule)}
	if f := h.Get(HeaderFormat); f != FeedFormat {
		return Message{}, fmt.Errorf("%w: format %q", ErrBadMessage, f)
	}
	if err := json.Unmarshal(data, &m.View); err != nil {
		return Message{}, fmt.Errorf("%w: body: %w", ErrBadMessage, err)
	}
	if m.View.Sequence != m.Sequence {
		return Message{}, fmt.Errorf("%w: header sequence %d, body sequence %d", ErrBadMessage, m.Sequence, m.View.Sequence)
	}
	if m.View.CaseID != nil && *m.View.CaseID != m.CaseID {
		return Message{}, fmt.Errorf("%w: the body's case is not the header's", ErrBadMessage)
	}
	return m, nil
}

// Event returns the full event a full view shows, to verify its leaf hash.
func fullEvent(v domain.EventView) (domain.Event, bool) {
	if v.Visibility != domain.Full || v.ID == nil || v.CaseID == nil || v.RecordedAt == nil || v.OccurredAt == nil ||
		v.Actor == nil || v.CorrelationID == nil || v.CausationID == nil {
		return domain.Event{}, false
	}
	return domain.Event{
		ID: *v.ID, CaseID: *v.CaseID, Sequence: v.Sequence, Type: v.Type, SchemaVersion: v.SchemaVersion,
		RecordedAt: *v.RecordedAt, OccurredAt: *v.OccurredAt, Actor: *v.Actor, Category: v.Category,
		CorrelationID: *v.CorrelationID, CausationID: *v.CausationID, Salt: v.Salt, Payload: v.Payload, SealedPayload: v.SealedPayload,
		LeafHash: v.LeafHash, ChainHash: v.ChainHash,
	}, true
}
