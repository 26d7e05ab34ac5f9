package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/droverhq/drover/structs"
)

// maxOutput bounds a check's output: it travels in every allocation
// update and is stored in Raft.
const maxOutput = 512

// userAgent is what http checks send.
const userAgent = "Drover Health Check"

// probeHTTP GETs the check's path on the allocation's port: 2xx and 3xx
// pass, 429 warns, anything else (or no answer) is critical.
func (r *Runner) probeHTTP(ctx context.Context, c *check) (status, output string) {
	path := c.def.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := "http://" + net.JoinHostPort(r.cfg.Address, strconv.Itoa(c.port)) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return structs.ServiceStatusCritical, err.Error()
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := r.client.Do(req)
	if err != nil {
		return structs.ServiceStatusCritical, probeError(ctx, c, err)
	}
	// The body is not read: the status code is the answer, and with
	// keep-alives off closing it closes the connection.
	_ = resp.Body.Close()
	output = "HTTP " + strconv.Itoa(resp.StatusCode)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 400:
		return structs.ServiceStatusPassing, output
	case resp.StatusCode == http.StatusTooManyRequests:
		return structs.ServiceStatusWarning, output
	default:
		return structs.ServiceStatusCritical, output
	}
}

// probeTCP opens a connection to the allocation's port and closes it.
func probeTCP(ctx context.Context, c *check, address string) (status, output string) {
	addr := net.JoinHostPort(address, strconv.Itoa(c.port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return structs.ServiceStatusCritical, probeError(ctx, c, err)
	}
	_ = conn.Close()
	return structs.ServiceStatusPassing, "TCP connect " + addr + ": success"
}

// probeError says why a probe got no answer; a timeout is said plainly
// rather than as the transport's wrapped context error.
func probeError(ctx context.Context, c *check, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("timed out after %s", c.timeout)
	}
	return err.Error()
}

// truncate cuts s to maxOutput bytes without splitting a character.
func truncate(s string) string {
	if len(s) <= maxOutput {
		return s
	}
	cut := maxOutput
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
