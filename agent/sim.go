package agent

import (
	"context"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/droverhq/drover/client"
	"github.com/droverhq/drover/client/sim"
	"github.com/droverhq/drover/rpcpool"
	"github.com/droverhq/drover/tlsutil"
)

// SimConfig and Simulator are the node simulator's configuration and
// handle, for the CLI (which reaches client packages only through agent).
type (
	SimConfig = sim.Config
	Simulator = sim.Simulator
)

// SimTLS are the files simulated nodes dial the servers with when their
// RPC port is TLS: the CA, and a client certificate and key (drover tls
// cert create -client). Region defaults to global.
type SimTLS struct {
	CAFile, CertFile, KeyFile string
	Region                    string
}

// SimNodes runs simulated client nodes (see package client/sim: each is
// a real client.Client with a fake driver) against the servers at the
// given RPC addresses, through the failover a client agent uses
// (client.Servers): a node sticks to a server that answers, moves on
// when one cannot be reached, and learns the servers' own list from
// their heartbeat answers. The nodes are spread over the servers (each
// group of nodes starts with a different one), as a real fleet's clients
// are. started is called with the simulator before registration begins,
// so the caller can read its stats; Run's progress callback reports
// registrations. With tlsFiles, the nodes dial the servers over mTLS
// with that client certificate, as client agents do when the servers'
// RPC port is TLS. SimNodes returns when ctx is done and every node has
// shut down.
func SimNodes(ctx context.Context, cfg sim.Config, servers []string, tlsFiles *SimTLS, logger hclog.Logger, started func(*sim.Simulator), progress func(registered, total int)) error {
	var opts []rpcpool.Option
	if tlsFiles != nil {
		conf, err := tlsutil.NewConfigurator(tlsutil.Config{
			CAFile: tlsFiles.CAFile, CertFile: tlsFiles.CertFile, KeyFile: tlsFiles.KeyFile,
			Region: tlsFiles.Region, VerifyServerHostname: true,
			Roles: []tlsutil.Role{tlsutil.RoleClient, tlsutil.RoleServer},
		})
		if err != nil {
			return err
		}
		opts = append(opts, rpcpool.WithTLS(conf.OutgoingRPC()))
	}
	pool := rpcpool.New(opts...)
	defer pool.Shutdown()
	// One failover set per server, each trying a different server first,
	// so the nodes' watches spread over the servers as a real fleet's do.
	cfg.RPC = nil
	cfg.NodeRPCs = nil
	for i := range servers {
		rotated := append(append([]string(nil), servers[i:]...), servers[:i]...)
		cfg.NodeRPCs = append(cfg.NodeRPCs, client.NewServers(client.ServersConfig{
			Transport: pool, Configured: rotated, Unreachable: isNetworkError,
		}))
	}
	cfg.Logger = logger
	s := sim.New(cfg)
	// Runs before the pool shuts down: the nodes flush their last
	// reports through it.
	defer s.Stop()
	if started != nil {
		started(s)
	}
	if err := s.Run(ctx, progress); err != nil && ctx.Err() == nil {
		return err
	}
	<-ctx.Done()
	return nil
}
