package dk

import (
	"errors"
	"fmt"
)

// Error codes. Each edge (SSH commands, dashboard, git) maps these once.
const (
	EINVALID   = "invalid"   // the request is malformed; the user must change it
	ENOTFOUND  = "not_found" // the thing does not exist (or the caller may not see it)
	ECONFLICT  = "conflict"  // the request clashes with current state (exists, busy, locked)
	EFORBIDDEN = "forbidden" // the caller is known but may not do this
	ETOOLARGE  = "too_large" // the request is over a configured limit
	EFAILED    = "failed"    // the user's work failed (build failed, app never listened)
	EINTERNAL  = "internal"  // dk itself failed; details are in the server log
)

// Error is dk's one error type: a code for machines and a message for humans.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain,
// EINTERNAL for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the human message of the first *Error in err's chain,
// or "internal error" for errors that are not dk's own (they are logged in full).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
