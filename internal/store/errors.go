package store

import "errors"

// ErrNotFound is returned when the requested row does not exist, or belongs
// to another account.
var ErrNotFound = errors.New("not found")

// ErrInvalidCursor is returned by ListCalls for a cursor it did not issue.
var ErrInvalidCursor = errors.New("invalid cursor")

// ErrVersionMismatch is returned by PutConfig and EditConfig when
// Change.IfVersion is not the stored version: someone else wrote the
// configuration in between, and nothing was written.
var ErrVersionMismatch = errors.New("the configuration changed since the version given")
