package kurrentdb

import (
	"fmt"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/maillage/maillage/domain"
)

// MaxBatch is the most events one Append may hold: the index of an event in
// its append takes the low 16 bits of its position.
const MaxBatch = 1 << indexBits

const (
	indexBits = 16
	indexMask = 1<<indexBits - 1
	// maxCommit is the highest commit position a domain.Position can hold:
	// 2^48 bytes (256 TiB) of transaction log.
	maxCommit = 1<<(64-indexBits) - 1
)

// EncodePosition returns the domain position of the event at index (from 0)
// in its append, whose $all commit position is commit: commit<<16 | index.
//
// An append is an implicit transaction in which KurrentDB gives every event
// its own log position as both commit and prepare position, so the commit
// position alone orders the events; the index keeps positions distinct and
// growing when several events share one commit position (the legacy explicit
// transactions of the TCP API, which this adapter never writes).
func EncodePosition(commit uint64, index int) (domain.Position, error) {
	if commit > maxCommit {
		return 0, fmt.Errorf("kurrentdb: commit position %d does not fit in a position (at most 2^48)", commit)
	}
	if index < 0 || index > indexMask {
		return 0, fmt.Errorf("kurrentdb: index %d in an append, want 0 to %d", index, indexMask)
	}
	return domain.Position(commit<<indexBits | uint64(index)), nil
}

// SplitPosition is the inverse of EncodePosition.
func SplitPosition(p domain.Position) (commit uint64, index int) {
	return uint64(p) >> indexBits, int(uint64(p) & indexMask)
}

// startOf returns the $all position to read forwards from to find every
// event with a domain position greater than after: the record at after's
// commit position (reads from a position include the record there, which
// the reader skips when it is not after after), or the start of $all.
func startOf(after domain.Position) esdb.AllPosition {
	if after == 0 {
		return esdb.Start{}
	}
	commit, _ := SplitPosition(after)
	return esdb.Position{Commit: commit, Prepare: commit}
}

// later reports whether $all position a comes after b.
func later(a, b esdb.Position) bool {
	return a.Commit > b.Commit || a.Commit == b.Commit && a.Prepare > b.Prepare
}
