// Package accesslog keeps the access log (domain.AccessLog) in its own
// JetStream stream, apart from the case events: every read of a case
// through the API and every feed delivery, who, when, which sequences and
// why, never what was read.
//
// Stream MAILLAGE_ACCESS: file storage, deletes and purges denied (records
// are only added, and leave only when they expire), records kept one year
// by default (WithMaxAge; the CNIL expects six months to a year, up to
// three years when justified). One message per record, a JSON
// domain.AccessRecord, on the subject
//
//	maillage.access.<case id>.<role>.<institution, or "-">
//
// so that a case's records, or an institution's, are read without scanning
// the others. Subjects carry no personal data: a case id is a random UUID,
// institutions are organisations. The purpose, free text, is sealed with
// the case's key (WithPersonalData), so that the case's erasure reaches it.
//
// Concurrent records share their durable write (group commit,
// groupcommit.go): they go out as one batch message to a write-ahead
// stream, each Record returning once its batch is on disk, and are then
// copied to MAILLAGE_ACCESS, one message per record as above.
//
// The log is also tamper-evident: the server seals its records now and
// then, signing their digest (seal.go, audit.AccessSeal), and
// VerifySeals finds a sealed record altered, removed or added.
package accesslog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream/internal/settle"
	"github.com/maillage/maillage/adapters/jetstream/internal/streamread"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/audit"
	"github.com/maillage/maillage/domain/personal"
)

// Defaults.
const (
	DefaultStream  = "MAILLAGE_ACCESS"
	DefaultPrefix  = "maillage.access"
	DefaultMaxAge  = 365 * 24 * time.Hour
	maxPurposeRune = 200
)

// Log is the access log on JetStream. Safe for concurrent use.
type Log struct {
	js  jetstream.JetStream
	cfg config
	now func() time.Time
	gc  *groupCommit // nil: one publish per record (WithoutGroupCommit)
}

var _ domain.AccessLog = (*Log)(nil)

// Option configures Open.
type Option func(*config) error

type config struct {
	stream    string
	prefix    string
	maxAge    time.Duration
	replicas  int
	log       *slog.Logger
	deletable bool          // tests: records and seals can be deleted, as by someone tampering below the application
	keys      personal.Keys // nil: purposes stored as given (WithPersonalData)
	serial    bool          // one publish per record, as before group commit (WithoutGroupCommit)
	noIndex   bool          // tests: batches stay in the write-ahead stream, as after a crash
}

// WithoutGroupCommit makes every Record one publish of its own, fsynced
// before the next, as before group commit: for comparison benchmarks.
func WithoutGroupCommit() Option {
	return func(c *config) error { c.serial = true; return nil }
}

// withoutIndexing leaves every batch in the write-ahead stream, as a crash
// right after it was written does (tests of Open's recovery).
func withoutIndexing() Option {
	return func(c *config) error { c.noIndex = true; return nil }
}

// WithStream sets the stream name and subject prefix (defaults
// MAILLAGE_ACCESS and maillage.access).
func WithStream(name, prefix string) Option {
	return func(c *config) error {
		if name == "" || strings.ContainsAny(name, " \t\r\n.*>/\\") || prefix == "" || strings.ContainsAny(prefix, " \t\r\n*>") {
			return fmt.Errorf("accesslog: WithStream: invalid name %q or prefix %q", name, prefix)
		}
		c.stream, c.prefix = name, prefix
		return nil
	}
}

// WithMaxAge sets how long records are kept (default one year).
func WithMaxAge(d time.Duration) Option {
	return func(c *config) error {
		if d < time.Hour {
			return fmt.Errorf("accesslog: WithMaxAge: %s, want at least an hour", d)
		}
		c.maxAge = d
		return nil
	}
}

// WithReplicas sets the stream's replicas (1 to 5; default 1).
func WithReplicas(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 5 {
			return fmt.Errorf("accesslog: WithReplicas: %d, want 1 to 5", n)
		}
		c.replicas = n
		return nil
	}
}

// withDeletesAllowed lets records and seals be deleted (tests standing for
// someone tampering with the server's storage).
func withDeletesAllowed() Option {
	return func(c *config) error { c.deletable = true; return nil }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("accesslog: WithLogger: nil logger")
		}
		c.log = l
		return nil
	}
}

