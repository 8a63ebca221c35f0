package index

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Path limits.
const (
	MaxPathLength    = 1024
	MaxSegmentLength = 255
	MaxPathDepth     = 32
)

// ErrInvalidPath is wrapped by every path validation error.
var ErrInvalidPath = errors.New("index: invalid path")

// ValidatePath checks an object path ("images/ubuntu.qcow2") and returns an
// error naming the rule it breaks.
func ValidatePath(p string) error {
	bad := func(rule string) error { return fmt.Errorf("%w %q: %s", ErrInvalidPath, p, rule) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxPathLength:
		return bad(fmt.Sprintf("longer than %d bytes", MaxPathLength))
	case !utf8.ValidString(p):
		return bad("not valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return bad("starts with /")
	case strings.HasSuffix(p, "/"):
		return bad("ends with /")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return bad(fmt.Sprintf("control character %U", r))
		}
	}
	segs := strings.Split(p, "/")
	if len(segs) > MaxPathDepth {
		return bad(fmt.Sprintf("deeper than %d segments", MaxPathDepth))
	}
	for _, s := range segs {
		switch {
		case s == "":
			return bad("empty segment")
		case s == "." || s == "..":
			return bad(fmt.Sprintf("%q segment", s))
		case len(s) > MaxSegmentLength:
			return bad(fmt.Sprintf("segment longer than %d bytes", MaxSegmentLength))
		}
	}
	return nil
}
