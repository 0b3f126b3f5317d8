package accesslog

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Group commit (docs/store.md, "Group commit of the access log").
//
// The server fsyncs every message it stores, one after another: one
// message per record held the log to about a thousand records a second,
// and each read waited for its turn. Concurrent records now share one
// durable write: Record queues its record and waits; one flush at a time
// publishes every record queued as one message, a batch, to the log's
// write-ahead stream <stream>_WAL (subject <prefix>wal.<writer>, one
// writer per Log), and answers each Record once the server has
// acknowledged the batch, that is once it is on disk. Records queued
// while a batch is being written go into the next one, so batches grow
// with the load and a record waits for at most two writes.
//
// The queries, the seals and the retention stay on the records stream,
// one record per message on its subject as before: the indexer copies
// each batch's records there after the batch is durable, in JetStream
// atomic batches (one write to disk for all of them), each record with
// a message id naming its batch and place, so that a copy made twice is
// stored once. The write-ahead stream is purged of what was copied. A
// crash between the two leaves records in the write-ahead stream only:
// Open copies them (reconcile.go). Access, Seal and VerifySeals first
// wait until what this Log recorded has been copied, so that a Log reads
// its own records.

const (
	maxBatchRecords = 1000      // the server's default limit of an atomic batch
	maxBatchBytes   = 512 << 10 // well under the default 1 MiB message limit
	walTimeout      = 10 * time.Second
	walVersion      = 1
	// maxFlushes batches may be in flight at once. The server writes a
	// stream's messages one after another: two in flight measured no
	// better than one (docs/store.md).
	maxFlushes = 1
)

// pendingRecord is a record queued by Record, answered on done.
type pendingRecord struct {
	subject string
	data    []byte
	done    chan error
}

// walBatch is a durable batch: its sequence in the write-ahead stream and
// its records.
type walBatch struct {
	writer string
	seq    uint64
	recs   []walRecord
}

type walRecord struct {
	subject string
	data    []byte
}

// msgID names the i-th record of a batch, for the records stream's
// de-duplication.
func (b walBatch) msgID(i int) string {
	return b.writer + "." + strconv.FormatUint(b.seq, 10) + "." + strconv.Itoa(i)
}

type groupCommit struct {
	l       *Log
	writer  string // this Log's write-ahead subject's last token
	noIndex bool   // tests: batches stay in the write-ahead stream, as after a crash

	mu       sync.Mutex
	pending  []*pendingRecord
	flushing int // flushes running, up to maxFlushes

	imu      sync.Mutex
	queue    []walBatch
	indexing bool
	durable  uint64        // records of this Log durable in the write-ahead stream
	indexed  uint64        // of them, copied to the records stream
	ierr     error         // the indexer's last failure, nil once it copied again
	changed  chan struct{} // closed when indexed or ierr change
	hurry    chan struct{} // caughtUp asks the indexer not to wait for its pace
	lastPurg time.Time
}

func newGroupCommit(l *Log) *groupCommit {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &groupCommit{l: l, writer: hex.EncodeToString(b[:]), changed: make(chan struct{}), hurry: make(chan struct{}, 1)}
}

// record queues a record and waits until it is durable.
func (g *groupCommit) record(ctx context.Context, subject string, data []byte) error {
	p := &pendingRecord{subject: subject, data: data, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, p)
	if g.flushing < maxFlushes {
		g.flushing++
		go g.flush()
	}
	g.mu.Unlock()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// The record may still be written: a record of a read not
		// served, as when an acknowledgement is lost.
		return ctx.Err()
	}
}

// flush writes the queued records, a batch at a time, until none is left.
func (g *groupCommit) flush() {
	for {
		g.mu.Lock()
		n, size := 0, 0
		for n < len(g.pending) && n < maxBatchRecords {
			sz := len(g.pending[n].subject) + len(g.pending[n].data) + 2*binary.MaxVarintLen32
			if n > 0 && size+sz > maxBatchBytes {
				break
			}
			size += sz
			n++
		}
		if n == 0 {
			g.pending = nil
			g.flushing--
			g.mu.Unlock()
			return
		}
		batch := g.pending[:n:n]
		g.pending = slices.Clone(g.pending[n:])
		g.mu.Unlock()

		seq, err := g.writeWAL(batch)
		if err == nil {
			b := walBatch{writer: g.writer, seq: seq, recs: make([]walRecord, len(batch))}
			for i, p := range batch {
				b.recs[i] = walRecord{subject: p.subject, data: p.data}
			}
			g.enqueue(b)
		}
		for _, p := range batch {
			p.done <- err
		}
	}
}

// writeWAL publishes a batch to the write-ahead stream and returns its
// sequence once the server has it on disk.
func (g *groupCommit) writeWAL(batch []*pendingRecord) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), walTimeout)
	defer cancel()
	ack, err := g.l.js.Publish(ctx, g.l.cfg.walSubject(g.writer), encodeWAL(batch))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// encodeWAL: a version byte, then for each record its subject and its
// bytes, each after its length (uvarint). The bytes are those the records
// stream gets, exactly.
func encodeWAL(batch []*pendingRecord) []byte {
	size := 1
	for _, p := range batch {
		size += len(p.subject) + len(p.data) + 2*binary.MaxVarintLen32
	}
	b := make([]byte, 1, size)
	b[0] = walVersion
	for _, p := range batch {
		b = binary.AppendUvarint(b, uint64(len(p.subject)))
		b = append(b, p.subject...)
		b = binary.AppendUvarint(b, uint64(len(p.data)))
		b = append(b, p.data...)
	}
	return b
}

var errBadWAL = errors.New("accesslog: unreadable write-ahead batch")

func decodeWAL(b []byte) ([]walRecord, error) {
	if len(b) == 0 || b[0] != walVersion {
		return nil, errBadWAL
	}
	b = b[1:]
	var out []walRecord
	next := func() ([]byte, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, false
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, true
	}
	for len(b) > 0 {
		s, ok1 := next()
		d, ok2 := next()
		if !ok1 || !ok2 {
			return nil, errBadWAL
		}
		out = append(out, walRecord{subject: string(s), data: d})
	}
	return out, nil
}

// enqueue hands a durable batch to the indexer.
func (g *groupCommit) enqueue(b walBatch) {
	g.imu.Lock()
	defer g.imu.Unlock()
	g.durable += uint64(len(b.recs))
	if g.noIndex {
		return
	}
	g.queue = append(g.queue, b)
	if !g.indexing {
		g.indexing = true
		go g.index()
	}
}

// caughtUp waits until every record this Log made durable before the call
// is in the records stream. It fails at once while the indexer fails.
func (g *groupCommit) caughtUp(ctx context.Context) error {
	g.imu.Lock()
	target := g.durable
	if g.indexed < target {
		select {
		case g.hurry <- struct{}{}:
		default:
		}
	}
	for g.indexed < target {
		if g.ierr != nil {
			err := g.ierr
			g.imu.Unlock()
			return fmt.Errorf("records not yet copied from the write-ahead stream: %w", err)
		}
		changed := g.changed
		g.imu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
		g.imu.Lock()
	}
	g.imu.Unlock()
	return nil
}

// signal wakes caughtUp. imu held.
func (g *groupCommit) signal() {
	close(g.changed)
	g.changed = make(chan struct{})
}
