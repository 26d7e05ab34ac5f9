package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// children tracks every process the harness started and that has not
// been reaped yet, so that KillAll can end them whatever state the
// scenario that started them is in.
var children = &registry{live: make(map[*proc]struct{})}

// registry is the set of live child processes.
type registry struct {
	// mu guards live.
	mu   sync.Mutex
	live map[*proc]struct{}
}

func (r *registry) add(p *proc) {
	r.mu.Lock()
	r.live[p] = struct{}{}
	r.mu.Unlock()
}

func (r *registry) remove(p *proc) {
	r.mu.Lock()
	delete(r.live, p)
	r.mu.Unlock()
}

// KillAll SIGKILLs the process group of every process the harness
// started that still runs, and waits briefly for them to be reaped. The
// command calls it on a second interrupt; Run's own teardown is orderly
// and does not need it.
func KillAll() {
	children.mu.Lock()
	live := make([]*proc, 0, len(children.live))
	for p := range children.live {
		live = append(live, p)
	}
	children.mu.Unlock()
	for _, p := range live {
		p.signal(syscall.SIGKILL)
	}
	for _, p := range live {
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
}

// liveCount returns how many started processes have not exited.
func liveCount() int {
	children.mu.Lock()
	defer children.mu.Unlock()
	return len(children.live)
}

// proc is a child process in its own process group (so a terminal's ^C
// reaches only the harness, which then tears down in order, and a kill
// of the group also ends whatever the child started), with Pdeathsig so
// that it dies with the harness if the harness itself is killed.
type proc struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string
	// onLine, when set, is called with each line of stdout (which also
	// goes to the log).
	onLine func(string)

	cmd    *exec.Cmd
	exited chan struct{}
	// err is cmd.Wait's result, valid once exited is closed.
	err error
}

// start starts the process, appending its output to logPath.
func (p *proc) start() error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	if p.env != nil {
		cmd.Env = append(os.Environ(), p.env...)
	}
	cmd.Stderr = logf
	var stdout io.ReadCloser
	if p.onLine != nil {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			logf.Close()
			return err
		}
	} else {
		cmd.Stdout = logf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	children.add(p)
	var copied sync.WaitGroup
	if stdout != nil {
		copied.Add(1)
		go func() {
			defer copied.Done()
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64*1024), 1024*1024)
			for sc.Scan() {
				line := sc.Text()
				fmt.Fprintln(logf, line)
				p.onLine(line)
			}
		}()
	}
	go func() {
		copied.Wait() // Wait closes the pipe: read it all first
		p.err = cmd.Wait()
		logf.Close()
		children.remove(p)
		close(p.exited)
	}()
	return nil
}

// alive reports whether the process runs.
func (p *proc) alive() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// kill SIGKILLs the process group and waits until the process is
// reaped.
func (p *proc) kill() {
	if !p.alive() {
		return
	}
	p.signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM to the process group, and SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		// The leader of the group is gone; make sure nothing it
		// started in its group outlives it.
		p.signal(syscall.SIGKILL)
	case <-time.After(grace):
		p.kill()
	}
}

// pid returns the process ID.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// logTail returns the last n lines of the process's log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// exitError describes how the process ended, with its last log lines.
func (p *proc) exitError() error {
	return fmt.Errorf("%s exited (%v); last log lines:\n%s", p.name, p.err, p.logTail(20))
}

// Default agent ports (agent.DefaultHTTPPort and friends; bench does not
// import agent).
const (
	httpPort   = 4646
	rpcPort    = 4647
	gossipPort = 4648
)

// hosts hands out loopback addresses nobody listens on, so the default
// ports never clash with other agents on the machine (other benches,
// tests, a demo).
var hosts = struct {
	mu   sync.Mutex
	used map[string]bool
}{used: make(map[string]bool)}

// newHost returns a fresh address in 127.100.0.0-127.199.255.255 whose
// agent ports are free.
func newHost() (string, error) {
	hosts.mu.Lock()
	defer hosts.mu.Unlock()
	for try := 0; try < 100; try++ {
		h := fmt.Sprintf("127.%d.%d.%d", 100+rand.Intn(100), rand.Intn(256), 1+rand.Intn(254))
		if hosts.used[h] || !portsFree(h) {
			continue
		}
		hosts.used[h] = true
		return h, nil
	}
	return "", errors.New("no free loopback address found for an agent")
}

// portsFree reports whether the agent ports can be bound on host.
func portsFree(host string) bool {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, port := range []int{httpPort, rpcPort, gossipPort} {
		l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", host, port))
		if err != nil {
			return false
		}
		closers = append(closers, l)
	}
	u, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", host, gossipPort))
	if err != nil {
		return false
	}
	closers = append(closers, u)
	return true
}
