package index

import (
	"errors"
	"strings"
	"testing"
)

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path string
		werr string
	}{
		{"images/ubuntu-24.04.qcow2", ""},
		{"a", ""},
		{"models/llama/3/weights.bin", ""},
		{"données/été.bin", ""},
		{"", "empty"},
		{"/abs", "starts with /"},
		{"dir/", "ends with /"},
		{"a//b", "empty segment"},
		{"a/./b", `"." segment`},
		{"a/../b", `".." segment`},
		{"..", `".." segment`},
		{"a/b\x00c", "control character U+0000"},
		{"a\nb", "control character U+000A"},
		{"a\x7fb", "control character U+007F"},
		{"bad\xffutf8", "not valid UTF-8"},
		{strings.Repeat("a", 256), "segment longer than 255 bytes"},
		{strings.Repeat("a/", 32) + "a", "deeper than 32 segments"},
		{strings.Repeat("abcdefgh/", 114) + "x", "longer than 1024 bytes"},
	}
	for _, tt := range tests {
		err := ValidatePath(tt.path)
		if tt.werr == "" {
			if err != nil {
				t.Errorf("ValidatePath(%q) = %v; want nil", tt.path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.werr) || !errors.Is(err, ErrInvalidPath) {
			t.Errorf("ValidatePath(%q) = %v; want ErrInvalidPath with %q", tt.path, err, tt.werr)
		}
	}
}
