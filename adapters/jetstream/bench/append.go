package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	mjs "github.com/maillage/maillage/adapters/jetstream"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
)

// Append measures durable appends through the real write path
// (cases.Service.Record: load, decide, seal, append with the expected
// version, one message per command, fsync) by Writers concurrent writers
// over Cases cases, each writer picking a case at random; then the same
// server doing plain durable publishes (no domain, no concurrency check, no
// de-duplication id) of the same message, headers and body, at the same
// concurrency. The ratio of the two rates is the domain's overhead.
//
// The two alternate in rounds of about a second (Duration each in all), so
// that both see the same disk: fsync latency on shared or virtual disks
// drifts by a factor of two or more within a minute.
func Append(ctx context.Context, opts Options) (*Report, error) {
	opts = opts.withDefaults()
	e, err := openEnv(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	svc, err := cases.New(e.store, cases.WithCacheSize(max(4096, opts.Cases)))
	if err != nil {
		return nil, err
	}
	e.progress("append: opening %d cases", opts.Cases)
	ids, err := openCases(ctx, svc, opts.Cases)
	if err != nil {
		return nil, err
	}
	sample, err := sampleMessage(ctx, e.store, svc, ids[0])
	if err != nil {
		return nil, err
	}
	r := newReport("append", fmt.Sprintf("%d writers over %d cases, %s per phase, messages of %d bytes (body %d), embedded JetStream, fsync always",
		opts.Writers, opts.Cases, opts.Duration, msgSize(sample), len(sample.Data)))

	pub, cleanup, err := rawPublisher(ctx, e.store, sample, opts)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rnd := make([]*rand.Rand, opts.Writers)
	for w := range rnd {
		rnd[w] = rand.New(rand.NewPCG(uint64(opts.Seed), uint64(w)))
	}
	record := func(ctx context.Context, w, i int) error {
		_, err := svc.Record(ctx, observation(ids[rnd[w].IntN(len(ids))], w, i))
		return err
	}
	rawMeter := &meter{phase: "raw durable publish", unit: "msg"}
	domainMeter := &meter{phase: "append via domain/cases", unit: "cmd"}
	var peer *pgPeer
	var peerMeter *meter
	var peerOp func(context.Context, int, int) error
	switch opts.Peer {
	case "":
	case PeerPostgres:
		e.progress("append: starting the Postgres peer")
		// A row as large as the stored message (headers and body).
		row := make([]byte, 0, msgSize(sample))
		for len(row) < cap(row) {
			row = append(row, sample.Data[:min(len(sample.Data), cap(row)-len(row))]...)
		}
		peer, err = startPostgres(ctx, opts.Writers, opts.Cases, row)
		switch {
		case errors.Is(err, ErrNoPostgres):
			e.progress("append: %s", err)
			r.Notes = append(r.Notes, err.Error())
		case err != nil:
			return nil, err
		default:
			defer peer.Close()
			peerMeter = &meter{phase: "postgres events table (peer)", unit: "tx"}
			peerOp = peer.op(opts.Seed, opts.Writers)
			r.Notes = append(r.Notes, fmt.Sprintf("peer: PostgreSQL %s started by the bench on a unix socket, table events(position identity, stream uuid, version bigint, data bytea of %d bytes: the stored message's size, unique (stream, version)), "+
				"one INSERT per command in its own transaction, fsync and synchronous_commit on (concurrent commits share a WAL flush), %d connections; its CPU is another process's, not in cpu us/op",
				peer.version(ctx), msgSize(sample), opts.Writers))
		}
	default:
		return nil, fmt.Errorf("append: unknown peer %q (known: %s)", opts.Peer, PeerPostgres)
	}
	rounds := max(1, int(opts.Duration/time.Second))
	for round := range rounds {
		e.progress("append: round %d/%d: raw durable publishes, then commands through domain/cases", round+1, rounds)
		if err := rawMeter.run(ctx, opts.Writers, opts.Duration/time.Duration(rounds), pub); err != nil {
			return nil, err
		}
		if err := domainMeter.run(ctx, opts.Writers, opts.Duration/time.Duration(rounds), record); err != nil {
			return nil, err
		}
		if peerMeter != nil {
			if err := peerMeter.run(ctx, opts.Writers, opts.Duration/time.Duration(rounds), peerOp); err != nil {
				return nil, err
			}
		}
	}
	if st := e.store.GroupStats(); st.Batches > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("group commit: %d of the appends went out in %d atomic batches (%.1f per batch), %d batches refused as a whole and split",
			st.Appends, st.Batches, float64(st.Appends)/float64(st.Batches), st.Refused))
	} else {
		r.Notes = append(r.Notes, "group commit: no atomic batch (every append published alone)")
	}
	raw, domainRow := rawMeter.row(), domainMeter.row()
	r.Rows = append(r.Rows, raw, domainRow)
	r.Ratios = append(r.Ratios, ratio("append via domain / raw durable publish", domainRow.Rate/raw.Rate, 0.8, false))
	if peerMeter != nil {
		pg := peerMeter.row()
		r.Rows = append(r.Rows, pg)
		r.Ratios = append(r.Ratios, ratio("append via domain / postgres peer", domainRow.Rate/pg.Rate, 1.5, false))
	}
	return r, nil
}

