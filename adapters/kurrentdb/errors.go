package kurrentdb

import (
	"context"
	"errors"
	"fmt"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/maillage/maillage/domain"
)

// isCode reports whether err is a client error with the given code.
func isCode(err error, code esdb.ErrorCode) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == code
}

// fail maps a client error to the store's errors: a conflict is
// domain.ErrVersionConflict; a deleted case stream is an error of its own;
// anything else (server away, timeout, not the leader, refused
// credentials, cancelled context) is domain.ErrStoreUnavailable wrapping
// the cause. A client that gave up reaching the server is replaced.
func (s *Store) fail(ctx context.Context, op string, c *esdb.Client, err error) error {
	var e *esdb.Error
	if errors.As(err, &e) {
		switch e.Code() {
		case esdb.ErrorCodeWrongExpectedVersion:
			return fmt.Errorf("kurrentdb: %s: %w: %w", op, domain.ErrVersionConflict, err)
		case esdb.ErrorCodeStreamDeleted:
			return fmt.Errorf("kurrentdb: %s: the case stream was deleted in KurrentDB: %w", op, err)
		case esdb.ErrorCodeAccessDenied, esdb.ErrorCodeUnauthenticated:
			return fmt.Errorf("kurrentdb: %s: %w: access refused (the connection string's user must read $all and write the case streams): %w", op, domain.ErrStoreUnavailable, err)
		case esdb.ErrorCodeConnectionClosed:
			s.renew(c)
		}
	}
	if s.isClosed() {
		return errClosed
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("kurrentdb: %s: %w: %w", op, domain.ErrStoreUnavailable, cerr)
	}
	return fmt.Errorf("kurrentdb: %s: %w: %w", op, domain.ErrStoreUnavailable, err)
}
