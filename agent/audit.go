package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// The audit log.
//
// With audit { enabled = true }, the agent that receives an HTTP
// request appends one JSON line (auditEntry) for every write (PUT,
// POST, DELETE, whatever its outcome: for a write forwarded to the
// servers, the status they answered) and for every denied request (any
// method answered 403: permission_denied or token_not_found). The line
// names the token by accessor ID and name, never by secret, and the
// path without the query string.
//
// The log fails open: a line that cannot be written (disk full, a
// directory that cannot be created) is logged and counted
// (drover_audit_write_failures_total), and the request is answered as
// if nothing happened. Nomad Enterprise can be set to refuse requests
// it cannot audit; an orchestrator that stops scheduling because a log
// disk filled up is worse for Drover's users than a gap in the audit
// log, which the metric makes visible.
//
// Lines are written under one lock, each with one write call, so they
// never interleave; the file rotates by size: audit.log becomes
// audit.log.1, audit.log.1 becomes audit.log.2, and so on up to
// max_files, the oldest deleted.

// Audit defaults.
const (
	defaultAuditMaxSizeMB = 100
	defaultAuditMaxFiles  = 5
	// auditFailureLogEvery spaces out the warnings of a failing audit
	// log, which would otherwise add a line per request to the agent's
	// own log.
	auditFailureLogEvery = time.Minute
)

// AuditConfig is the agent's audit block.
type AuditConfig struct {
	Enabled bool `hcl:"enabled,optional"`
	// Path is the log file; default <data_dir>/audit/audit.log.
	Path string `hcl:"path,optional"`
	// MaxSizeMB is the size at which the file is rotated (default 100).
	MaxSizeMB int `hcl:"max_size_mb,optional"`
	// MaxFiles is how many rotated files are kept besides the live one
	// (audit.log.1 ... audit.log.N; default 5).
	MaxFiles int `hcl:"max_files,optional"`
}

// merge overlays o onto c (either may be nil) and returns the result.
func (c *AuditConfig) merge(o *AuditConfig) *AuditConfig {
	out := &AuditConfig{}
	if c != nil {
		*out = *c
	}
	if o == nil {
		return out
	}
	if o.Enabled {
		out.Enabled = true
	}
	setString(&out.Path, o.Path)
	setInt(&out.MaxSizeMB, o.MaxSizeMB)
	setInt(&out.MaxFiles, o.MaxFiles)
	return out
}

func (c *AuditConfig) validate() error {
	if c == nil {
		return nil
	}
	if c.MaxSizeMB < 0 {
		return fmt.Errorf("audit max_size_mb = %d: want a positive number of megabytes (default %d)", c.MaxSizeMB, defaultAuditMaxSizeMB)
	}
	if c.MaxFiles < 0 {
		return fmt.Errorf("audit max_files = %d: want how many rotated files to keep, 1 or more (default %d)", c.MaxFiles, defaultAuditMaxFiles)
	}
	return nil
}

// auditSettings are an AuditConfig with its defaults applied.
type auditSettings struct {
	path     string
	maxBytes int64
	maxFiles int
}

func (c *AuditConfig) settings(dataDir string) auditSettings {
	s := auditSettings{path: c.Path, maxBytes: int64(c.MaxSizeMB) << 20, maxFiles: c.MaxFiles}
	if s.path == "" {
		s.path = filepath.Join(dataDir, "audit", "audit.log")
	}
	if s.maxBytes <= 0 {
		s.maxBytes = defaultAuditMaxSizeMB << 20
	}
	if s.maxFiles <= 0 {
		s.maxFiles = defaultAuditMaxFiles
	}
	return s
}

// auditEntry is one line of the audit log. The field order is the
// line's.
type auditEntry struct {
	// Time is when the answer was sent, RFC 3339 in UTC.
	Time string
	// AccessorID and TokenName name the token ("anonymous" for a
	// request without one); both are empty for a token that was not
	// found, and AccessorID is empty with ACLs off.
	AccessorID string
	TokenName  string
	// Namespace is the one the request named (?namespace=, or a job's
	// own), "" for requests outside namespaces.
	Namespace string
	Method    string
	// Path is the URL path, without the query string.
	Path   string
	Status int
	// Code is the error's code (permission_denied, token_not_found,
	// ...); "" for a success.
	Code string
}

