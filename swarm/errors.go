package swarm

import (
	"errors"
	"fmt"
	"net/http"
)

var (
	// ErrOriginChanged means the origin's validators (ETag, Last-Modified or
	// length) changed while an object was read from it.
	ErrOriginChanged = errors.New("swarm: origin changed")
	// ErrOriginLength means the origin sent more or fewer bytes than it
	// announced.
	ErrOriginLength = errors.New("swarm: origin body length mismatch")
	// ErrBadInfo means info bytes do not describe an object swarmfs can
	// hold (not bencoded, multi-file, no pieces, too large).
	ErrBadInfo = errors.New("swarm: bad info")
	// ErrTooLarge means an object's info would exceed Config.MaxInfoBytes.
	ErrTooLarge = errors.New("swarm: object info too large")
	// ErrClosed means the Client was closed.
	ErrClosed = errors.New("swarm: client closed")
	// ErrNoSpace: the data directory cannot hold the object.
	ErrNoSpace = errors.New("swarm: not enough disk space")
)

// OriginError is an unexpected HTTP status from the origin.
type OriginError struct {
	URL    string
	Status int
}

func (e *OriginError) Error() string {
	return fmt.Sprintf("origin %s answered %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// Temporary reports whether retrying may help (5xx, 408 and 429).
func (e *OriginError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// retryable reports whether an origin transfer error is worth a retry.
func retryable(err error) bool {
	if errors.Is(err, ErrOriginChanged) || errors.Is(err, ErrOriginLength) || errors.Is(err, ErrClosed) {
		return false
	}
	var oe *OriginError
	if errors.As(err, &oe) {
		return oe.Temporary()
	}
	var pe *permanentError
	return !errors.As(err, &pe)
}

// permanentError marks a local failure (disk, bad URL) that retrying does not
// fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }
