package structs

import (
	"errors"
	"net/http"
	"strings"
)

// CodedError is an error that crosses the wire: a short, stable,
// machine-readable Code, the HTTP status that fits it, and a message for
// people. net/rpc flattens errors to strings, so Error() renders
// "<code>: <message>" and ParseCodedError recovers the CodedError on the
// other side from the code registry; callers compare codes, never
// messages.
type CodedError struct {
	Status  int
	Code    string
	Message string
}

func (e *CodedError) Error() string { return e.Code + ": " + e.Message }

// Is lets errors.Is match any CodedError with the same code.
func (e *CodedError) Is(target error) bool {
	var t *CodedError
	return errors.As(target, &t) && t.Code == e.Code
}

// Error codes. New codes are added here and in codeStatus.
const (
	CodeNoLeader     = "no_leader"
	CodeNotFound     = "not_found"
	CodeInvalid      = "invalid_request"
	CodeConflict     = "conflict"
	CodeTooLarge     = "request_too_large"
	CodePermission   = "permission_denied"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
	CodeTimeout      = "timeout"
	CodeBadEvalToken = "bad_eval_token"
	// CodeOutcomeUnknown: the server lost leadership while a write was
	// being committed; it may or may not have been applied.
	CodeOutcomeUnknown = "outcome_unknown"
	// CodeTooManyRequests: the client holds more connections or
	// requests than the agent allows one client; retry later.
	CodeTooManyRequests = "too_many_requests"
	// CodeTokenNotFound: the request's ACL token is unknown or expired.
	CodeTokenNotFound = "token_not_found"
	// CodeGone: what the request asks for is no longer kept (an event
	// stream resuming from an index older than the buffer).
	CodeGone = "gone"
)

var codeStatus = map[string]int{
	CodeNoLeader:        http.StatusServiceUnavailable,
	CodeNotFound:        http.StatusNotFound,
	CodeGone:            http.StatusGone,
	CodeInvalid:         http.StatusBadRequest,
	CodeConflict:        http.StatusConflict,
	CodeTooLarge:        http.StatusRequestEntityTooLarge,
	CodePermission:      http.StatusForbidden,
	CodeUnavailable:     http.StatusServiceUnavailable,
	CodeInternal:        http.StatusInternalServerError,
	CodeTimeout:         http.StatusGatewayTimeout,
	CodeBadEvalToken:    http.StatusConflict,
	CodeOutcomeUnknown:  http.StatusServiceUnavailable,
	CodeTooManyRequests: http.StatusTooManyRequests,
	CodeTokenNotFound:   http.StatusForbidden,
}

// NewError returns a CodedError with the status registered for code.
func NewError(code, message string) *CodedError {
	status, ok := codeStatus[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	return &CodedError{Status: status, Code: code, Message: message}
}

// ErrNoLeader is returned when the cluster has no leader to take a write
// or a consistent read, after waiting a bounded time for one.
var ErrNoLeader = NewError(CodeNoLeader, "no cluster leader")

// ParseCodedError recovers a CodedError from err: err itself if it is
// one, or one rebuilt from a "<code>: <message>" string with a
// registered code (an error that crossed net/rpc). It returns nil for
// anything else.
func ParseCodedError(err error) *CodedError {
	if err == nil {
		return nil
	}
	var ce *CodedError
	if errors.As(err, &ce) {
		return ce
	}
	s := err.Error()
	code, msg, ok := strings.Cut(s, ": ")
	if !ok {
		return nil
	}
	if _, known := codeStatus[code]; !known {
		return nil
	}
	return NewError(code, msg)
}