// auditLog appends auditEntry lines to a size-rotated file. Safe for
// concurrent use.
type auditLog struct {
	settings auditSettings
	logger   hclog.Logger

	lines, failures prometheus.Counter
	registry        *prometheus.Registry

	// mu guards f, size and lastWarn, and serializes writes.
	mu       sync.Mutex
	f        *os.File
	size     int64
	lastWarn time.Time
}

func newAuditLog(s auditSettings, logger hclog.Logger) *auditLog {
	l := &auditLog{settings: s, logger: logger.Named("audit"), registry: prometheus.NewRegistry(),
		lines: prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_audit_lines_total",
			Help: "Lines appended to the audit log."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_audit_write_failures_total",
			Help: "Audit lines that could not be written (the request was answered anyway)."}),
	}
	l.registry.MustRegister(l.lines, l.failures)
	return l
}

// write appends e. A failure is logged and counted, never returned:
// the audit log does not fail requests.
func (l *auditLog) write(e auditEntry) {
	line, err := json.Marshal(e)
	if err != nil {
		l.fail(fmt.Errorf("encode audit line: %w", err))
		return
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writeLocked(line); err != nil {
		// Closed so that the next line reopens the file, which may
		// work again (space freed, directory fixed).
		l.closeLocked()
		l.failLocked(err)
		return
	}
	l.lines.Inc()
}

func (l *auditLog) writeLocked(line []byte) error {
	if l.f != nil && l.size > 0 && l.size+int64(len(line)) > l.settings.maxBytes {
		if err := l.rotateLocked(); err != nil {
			return err
		}
	}
	if l.f == nil {
		if err := l.openLocked(); err != nil {
			return err
		}
		if l.size > 0 && l.size+int64(len(line)) > l.settings.maxBytes {
			if err := l.rotateLocked(); err != nil {
				return err
			}
		}
	}
	n, err := l.f.Write(line)
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("append to audit log %s: %w", l.settings.path, err)
	}
	return nil
}

// openLocked opens the live file for appending: its directory 0700, the
// file 0600 (it names every token that wrote).
func (l *auditLog) openLocked() error {
	if err := os.MkdirAll(filepath.Dir(l.settings.path), 0o700); err != nil {
		return fmt.Errorf("create audit log directory: %w", err)
	}
	f, err := os.OpenFile(l.settings.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open audit log: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// rotateLocked shifts audit.log.N-1 to .N (the oldest, .max_files, is
// overwritten), audit.log to .1, and opens a new audit.log.
func (l *auditLog) rotateLocked() error {
	l.closeLocked()
	p := l.settings.path
	for i := l.settings.maxFiles - 1; i >= 1; i-- {
		if err := os.Rename(p+"."+strconv.Itoa(i), p+"."+strconv.Itoa(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate audit log: %w", err)
		}
	}
	if err := os.Rename(p, p+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate audit log: %w", err)
	}
	return l.openLocked()
}

func (l *auditLog) closeLocked() {
	if l.f != nil {
		_ = l.f.Close()
		l.f, l.size = nil, 0
	}
}

// open opens the file at start, so that a path that cannot be written
// is reported when the agent starts rather than at the first write.
func (l *auditLog) open() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		return nil
	}
	return l.openLocked()
}

func (l *auditLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closeLocked()
}

func (l *auditLog) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failLocked(err)
}

func (l *auditLog) failLocked(err error) {
	l.failures.Inc()
	if now := time.Now(); now.Sub(l.lastWarn) >= auditFailureLogEvery {
		l.lastWarn = now
		l.logger.Error("cannot write the audit log; requests are still answered (see drover_audit_write_failures_total)", "path", l.settings.path, "error", err)
	}
}
