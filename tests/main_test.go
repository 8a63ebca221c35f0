package tests

import (
	"os"
	"testing"
)

// TestMain removes the commands bin() built once the package's tests end.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}
