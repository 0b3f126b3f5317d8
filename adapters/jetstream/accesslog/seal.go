package accesslog

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/maillage/maillage/adapters/jetstream/internal/settle"
	"github.com/maillage/maillage/adapters/jetstream/internal/streamread"
	"github.com/maillage/maillage/domain/audit"
)

// Seals make the log tamper-evident (audit.AccessSeal): now and then the
// server seals the records stored since the last seal, signing their
// digest with its signing key (the one of the signed heads), in a stream of
// their own, <stream>_SEALS on subject <prefix>seals, deletes and purges
// denied, kept as long as the records. Each seal expects the seals stream
// to end with the seal it follows (expected last sequence), so that two
// servers sealing at once never fork the chain: the second's seal is
// refused and its records go into the next one.

// sealStream returns the stream and subject of the seals.
func (c config) sealStream() (name, subject string) { return c.stream + "_SEALS", c.prefix + "seals" }

// openSeals creates or updates the seals stream.
func (l *Log) openSeals(ctx context.Context) error {
	name, subject := l.cfg.sealStream()
	_, err := settle.CreateOrUpdateStream(ctx, l.js, jetstream.StreamConfig{
		Name:        name,
		Description: "maillage access log seals: signed digests of the access log's records",
		Subjects:    []string{subject},
		Storage:     jetstream.FileStorage,
		Replicas:    l.cfg.replicas,
		MaxAge:      l.cfg.maxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Discard:     jetstream.DiscardOld,
		DenyDelete:  !l.cfg.deletable,
		DenyPurge:   !l.cfg.deletable,
	})
	return err
}

// lastSeal returns the last seal and the seals stream's last sequence (nil
// when there is no seal: none yet, or all expired).
func (l *Log) lastSeal(ctx context.Context) (*audit.AccessSeal, uint64, error) {
	name, subject := l.cfg.sealStream()
	s, err := l.js.Stream(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, s.CachedInfo().State.LastSeq, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var seal audit.AccessSeal
	if err := json.Unmarshal(m.Data, &seal); err != nil {
		return nil, 0, fmt.Errorf("seal %d: %w", m.Sequence, err)
	}
	return &seal, m.Sequence, nil
}

// Seal seals the records stored since the last seal with key, and returns
// how many it sealed: none when there were none, or when another server
// sealed at the same time (they go into the next seal). Errors wrap
// domain.ErrStoreUnavailable when the server failed.
func (l *Log) Seal(ctx context.Context, key ed25519.PrivateKey) (uint64, error) {
	if err := l.caughtUp(ctx); err != nil {
		return 0, err
	}
	prev, prevSeq, err := l.lastSeal(ctx)
	if err != nil {
		return 0, unavailable("read the last seal", err)
	}
	st, err := l.js.Stream(ctx, l.cfg.stream)
	if err != nil {
		return 0, unavailable("stream info", err)
	}
	state := st.CachedInfo().State
	seal := audit.NewAccessSeal(prev, state.FirstSeq)
	if state.Msgs == 0 || state.LastSeq < seal.From {
		return 0, nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seal.From}
	errDone := errors.New("sealed up to the last record seen")
	err = streamread.Read(ctx, l.js, l.cfg.stream, cfg, func(m jetstream.Msg) error {
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		if meta.Sequence.Stream > state.LastSeq {
			return errDone // stored since: the next seal's
		}
		seal.Add(meta.Sequence.Stream, m.Subject(), m.Data())
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		return 0, unavailable("read records to seal", err)
	}
	if seal.Records == 0 {
		return 0, nil
	}
	seal.SealedAt = l.now()
	signed := audit.SignSeal(key, seal)
	b, err := json.Marshal(signed)
	if err != nil {
		return 0, err
	}
	_, subject := l.cfg.sealStream()
	if _, err := l.js.Publish(ctx, subject, b, jetstream.WithExpectLastSequence(prevSeq)); err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return 0, nil // another server sealed meanwhile
		}
		return 0, unavailable("store the seal", err)
	}
	return signed.Records, nil
}

// RunSealer seals every every until ctx ends, then once more (with a
// context of its own, bounded to 10 s) so that what was recorded until the
// end is sealed. Failures are logged and tried again at the next tick.
func (l *Log) RunSealer(ctx context.Context, key ed25519.PrivateKey, every time.Duration, log *slog.Logger) {
	seal := func(ctx context.Context) {
		n, err := l.Seal(ctx, key)
		switch {
		case err != nil:
			log.Warn("access log: sealing failed, trying again later", "err", err)
		case n > 0:
			log.Debug("access log: records sealed", "records", n)
		}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			seal(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			seal(final)
			cancel()
			return
		}
	}
}

// Seals returns every seal kept, oldest first. Errors wrap
// domain.ErrStoreUnavailable when the server failed.
func (l *Log) Seals(ctx context.Context) ([]audit.AccessSeal, error) {
	name, _ := l.cfg.sealStream()
	var out []audit.AccessSeal
	err := streamread.Read(ctx, l.js, name, jetstream.OrderedConsumerConfig{}, func(m jetstream.Msg) error {
		var s audit.AccessSeal
		if err := json.Unmarshal(m.Data(), &s); err != nil {
			meta, _ := m.Metadata()
			seq := uint64(0)
			if meta != nil {
				seq = meta.Sequence.Stream
			}
			return fmt.Errorf("seal %d unreadable: %w", seq, err)
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, unavailable("read seals", err)
	}
	return out, nil
}

// VerifySeals checks the log against its seals: with keys (the server's
// signing keys), every seal's signature first, each with the key it names
// (a seal that does not verify is an error naming it),
// then every record kept, in stream order, against the seals' digests.
// progress, when not nil, is called now and then with the stream sequence
// reached and the last one.
func (l *Log) VerifySeals(ctx context.Context, keys audit.Keys, progress func(seq, last uint64)) (audit.AccessReport, error) {
	if err := l.caughtUp(ctx); err != nil {
		return audit.AccessReport{}, err
	}
	seals, err := l.Seals(ctx)
	if err != nil {
		return audit.AccessReport{}, err
	}
	if len(keys) > 0 {
		for _, s := range seals {
			if err := keys.VerifySeal(s); err != nil {
				return audit.AccessReport{}, err
			}
		}
	}
	st, err := l.js.Stream(ctx, l.cfg.stream)
	if err != nil {
		return audit.AccessReport{}, unavailable("stream info", err)
	}
	state := st.CachedInfo().State
	check := audit.NewAccessSealCheck(seals, state.FirstSeq)
	if progress != nil {
		progress(0, state.LastSeq)
	}
	if state.Msgs > 0 {
		err = streamread.Read(ctx, l.js, l.cfg.stream, jetstream.OrderedConsumerConfig{}, func(m jetstream.Msg) error {
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			check.Add(meta.Sequence.Stream, m.Subject(), m.Data())
			if progress != nil && meta.Sequence.Stream%1024 == 0 {
				progress(meta.Sequence.Stream, state.LastSeq)
			}
			return nil
		})
		if err != nil {
			return audit.AccessReport{}, unavailable("read records", err)
		}
	}
	if progress != nil {
		progress(state.LastSeq, state.LastSeq)
	}
	return check.Finish(), nil
}
