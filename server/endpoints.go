package server

import "fmt"

// registerEndpoints registers the RPC endpoints. Every endpoint method
// has net/rpc's shape, func(args *Req, reply *Resp) error, and starts
// with s.forward so that writes and consistent reads run on the leader
// whichever server received them.
func (s *Server) registerEndpoints() error {
	endpoints := map[string]interface{}{
		"Job":        &Job{srv: s},
		"Node":       &Node{srv: s},
		"Alloc":      &Alloc{srv: s},
		"Eval":       &Eval{srv: s},
		"Plan":       &Plan{srv: s},
		"Status":     &Status{srv: s},
		"Operator":   &Operator{srv: s},
		"Deployment": &Deployment{srv: s},
		"ACL":        &ACL{srv: s},
		"Namespace":  &Namespace{srv: s},
		"Quota":      &Quota{srv: s},
		"Service":    &Service{srv: s},
		"Variable":   &Variable{srv: s},
		"Keyring":    &Keyring{srv: s},
		"System":     &System{srv: s},
	}
	for name, e := range endpoints {
		if err := s.rpcServer.RegisterName(name, e); err != nil {
			return fmt.Errorf("register %s endpoint: %w", name, err)
		}
	}
	return nil
}
