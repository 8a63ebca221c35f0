package mountctl

import (
	"bufio"
	"io"
	"sync"
)

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

// syncWriter serialises writes (loggers write from handler goroutines).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