// benchActor is the coordinator who records every command of the append
// scenario.
var benchActor = domain.Actor{Institution: "ase-35", Professional: "Référent ASE"}

// openCases opens n cases through the service.
func openCases(ctx context.Context, svc *cases.Service, n int) ([]domain.CaseID, error) {
	ids := make([]domain.CaseID, n)
	for i := range ids {
		ids[i] = uuid.New()
		_, err := svc.Record(ctx, cases.Request{CaseID: ids[i], Command: domain.Command{
			Type: domain.CaseOpened, Role: domain.RoleProfessional, Actor: benchActor,
			Payload: &domain.CaseOpenedPayload{ChildReference: fmt.Sprintf("BENCH-%06d", i), LegalFrame: domain.FrameAdministrative,
				Departement: "35", Coordinator: benchActor.Institution, CoordinatorKind: domain.KindASE, CoordinatorName: "ASE 35",
				Referent: domain.Referent{Name: "Référent ASE"}, ChildBirthMonth: "2015-03"},
		}})
		if err != nil {
			return nil, fmt.Errorf("open case %d: %w", i, err)
		}
	}
	return ids, nil
}

// observation is a daily-life observation of about 200 characters, the
// common command.
func observation(id domain.CaseID, w, i int) cases.Request {
	return cases.Request{CaseID: id, Command: domain.Command{
		Type: domain.ObservationRecorded, Category: domain.CategoryDailyLife, Role: domain.RoleProfessional, Actor: benchActor,
		Payload: &domain.ObservationRecordedPayload{Impact: "positive",
			Summary: fmt.Sprintf("Observation %d-%d : a participé à l'atelier cuisine avec le groupe, s'est montré calme et attentif, "+
				"a aidé un plus jeune à mettre la table. Bonne nuit, coucher sans difficulté.", w, i)},
	}}
}

// sampleMessage records one observation and returns its message as stored.
func sampleMessage(ctx context.Context, s *mjs.Store, svc *cases.Service, id domain.CaseID) (*jetstream.RawStreamMsg, error) {
	if _, err := svc.Record(ctx, observation(id, 0, 0)); err != nil {
		return nil, err
	}
	stream, err := s.JetStream().Stream(ctx, s.StreamName())
	if err != nil {
		return nil, err
	}
	return stream.GetLastMsgForSubject(ctx, s.Subject(id))
}

func msgSize(m *jetstream.RawStreamMsg) int {
	n := len(m.Subject) + len(m.Data)
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// rawStream is the stream of the raw phases: the events stream's storage
// settings, its own subjects.
func rawStream(ctx context.Context, s *mjs.Store, name string) (jetstream.Stream, error) {
	return s.JetStream().CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{"bench." + name + ".*"}, Storage: jetstream.FileStorage, Replicas: 1,
		Retention: jetstream.LimitsPolicy, MaxMsgs: -1, MaxBytes: -1, Discard: jetstream.DiscardNew, Duplicates: mjs.DefaultDedupWindow,
	})
}

// rawPublisher returns an operation publishing the sample's headers and
// body as a plain durable publish (waiting for its acknowledgement), on one
// of Cases subjects of a stream of its own, and what deletes that stream.
func rawPublisher(ctx context.Context, s *mjs.Store, sample *jetstream.RawStreamMsg, opts Options) (func(context.Context, int, int) error, func(), error) {
	const name = "RAW_APPEND"
	if _, err := rawStream(ctx, s, name); err != nil {
		return nil, nil, err
	}
	header := nats.Header{}
	for k, vs := range sample.Header {
		if k != jetstream.MsgIDHeader && k != jetstream.ExpectedLastSubjSeqHeader {
			header[k] = vs
		}
	}
	subjects := make([]string, opts.Cases)
	for i := range subjects {
		subjects[i] = "bench." + name + "." + uuid.NewString()
	}
	js := s.JetStream()
	rnd := make([]*rand.Rand, opts.Writers)
	for w := range rnd {
		rnd[w] = rand.New(rand.NewPCG(uint64(opts.Seed)+1, uint64(w)))
	}
	pub := func(ctx context.Context, w, _ int) error {
		_, err := js.PublishMsg(ctx, &nats.Msg{Subject: subjects[rnd[w].IntN(len(subjects))], Header: header, Data: sample.Data})
		return err
	}
	return pub, func() { js.DeleteStream(context.Background(), name) }, nil
}
