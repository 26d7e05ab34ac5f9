package state

import "errors"

// ErrNotFound is returned by writes that name an object the store does
// not have.
var ErrNotFound = errors.New("not found")
