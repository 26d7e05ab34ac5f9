package gateway

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// accessEntry is one access log line.
type accessEntry struct {
	Time       string  `json:"time"`
	Host       string  `json:"host"`
	Method     string  `json:"method"`
	Path       string  `json:"path"`
	Status     int     `json:"status"`
	Bytes      int64   `json:"bytes"`
	DurationMS float64 `json:"duration_ms"`
	Upstream   string  `json:"upstream,omitempty"`
	Namespace  string  `json:"namespace,omitempty"`
	Service    string  `json:"service,omitempty"`
}

// accessLog appends JSON lines to a file.
type accessLog struct {
	// mu guards f.
	mu sync.Mutex
	f  *os.File
}

func openAccessLog(path string) (*accessLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("gateway access_log: %w", err)
	}
	return &accessLog{f: f}, nil
}

func (a *accessLog) write(e *accessEntry) {
	line, err := json.Marshal(e)
	if err != nil {
		return
	}
	line = append(line, '\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f != nil {
		_, _ = a.f.Write(line)
	}
}

func (a *accessLog) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f != nil {
		_ = a.f.Close()
		a.f = nil
	}
}