// Open creates or updates the stream on js's server.
func Open(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Log, error) {
	cfg := config{stream: DefaultStream, prefix: DefaultPrefix, maxAge: DefaultMaxAge, replicas: 1, log: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	_, err := settle.CreateOrUpdateStream(ctx, js, jetstream.StreamConfig{
		Name:        cfg.stream,
		Description: "maillage access log: reads of cases and feed deliveries, never their contents",
		Subjects:    []string{cfg.prefix + ".>"},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.replicas,
		MaxAge:      cfg.maxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Discard:     jetstream.DiscardOld,
		DenyDelete:  !cfg.deletable,
		DenyPurge:   !cfg.deletable,
		// Group commit copies records in atomic batches, each record
		// under a message id so that a copy made twice is stored once.
		AllowAtomicPublish: true,
		Duplicates:         2 * time.Minute,
	})
	if err != nil {
		return nil, unavailable("create stream", err)
	}
	l := &Log{js: js, cfg: cfg, now: time.Now}
	if err := l.openSeals(ctx); err != nil {
		return nil, unavailable("create the seals stream", err)
	}
	if err := l.openWAL(ctx); err != nil {
		return nil, unavailable("create the write-ahead stream", err)
	}
	if err := l.reconcile(ctx); err != nil {
		return nil, unavailable("copy the records left in the write-ahead stream", err)
	}
	if !cfg.serial {
		l.gc = newGroupCommit(l)
		l.gc.noIndex = cfg.noIndex
	}
	return l, nil
}

// Subject returns the subject of a record.
func (l *Log) Subject(r domain.AccessRecord) string {
	inst := string(r.Institution)
	if inst == "" {
		inst = "-"
	}
	role := string(r.Role)
	if role == "" {
		role = "-"
	}
	return l.cfg.prefix + "." + r.CaseID.String() + "." + role + "." + inst
}

// Record appends a record, durably, before it returns: concurrent calls
// share one write (groupcommit.go). A record without a
// case, a role or a time is refused; a purpose is cut to 200 characters on
// one line. Errors wrap domain.ErrStoreUnavailable when the server failed:
// the read must then not be served.
func (l *Log) Record(ctx context.Context, r domain.AccessRecord) error {
	if r.CaseID == uuid.Nil || r.Role == "" || strings.ContainsAny(string(r.Institution)+string(r.Role), " .*>\t\r\n") {
		return fmt.Errorf("accesslog: incomplete record (case %s, role %q, institution %q)", r.CaseID, r.Role, r.Institution)
	}
	if r.At.IsZero() {
		r.At = l.now()
	}
	r.At = r.At.UTC()
	r.Purpose = Purpose(r.Purpose)
	var err error
	if r.Purpose, err = l.sealPurpose(ctx, r); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if l.gc != nil {
		err = l.gc.record(ctx, l.Subject(r), b)
	} else {
		_, err = l.js.Publish(ctx, l.Subject(r), b)
	}
	if err != nil {
		return unavailable("record", err)
	}
	return nil
}

// caughtUp waits until the records this Log made durable are in the
// records stream (groupcommit.go).
func (l *Log) caughtUp(ctx context.Context) error {
	if l.gc == nil {
		return nil
	}
	if err := l.gc.caughtUp(ctx); err != nil {
		return unavailable("wait for the records to be copied", err)
	}
	return nil
}

// Purpose cleans a purpose given by a caller: one line, at most 200
// characters.
func Purpose(p string) string {
	p = strings.Join(strings.Fields(p), " ")
	if r := []rune(p); len(r) > maxPurposeRune {
		p = string(r[:maxPurposeRune])
	}
	return p
}

// Access returns the records f selects, oldest first: the newest f.Limit
// of them (audit.DefaultAccessLimit when 0). Errors wrap
// domain.ErrStoreUnavailable when the server failed.
func (l *Log) Access(ctx context.Context, f audit.AccessFilter) ([]domain.AccessRecord, error) {
	if err := l.caughtUp(ctx); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = audit.DefaultAccessLimit
	}
	caseTok, inst := "*", "*"
	if f.CaseID != uuid.Nil {
		caseTok = f.CaseID.String()
	}
	if f.Institution != "" {
		inst = string(f.Institution)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{l.cfg.prefix + "." + caseTok + ".*." + inst}}
	if !f.From.IsZero() {
		// The server stamps a record when it stores it, after its At:
		// starting a little earlier misses none.
		start := f.From.Add(-time.Minute)
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	var out []domain.AccessRecord
	open := purposes{keys: l.cfg.keys}
	err := streamread.Read(ctx, l.js, l.cfg.stream, cfg, func(m jetstream.Msg) error {
		var r domain.AccessRecord
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			l.cfg.log.Error("accesslog: unreadable record", "subject", m.Subject(), "err", err)
			return nil
		}
		if !f.Match(r) {
			return nil
		}
		if err := open.open(ctx, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if errors.Is(err, personal.ErrUnreadable) || errors.Is(err, personal.ErrNoKey) {
		return nil, err
	}
	if err != nil {
		return nil, unavailable("read", err)
	}
	slices.SortStableFunc(out, func(a, b domain.AccessRecord) int { return cmp.Compare(a.At.UnixNano(), b.At.UnixNano()) })
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	if out == nil {
		out = []domain.AccessRecord{}
	}
	return out, nil
}

func unavailable(op string, err error) error {
	return fmt.Errorf("accesslog: %s: %w: %w", op, domain.ErrStoreUnavailable, err)
}
