package store

import "errors"

// ErrNotFound is returned when the requested row does not exist, or belongs
// to another account.
var ErrNotFound = errors.New("not found")

// ErrInvalidCursor is returned by ListCalls for a cursor it did not issue.
var ErrInvalidCursor = errors.New("invalid cursor")
