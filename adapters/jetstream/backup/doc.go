// Package backup backs up a running maillage store on NATS JetStream to
// one file, and restores it into a new data directory (maillage backup,
// maillage restore; docs/operations.md, "Backup and restore").
//
// A backup holds the events stream, the signed heads, the access log (its
// records, its write-ahead batches and its seals) as JetStream snapshots
// (snapshot.go: the streams as they were, sequence numbers and timestamps
// included), the current entry of every case in the keys bucket (its key,
// or its erasure record: never a key the bucket still keeps as history),
// and the files of the data directory it is given (the institution
// directory; the signing key only when asked). It leaves out what the
// server rebuilds: the read models' snapshot, the partner feeds (on a
// server of their own, refilled by the relay from the events).
//
// Consistent means: the restored store is one a reader could have seen.
// Each stream's snapshot is a prefix of that stream taken at one moment,
// and the streams are taken one after another in an order where each
// depends only on the ones taken after it:
//
//   - signed heads before events: a head names a version already stored,
//     so every restored head names a restored version;
//   - access seals before records, and write-ahead batches before records:
//     a seal covers records already stored; a batch is copied to the
//     records before it is purged, so each record is in one or the other;
//   - access records before events: a record names events already read;
//   - events, then the keys bucket: a case's key is made before its first
//     event, so every restored event has its key (or its erasure).
//
// An event's case chain is a prefix of the case's chain (a message holds
// whole appends), so every chain verifies.
//
// The erasure rule: an old backup must not bring an erased case back. The
// keys bucket holds, for an erased case, its erasure record instead of its
// key; a backup holds the records of every erasure made before it read the
// bucket (Summary.KeysFrom), and Restore takes the erasures recorded since
// (an erasure list: Backup with WithErasuresOnly on the live store, taken
// after the backup): a case erased there gets its erasure record and its
// key is never written to the new store.
package backup
