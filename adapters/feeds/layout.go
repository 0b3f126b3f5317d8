package feeds

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/maillage/maillage/domain"
)

// The feed layout (docs/feeds.md). Institution ids may hold characters that
// NATS names cannot ("." separates subject tokens), so every name is built
// from Token(institution).
const (
	// SubjectPrefix starts every feed subject: <prefix>.<token>.<case id>.
	SubjectPrefix = "maillage.feed"
	// StreamPrefix starts every feed stream name: FEED_<token>.
	StreamPrefix = "FEED_"
	// InboxPrefix starts a partner's reply subjects: _INBOX_<token>. A
	// partner may subscribe to its own inbox prefix only, so that nobody
	// reads the answers meant for another.
	InboxPrefix = "_INBOX_"
	// PartnerConsumer is the durable pull consumer the relay creates on each
	// feed stream for the partner. Partners cannot create consumers (see
	// docs/feeds.md, "Credentials"), so this is their cursor.
	PartnerConsumer = "partner"
	// CheckpointBucket is the key-value bucket holding the relay's
	// checkpoint.
	CheckpointBucket = "MAILLAGE_FEED_RELAY"
	// BoundaryBucket holds, per case (key: case id), the next time one of
	// its consents or orders starts or ends (RFC 3339), for the relay to
	// evaluate the case again then.
	BoundaryBucket = "MAILLAGE_FEED_BOUNDARIES"
)

// Headers of feed messages.
const (
	HeaderCase       = "Maillage-Case"        // case id
	HeaderSequence   = "Maillage-Sequence"    // the event's sequence in its case
	HeaderType       = "Maillage-Type"        // event type; absent on stubs
	HeaderChainHash  = "Maillage-Chain-Hash"  // chain hash at the sequence (hex)
	HeaderLeafHash   = "Maillage-Leaf-Hash"   // leaf hash of the event (hex)
	HeaderKind       = "Maillage-Kind"        // event, reveal or retract
	HeaderVisibility = "Maillage-Visibility"  // full, redacted or hidden
	HeaderRedacted   = "Maillage-Redacted"    // removed fields, comma-separated, when redacted; absent on stubs
	HeaderRule       = "Maillage-Rule"        // the policy rule that decided a full or redacted view; absent on stubs
	HeaderCause      = "Maillage-Cause"       // sequence of the event whose relaying published the message (never an id)
	HeaderFormat     = "Maillage-Feed-Format" // body format
)

// FeedFormat names the body format: the JSON form of domain.EventView.
const FeedFormat = "event-view/v1"

// Kind is what a feed message says about its sequence.
type Kind string

// Kinds of feed messages.
const (
	// KindEvent delivers a sequence for the first time, as the partner may
	// see it when it is sent (full, redacted or a stub).
	KindEvent Kind = "event"
	// KindReveal replaces what the partner holds for an earlier sequence by
	// a view showing more (a consent was given, an order lifted).
	KindReveal Kind = "reveal"
	// KindRetract replaces what the partner holds for an earlier sequence
	// by a view showing less (usually a stub): the partner must delete what
	// it no longer may keep.
	KindRetract Kind = "retract"
	// KindErase tells the partner that the case's personal data was erased
	// (crypto-shredding, docs/personal-data.md): the feed no longer holds
	// anything of the case but this notice, a stub of the case's last
	// event, and the partner must delete what it holds of the case.
	KindErase Kind = "erase"
)

// Token returns the institution id as one NATS name token: letters, digits
// and "-" are kept, any other byte becomes "_" and two hex digits (so "_"
// is "_5F" and "." is "_2E"). Distinct ids give distinct tokens.
func Token(inst domain.InstitutionID) string {
	var b strings.Builder
	for i := 0; i < len(inst); i++ {
		c := inst[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02X", c)
		}
	}
	return b.String()
}

// maxToken bounds a token so that stream names stay well within what
// nats-server accepts and file systems store.
const maxToken = 200

// checkInstitution refuses institution ids that make no usable feed name.
func checkInstitution(inst domain.InstitutionID) error {
	if inst == "" {
		return fmt.Errorf("feeds: empty institution id")
	}
	if len(Token(inst)) > maxToken {
		return fmt.Errorf("feeds: institution id %q too long for a feed name", inst)
	}
	return nil
}

// StreamName returns the name of the institution's feed stream.
func StreamName(inst domain.InstitutionID) string { return StreamPrefix + Token(inst) }

// Subject returns the subject of one case in the institution's feed.
func Subject(inst domain.InstitutionID, id domain.CaseID) string {
	return SubjectPrefix + "." + Token(inst) + "." + id.String()
}

// subjects returns the subject filter of the institution's feed stream.
func subjects(inst domain.InstitutionID) string { return SubjectPrefix + "." + Token(inst) + ".*" }

// Inbox returns the reply subject prefix the institution's clients must use
// (nats.CustomInboxPrefix).
func Inbox(inst domain.InstitutionID) string { return InboxPrefix + Token(inst) }

// viewKey names what a view shows, to compare what a partner holds with what
// it may see: "full", "hidden" or "redacted:<fields>".
func viewKey(v domain.Visibility, fields []string) string {
	if v == domain.Redacted {
		return "redacted:" + strings.Join(fields, ",")
	}
	return string(v)
}

// shows reports whether what key shows includes everything what other
// shows: retracting is needed when the new view does not include the old.
func shows(key, other string) bool {
	switch {
	case key == other, other == string(domain.Hidden):
		return true
	case key == string(domain.Full):
		return true
	case key == string(domain.Hidden), other == string(domain.Full):
		return false
	}
	// Both redacted: key must remove no field that other keeps.
	removed := strings.Split(strings.TrimPrefix(key, "redacted:"), ",")
	removedByOther := strings.Split(strings.TrimPrefix(other, "redacted:"), ",")
	for _, f := range removed {
		if !containsFold(removedByOther, f) {
			return false
		}
	}
	return true
}

func containsFold(xs []string, x string) bool {
	for _, v := range xs {
		if strings.EqualFold(v, x) {
			return true
		}
	}
	return false
}

func formatUint(n uint64) string { return strconv.FormatUint(n, 10) }
