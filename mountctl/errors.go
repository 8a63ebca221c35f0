package mountctl

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an Error; each kind has one HTTP status.
type Kind string

// Error kinds.
const (
	KindInvalid        Kind = "invalid"         // 400: bad input; Field names it
	KindUnauthorized   Kind = "unauthorized"    // 401: missing or wrong token
	KindNotFound       Kind = "not_found"       // 404: unknown path or route
	KindMethod         Kind = "method"          // 405: route exists, method does not
	KindConflict       Kind = "conflict"        // 409: clashes with the index
	KindTooLarge       Kind = "too_large"       // 413: request body over the limit
	KindInternal       Kind = "internal"        // 500: anything unclassified
	KindNotImplemented Kind = "not_implemented" // 501: not built yet
	KindOrigin         Kind = "origin"          // 502: the HTTP origin failed
	KindUnavailable    Kind = "unavailable"     // 503: etcd unreachable
	KindTimeout        Kind = "timeout"         // 504: gave up waiting
)

var kindStatus = map[Kind]int{
	KindInvalid:        http.StatusBadRequest,
	KindUnauthorized:   http.StatusUnauthorized,
	KindNotFound:       http.StatusNotFound,
	KindMethod:         http.StatusMethodNotAllowed,
	KindConflict:       http.StatusConflict,
	KindTooLarge:       http.StatusRequestEntityTooLarge,
	KindInternal:       http.StatusInternalServerError,
	KindNotImplemented: http.StatusNotImplemented,
	KindOrigin:         http.StatusBadGateway,
	KindUnavailable:    http.StatusServiceUnavailable,
	KindTimeout:        http.StatusGatewayTimeout,
}

// Error is an error the API caller may see. A Controller returns one (or
// wraps one) for every failure the caller should be able to tell apart;
// any other error reaches the caller as KindInternal. The server finds it
// with errors.As and answers with its Kind's status and this body:
//
//	{"error": {"kind": "origin", "message": "...", "origin_status": 404}}
//
// The client turns such an answer back into an *Error with the same
// Message, so the CLI prints what the server said.
type Error struct {
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
	// Field names the bad request field (KindInvalid).
	Field string `json:"field,omitempty"`
	// OriginStatus is the HTTP status the origin answered (KindOrigin), 0
	// if it did not answer.
	OriginStatus int `json:"origin_status,omitempty"`

	err error // the cause, server side only
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause (nil on the client side).
func (e *Error) Unwrap() error { return e.err }

// HTTPStatus returns the status code of e's kind.
func (e *Error) HTTPStatus() int {
	if s, ok := kindStatus[e.Kind]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Invalid reports bad input in field. The message starts with the field's
// name.
func Invalid(field string, err error) *Error {
	return &Error{Kind: KindInvalid, Field: field, Message: field + ": " + err.Error(), err: err}
}

// Invalidf is Invalid with a formatted cause.
func Invalidf(field, format string, args ...any) *Error {
	return Invalid(field, fmt.Errorf(format, args...))
}

// NotFound reports an unknown path.
func NotFound(err error) *Error { return wrap(KindNotFound, err) }

// Conflict reports a clash with the index (the path is taken, or is a
// directory, or the other way round).
func Conflict(err error) *Error { return wrap(KindConflict, err) }

// OriginFailed reports an origin failure. status is what the origin
// answered (0: it did not answer, or answered wrongly).
func OriginFailed(status int, err error) *Error {
	e := wrap(KindOrigin, err)
	e.OriginStatus = status
	return e
}

// Unavailable reports that etcd (the index) could not be reached.
func Unavailable(err error) *Error { return wrap(KindUnavailable, err) }

// Timeout reports that a wait ran out of time.
func Timeout(err error) *Error { return wrap(KindTimeout, err) }

// NotImplemented reports an operation this build cannot do yet.
func NotImplemented(msg string) *Error {
	return &Error{Kind: KindNotImplemented, Message: msg}
}

func wrap(k Kind, err error) *Error {
	return &Error{Kind: k, Message: err.Error(), err: err}
}

// errorBody is the JSON body of every error answer.
type errorBody struct {
	Error *Error `json:"error"`
}

// asError classifies err for an answer: an *Error in its chain keeps its
// kind; anything else is KindInternal with err's message.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if _, ok := kindStatus[e.Kind]; ok {
			return e
		}
		return &Error{Kind: KindInternal, Message: e.Message, err: e}
	}
	return &Error{Kind: KindInternal, Message: err.Error(), err: err}
}

// kindOf returns the kind of an HTTP status, for answers whose body is not
// ours (a proxy, or a server of another version).
func kindOf(status int) Kind {
	for k, s := range kindStatus {
		if s == status {
			return k
		}
	}
	switch {
	case status >= 500:
		return KindInternal
	default:
		return KindInvalid
	}
}
