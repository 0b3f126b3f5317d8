package prometheus

import (
	"context"
	"errors"
	"iter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/maillage/maillage/domain"
)

// Store is a domain.EventStore that measures the store it wraps: append
// latency by outcome, appended events, version conflicts, ReadCase latency,
// and store errors by operation. It changes nothing else: every call and
// every outcome passes through as it is.
type Store struct {
	next domain.EventStore

	appendDuration *prometheus.HistogramVec
	appendedEvents prometheus.Counter
	conflicts      prometheus.Counter
	readDuration   prometheus.Histogram
	readAllEvents  prometheus.Counter
	errors         *prometheus.CounterVec
}

var _ domain.EventStore = (*Store)(nil)

// Outcomes of an append, the values of the outcome label.
const (
	OutcomeOK          = "ok"
	OutcomeDuplicate   = "duplicate"
	OutcomeConflict    = "conflict"
	OutcomeInvalid     = "invalid"
	OutcomeMismatch    = "idempotency_mismatch"
	OutcomeUnavailable = "unavailable"
	OutcomeCanceled    = "canceled"
	OutcomeError       = "error"
)

// InstrumentStore wraps store and registers its metrics on reg.
func InstrumentStore(store domain.EventStore, reg prometheus.Registerer) (*Store, error) {
	s := &Store{
		next: store,
		appendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "store", Name: "append_duration_seconds",
			Help: "Time of an event store append (one command's events, written durably), by outcome: " +
				"ok, duplicate, conflict, invalid, idempotency_mismatch, unavailable, canceled, error.",
			Buckets: []float64{.0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 2.5},
		}, []string{"outcome"}),
		appendedEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "store", Name: "appended_events_total",
			Help: "Events recorded by successful appends (duplicates excluded).",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "store", Name: "append_conflicts_total",
			Help: "Appends refused because the case had moved on (optimistic concurrency).",
		}),
		readDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "store", Name: "read_case_duration_seconds",
			Help:    "Time to read a case's events from the store.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		readAllEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "store", Name: "read_all_events_total",
			Help: "Events delivered in global order by ReadAll and Follow.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "store", Name: "errors_total",
			Help: "Event store calls that failed for a reason other than the caller's (conflicts and refused batches excluded), " +
				"by operation (append, read_case, read_all, follow) and kind (unavailable, error).",
		}, []string{"operation", "kind"}),
	}
	for _, c := range []prometheus.Collector{s.appendDuration, s.appendedEvents, s.conflicts, s.readDuration, s.readAllEvents, s.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Append records the outcome and latency of the wrapped store's Append.
func (s *Store) Append(ctx context.Context, expectedVersion uint64, events []domain.Event) (domain.AppendResult, error) {
	start := time.Now()
	res, err := s.next.Append(ctx, expectedVersion, events)
	outcome := appendOutcome(res, err)
	s.appendDuration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	switch outcome {
	case OutcomeOK:
		s.appendedEvents.Add(float64(len(events)))
	case OutcomeConflict:
		s.conflicts.Inc()
	case OutcomeUnavailable, OutcomeError:
		s.errors.WithLabelValues("append", outcome).Inc()
	}
	return res, err
}

func appendOutcome(res domain.AppendResult, err error) string {
	switch {
	case err == nil && res.Duplicate:
		return OutcomeDuplicate
	case err == nil:
		return OutcomeOK
	case errors.Is(err, domain.ErrVersionConflict):
		return OutcomeConflict
	case errors.Is(err, domain.ErrInvalidBatch):
		return OutcomeInvalid
	case errors.Is(err, domain.ErrIdempotencyMismatch):
		return OutcomeMismatch
	case errors.Is(err, domain.ErrStoreUnavailable):
		return OutcomeUnavailable
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	}
	return OutcomeError
}

// failed counts a failed read unless the caller gave up (its context ended).
func (s *Store) failed(operation string, err error) {
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case errors.Is(err, domain.ErrStoreUnavailable):
		s.errors.WithLabelValues(operation, OutcomeUnavailable).Inc()
	default:
		s.errors.WithLabelValues(operation, OutcomeError).Inc()
	}
}

// ReadCase records the latency and failures of the wrapped store's ReadCase.
func (s *Store) ReadCase(ctx context.Context, id domain.CaseID, after uint64) ([]domain.Event, error) {
	start := time.Now()
	events, err := s.next.ReadCase(ctx, id, after)
	s.readDuration.Observe(time.Since(start).Seconds())
	s.failed("read_case", err)
	return events, err
}

// ReadAll counts the events the wrapped store's ReadAll yields, and its
// failure.
func (s *Store) ReadAll(ctx context.Context, after domain.Position) iter.Seq2[domain.Event, error] {
	return func(yield func(domain.Event, error) bool) {
		for e, err := range s.next.ReadAll(ctx, after) {
			if err != nil {
				s.failed("read_all", err)
			} else {
				s.readAllEvents.Inc()
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

// Follow counts the events the wrapped store's Follow delivers, and its
// failure (not the handler's errors, nor the end of ctx).
func (s *Store) Follow(ctx context.Context, after domain.Position, handle func(domain.Event) error) error {
	var handlerErr error
	err := s.next.Follow(ctx, after, func(e domain.Event) error {
		s.readAllEvents.Inc()
		handlerErr = handle(e)
		return handlerErr
	})
	if err != nil && (handlerErr == nil || !errors.Is(err, handlerErr)) {
		s.failed("follow", err)
	}
	return err
}

// Close closes the wrapped store.
func (s *Store) Close() error { return s.next.Close() }
