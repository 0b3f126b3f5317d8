// Package jetstream is the domain.EventStore on NATS JetStream, embedded in
// the process (WithEmbedded) or on an external server or cluster (WithURL).
// docs/store.md describes the design; in short:
//
// # Layout
//
// One stream (MAILLAGE_EVENTS, file storage, R=WithReplicas), one subject per
// case: <prefix>.<case id> (prefix maillage.events). Each Append is ONE
// message holding all the events of the batch: a publish of one message is
// atomic by construction, and about 15 times cheaper per command than a
// JetStream atomic batch publish (which costs about 2 ms on the server
// whatever its size).
//
// # Messages
//
// The body is the batch's events in sequence order, in the format named by
// the Maillage-Format header: FormatBinary (default, see binary.go: about 15
// times faster to decode than JSON, which matters for ReadAll) or FormatJSON
// (a JSON array of domain.Event). Both are always read. Headers:
//
//	Nats-Msg-Id                          id of the first event (de-duplication)
//	Nats-Expected-Last-Subject-Sequence  the optimistic concurrency check
//	Maillage-Case                        the case id
//	Maillage-First-Seq                   sequence of the first event
//	Maillage-Version                     sequence of the last event: the case's version after it
//	Maillage-Format                      body format
//
// # Positions
//
// An event's position is streamSeq<<16 | index, its message's stream
// sequence and its index in the message (from 0): at most MaxBatch (65536)
// events per Append. ReadAll(after) starts at message after>>16 and skips the
// events at or before after.
//
// # Concurrency and idempotency
//
// A case's version is its event count; NATS checks the stream sequence of
// the subject's last message (Nats-Expected-Last-Subject-Sequence, 0 for "no
// message yet"). The store keeps a cache case -> (version, sequence of the
// message that brought it there), learnt from its appends and reads, and on a
// miss reads the subject's last message (its Maillage-Version header). An
// append whose cached version differs from the expected one, or whose publish
// fails the sequence check, refreshes the head from the server: if the case
// is really at the expected version (the cache was stale) it publishes again;
// otherwise it reads the case's events after the expected version: the same
// events there mean the batch was already recorded (the original result,
// Duplicate set, whenever it was recorded, across restarts and beyond the
// de-duplication window); the batch's ids with other content is
// ErrIdempotencyMismatch; anything else is ErrVersionConflict. Within the
// de-duplication window, a batch whose first id is recorded elsewhere (in
// another case, at another place) is dropped by the server as a duplicate
// and reported as ErrIdempotencyMismatch; beyond it such reuse is not
// detected. Failures to reach the server are domain.ErrStoreUnavailable
// wrapping the cause.
//
// # Group commit
//
// An append that finds others of the store in flight waits; what waits then
// goes out together: from WithGroupCommit's size on (8) as one JetStream
// atomic batch, each message with its own expected subject sequence and
// message id, stored with one fsync or not at all (a refused batch is split
// and each append published alone, with the algorithm above), fewer as
// concurrent publishes. A lone append publishes at once. See groupcommit.go
// and docs/store.md.
//
// # Reads
//
// On a single replica, ReadCase uses batched direct gets of the case's
// subject (one request per 1000 messages); with replicas, where followers
// answer direct gets and may lag, it uses an ordered consumer (served from
// the stream leader) instead. ReadAll and Follow use ordered consumers
// (ephemeral, in memory, no acks), deleted when done. ReadAll stops after
// the messages pending when it started.
//
// # Durability
//
// The embedded server fsyncs every write (SyncAlways): nats-server's default
// of a sync every 2 minutes loses acknowledged writes on power loss. An
// external server's sync policy is its own configuration (set sync_interval:
// always on single nodes; clusters rely on replication). WithUnsyncedWrites
// turns the fsync off for loading benchmark datasets only.
package jetstream
