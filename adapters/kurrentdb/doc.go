// Package kurrentdb is the domain.EventStore on KurrentDB (formerly
// EventStoreDB), through its gRPC client
// github.com/EventStore/EventStore-Client-Go/v4 (v4.2.0). It passes the same
// conformance suite (adapters/storetest) as adapters/jetstream. In CI it runs
// against kurrentdbtest.TestDouble, an in-process gRPC server built from the
// client's own protobuf definitions; with MAILLAGE_KURRENTDB_URL set, against
// a real server. docs/scale-out.md describes the deployment.
//
// # Layout
//
// One stream per case, <prefix><case id> (prefix maillage-case-). Each domain
// event is one KurrentDB event: its id is the domain event's id, its type the
// event type, its data the JSON of the domain event (envelope and payload,
// without the position; a payload JSON encoding would not give back byte for
// byte is kept as base64), its metadata JSON {"$correlationId",
// "$causationId", "firstSequence" (of its append), "attempt" (the Append call
// that wrote it)}. An Append is one append request: atomic on the server.
//
// # Concurrency and idempotency
//
// A case's version is its event count; the append expects the stream at
// revision version-1 (no stream for version 0), never Any. The server
// answers:
//
//   - written: the batch's events, read back from the stream, carry this
//     call's attempt id: a new append. KurrentDB also answers "written" to a
//     retry of a batch recorded at the same place whose event ids match,
//     without comparing content: the events read back then carry another
//     attempt id, and are compared with the batch (ids, leaf and chain hashes,
//     canonical encoding): the same is the original result with Duplicate set,
//     other content is ErrIdempotencyMismatch;
//   - wrong expected version: the case's events after the expected version
//     are read and compared the same way: the batch recorded there is the
//     original result (Duplicate), its ids there with other content or at
//     other places is ErrIdempotencyMismatch, anything else is
//     ErrVersionConflict.
//
// So a retry is recognised whenever it comes, also after restarts, exactly
// as on JetStream. The read back costs one read per append. A batch reusing
// an event id recorded in another case is not detected (nor is it by the
// server).
//
// # Positions
//
// Every record of $all has a (commit, prepare) position: byte offsets in the
// transaction log. An append is an implicit transaction in which each event
// gets its own log position as both. domain.Position = commit<<16 | index,
// the index being the event's index in its append (sequence -
// firstSequence): positions grow with $all order, are the same from a stream
// read (KurrentDB gives $all positions on stream reads since 22.6) and from
// $all, and an event's position is derived from the event alone. Events of
// the legacy explicit transactions (TCP API, never written by this adapter)
// share a commit position and are told apart by the index. The log may grow
// to 2^48 bytes; an append holds at most MaxBatch (65536) events.
//
// # Reads
//
// ReadCase reads the case's stream forwards from the leader, page by page.
// ReadAll reads $all forwards from after's record (commit position
// after>>16), up to the last record when it started, and keeps the records
// of the case streams: the v4 client has no server-side filter on reads of
// $all. Follow catches up the same way, then subscribes to $all with a
// server-side stream prefix filter, remembers the last event and checkpoint,
// and subscribes again after a drop (see Follow).
//
// # Errors
//
// Client errors are mapped with errors.As on *esdb.Error: wrong expected
// version as above; anything that leaves the outcome unknown (server away,
// timeout, not leader, cancelled context, refused credentials) is
// domain.ErrStoreUnavailable wrapping the cause, and safe to retry. The
// client closes itself for good when it fails to discover the server for
// about a second; the store then replaces it, so a server that comes back is
// used again. The client is not safe to close while a call uses it (it
// sends on a channel Close closes): Close cancels the calls in progress and
// waits for them first.
//
// # Access
//
// The connection string's user writes the case streams and reads $all (by
// default only members of $admins read $all).
package kurrentdb
