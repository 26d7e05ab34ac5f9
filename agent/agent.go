package agent

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/driver"
	ctrdriver "github.com/droverhq/drover/driver/containerd"
	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/server"
	"github.com/droverhq/drover/structs"
)

// Agent is a running Drover agent.
type Agent struct {
	config *Config
	logger hclog.Logger

	server  *server.Server
	client  *client.Client
	drivers map[string]driver.Driver
	// rpc reaches the servers: the local server, or remote ones.
	rpc client.RPCer
	// pool carries calls to remote servers.
	pool *rpcpool.Pool

	httpServer   *http.Server
	httpListener net.Listener
	// tempDataDir is a data dir created for a dev agent without one; it
	// is removed on a clean shutdown.
	tempDataDir string

	shutdownOnce sync.Once
}

// NewLogger builds the agent's logger from its configuration.
func NewLogger(c *Config, out io.Writer) hclog.InterceptLogger {
	return hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:       "agent",
		Level:      hclog.LevelFromString(c.LogLevel),
		JSONFormat: c.LogJSON,
		Output:     out,
	})
}

// New starts an agent.
func New(c *Config, logger hclog.Logger) (*Agent, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{config: c, logger: logger, drivers: make(map[string]driver.Driver)}
	if c.DataDir == "" {
		if !c.Dev {
			return nil, errors.New("a data dir is required: -data-dir PATH or data_dir in the config file")
		}
		dir, err := os.MkdirTemp("", "drover-dev-")
		if err != nil {
			return nil, err
		}
		a.tempDataDir = dir
		c.DataDir = dir
		logger.Warn("dev mode without -data-dir: state lives in a temporary dir and is removed on shutdown", "data_dir", dir)
	}
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}

	// The HTTP listener first: its address goes into the node.
	l, err := net.Listen("tcp", c.HTTPAddr())
	if err != nil {
		return nil, fmt.Errorf("listen on HTTP address %s: %w", c.HTTPAddr(), err)
	}
	a.httpListener = l

	if c.Server.Enabled {
		sc, err := c.serverConfig()
		if err != nil {
			a.Shutdown()
			return nil, err
		}
		sc.Logger = logger
		srv, err := server.NewServer(sc)
		if err != nil {
			a.Shutdown()
			return nil, err
		}
		a.server = srv
		a.rpc = srv
	} else {
		a.pool = rpcpool.New()
		a.rpc = newServerProxy(a.pool, c.Client.Servers)
	}

	if c.Client.Enabled {
		if err := a.setupClient(); err != nil {
			a.Shutdown()
			return nil, err
		}
	}

	a.httpServer = &http.Server{
		Handler:           a.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	go func() {
		if err := a.httpServer.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server failed", "error", err)
		}
	}()
	logger.Info("agent started", "http", l.Addr().String(), "server", c.Server.Enabled, "client", c.Client.Enabled, "data_dir", c.DataDir)
	return a, nil
}

func (a *Agent) setupClient() error {
	c := a.config
	drv, err := ctrdriver.New(ctrdriver.Config{Address: c.Containerd.Address, Namespace: c.Containerd.Namespace}, a.logger.Named("containerd"))
	if err != nil {
		return fmt.Errorf("containerd driver: %w", err)
	}
	a.drivers[drv.Name()] = drv
	httpPort := a.httpListener.Addr().(*net.TCPAddr).Port
	reserved := append([]int(nil), c.Client.Reserved.Ports...)
	reserved = append(reserved, httpPort, c.Ports.RPC, c.Ports.Gossip)
	cl, err := client.New(&client.Config{
		DataDir:          c.DataDir,
		NodeName:         c.NodeName,
		Datacenter:       c.Datacenter,
		NodeClass:        c.Client.NodeClass,
		Meta:             c.Client.Meta,
		HTTPAddr:         net.JoinHostPort(c.advertise(), strconv.Itoa(httpPort)),
		NetworkIP:        c.advertise(),
		CPUTotalMHz:      c.Client.CPUTotalMHz,
		MemoryTotalMB:    c.Client.MemoryTotalMB,
		ReservedCPU:      c.Client.Reserved.CPU,
		ReservedMemoryMB: c.Client.Reserved.MemoryMB,
		ReservedPorts:    reserved,
		MinDynamicPort:   c.Client.MinDynamicPort,
		MaxDynamicPort:   c.Client.MaxDynamicPort,
		Drivers:          a.drivers,
		RPC:              a.rpc,
		Logger:           a.logger,
	})
	if err != nil {
		return err
	}
	a.client = cl
	return nil
}

// HTTPAddr returns the address the HTTP API listens on.
func (a *Agent) HTTPAddr() string { return a.httpListener.Addr().String() }

// Server returns the agent's server, or nil.
func (a *Agent) Server() *server.Server { return a.server }

// Client returns the agent's client, or nil.
func (a *Agent) Client() *client.Client { return a.client }

// RPC calls an endpoint on the servers.
func (a *Agent) RPC(method string, args, reply interface{}) error {
	return a.rpc.RPC(method, args, reply)
}

// Shutdown stops the agent: HTTP, client (tasks keep running), server.
func (a *Agent) Shutdown() {
	a.shutdownOnce.Do(func() {
		a.logger.Info("shutting down agent")
		if a.httpServer != nil {
			ctx, cancel := contextWithTimeout(5 * time.Second)
			_ = a.httpServer.Shutdown(ctx)
			cancel()
		} else if a.httpListener != nil {
			a.httpListener.Close()
		}
		if a.client != nil {
			if err := a.client.Shutdown(); err != nil {
				a.logger.Warn("client shutdown", "error", err)
			}
		}
		if a.server != nil {
			if err := a.server.Shutdown(); err != nil {
				a.logger.Warn("server shutdown", "error", err)
			}
		}
		if a.pool != nil {
			a.pool.Shutdown()
		}
		for _, d := range a.drivers {
			_ = d.Close()
		}
		if a.tempDataDir != "" {
			_ = os.RemoveAll(a.tempDataDir)
		}
	})
}

// serverProxy sends RPCs to a list of servers, moving to the next one
// when a server cannot be reached.
type serverProxy struct {
	pool *rpcpool.Pool

	// l guards servers and current.
	l       sync.Mutex
	servers []string
	current int
}

func newServerProxy(pool *rpcpool.Pool, servers []string) *serverProxy {
	return &serverProxy{pool: pool, servers: servers}
}

// RPC implements client.RPCer.
func (p *serverProxy) RPC(method string, args, reply interface{}) error {
	p.l.Lock()
	servers := append([]string(nil), p.servers...)
	start := p.current
	p.l.Unlock()
	var lastErr error
	for i := range servers {
		idx := (start + i) % len(servers)
		err := p.pool.RPC(servers[idx], method, args, reply)
		if err == nil || !isNetworkError(err) {
			p.l.Lock()
			p.current = idx
			p.l.Unlock()
			return err
		}
		lastErr = err
	}
	return fmt.Errorf("no server reachable (tried %s): %w", strings.Join(servers, ", "), lastErr)
}

// isNetworkError reports whether err means the server could not be
// reached (rather than that it answered with an error).
func isNetworkError(err error) bool {
	if ce := structs.ParseCodedError(err); ce != nil {
		return ce.Code == structs.CodeNoLeader || ce.Code == structs.CodeTimeout
	}
	return errors.Is(err, rpcpool.ErrUnreachable)
}
