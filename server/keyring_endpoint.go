package server

import (
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/server/keyring"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Keyring is the RPC endpoint for the variables keyring: listing root
// keys (operator:read), rotating (operator:write), and, between servers
// only, handing a key-encryption key to a peer that lacks it. KEK is on
// the server RPC server alone: a client certificate cannot reach it
// (clientRPCServer does not have it), and no HTTP handler calls it.
type Keyring struct {
	srv *Server
}

// keyringState is the server's key material and the lock that orders
// root key creation on the leader.
type keyringState struct {
	// createLock serializes creating or rotating root keys on the leader.
	createLock sync.Mutex
	// warned rate-limits the log line about a KEK no peer has.
	warnedMu sync.Mutex
	warned   map[string]time.Time
}

// setupKeyring opens the server's keyring directory.
func (s *Server) setupKeyring() error {
	dir := ""
	if s.config.DataDir != "" {
		dir = filepath.Join(s.config.DataDir, "keyring")
	}
	k, err := keyring.New(dir, s.config.KeyringFile)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.keyring = k
	s.keyringState.warned = map[string]time.Time{}
	return nil
}

// activeRootKey returns the active root key, creating the first one when
// the keyring is empty. Only the leader calls it (writes are forwarded).
func (s *Server) activeRootKey() (*structs.RootKey, error) {
	rk, err := s.State().ActiveRootKey(nil)
	if err != nil {
		return nil, err
	}
	if rk == nil {
		if rk, err = s.initRootKey(); err != nil {
			return nil, err
		}
	}
	if err := s.keyring.CanOpen(rk); err != nil {
		return nil, keyringError(err)
	}
	return rk, nil
}

// initRootKey creates the first root key (and with it, on a new cluster,
// the KEK in this server's keyring directory).
func (s *Server) initRootKey() (*structs.RootKey, error) {
	s.keyringState.createLock.Lock()
	defer s.keyringState.createLock.Unlock()
	if rk, err := s.State().ActiveRootKey(nil); err != nil || rk != nil {
		return rk, err
	}
	nk, err := s.keyring.NewRootKey("", structs.RootKeyActive, time.Now())
	if err != nil {
		return nil, structs.NewError(structs.CodeInternal, err.Error())
	}
	if _, _, err := s.raftApply(structs.RootKeyUpsertRequestType, &structs.RootKeyUpsertRequest{Keys: []*structs.RootKey{nk}}); err != nil {
		return nil, err
	}
	s.logger.Info("created the variables root key", "key_id", nk.KeyID, "kek_id", nk.KEKID)
	return s.State().ActiveRootKey(nil)
}

// rotateRootKey makes a new root key active and the old one inactive,
// in one entry; the re-encryption loop then moves variables over.
func (s *Server) rotateRootKey() (*structs.RootKey, error) {
	s.keyringState.createLock.Lock()
	defer s.keyringState.createLock.Unlock()
	old, err := s.State().ActiveRootKey(nil)
	if err != nil {
		return nil, err
	}
	prefer := ""
	if old != nil {
		prefer = old.KEKID
	}
	nk, err := s.keyring.NewRootKey(prefer, structs.RootKeyActive, time.Now())
	if err != nil {
		return nil, structs.NewError(structs.CodeInternal, err.Error())
	}
	keys := []*structs.RootKey{nk}
	if old != nil {
		o := *old
		o.State = structs.RootKeyInactive
		keys = append([]*structs.RootKey{&o}, nk)
	}
	if _, _, err := s.raftApply(structs.RootKeyUpsertRequestType, &structs.RootKeyUpsertRequest{Keys: keys}); err != nil {
		return nil, err
	}
	s.logger.Info("rotated the variables root key", "key_id", nk.KeyID, "kek_id", nk.KEKID)
	return nk, nil
}

// List lists the root keys (never key material) with the number of
// variables each still seals.
func (k *Keyring) List(args *structs.KeyringListRequest, reply *structs.KeyringListResponse) error {
	if done, err := k.srv.forward("Keyring.List", args, args, reply); done {
		return err
	}
	if err := k.srv.authorizeOperator(args.AuthToken, false); err != nil {
		return err
	}
	return k.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		keys, err := st.RootKeys(ws)
		if err != nil {
			return err
		}
		counts, err := st.CountVariablesByKeyID()
		if err != nil {
			return err
		}
		reply.Keys = rootKeyMetas(keys, counts)
		reply.Index, err = st.Index(state.TableRootKeys)
		return err
	})
}

func rootKeyMetas(keys []*structs.RootKey, counts map[string]int) []*structs.RootKeyMeta {
	out := make([]*structs.RootKeyMeta, 0, len(keys))
	for _, k := range keys {
		out = append(out, &structs.RootKeyMeta{KeyID: k.KeyID, State: k.State, KEKID: k.KEKID, CreateTime: k.CreateTime,
			Variables: counts[k.KeyID], CreateIndex: k.CreateIndex, ModifyIndex: k.ModifyIndex})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].CreateTime != out[j].CreateTime {
			return out[i].CreateTime < out[j].CreateTime
		}
		return out[i].KeyID < out[j].KeyID
	})
	return out
}

// Rotate creates a new active root key; variables sealed with older keys
// are re-encrypted in the background by the leader.
func (k *Keyring) Rotate(args *structs.KeyringRotateRequest, reply *structs.KeyringRotateResponse) error {
	if done, err := k.srv.forward("Keyring.Rotate", args, args, reply); done {
		return err
	}
	if err := k.srv.authorizeOperator(args.AuthToken, true); err != nil {
		return err
	}
	nk, err := k.srv.rotateRootKey()
	if err != nil {
		return err
	}
	st := k.srv.State()
	stored, err := st.RootKeyByID(nil, nk.KeyID)
	if err != nil {
		return err
	}
	if stored == nil {
		return structs.NewError(structs.CodeInternal, "rotated root key is not in the state store")
	}
	reply.Key = rootKeyMetas([]*structs.RootKey{stored}, nil)[0]
	reply.Index = stored.ModifyIndex
	return nil
}

// KEK hands a key-encryption key to a peer server. Reachable only by
// servers (see Keyring); never forwarded.
func (k *Keyring) KEK(args *structs.KEKRequest, reply *structs.KEKResponse) error {
	if args.KEKID == "" || len(args.KEKID) > 64 {
		return structs.NewError(structs.CodeInvalid, "a KEK ID is required")
	}
	reply.KEK = k.srv.keyring.KEK(args.KEKID)
	return nil
}

// keyringReplication runs on every server: whenever the state holds a
// root key wrapped by a KEK this server lacks, it asks the other servers
// for that KEK and stores it in its keyring directory, so that any
// server can decrypt and a new leader can seal.
func (s *Server) keyringReplication() {
	for {
		ws := memdb.NewWatchSet()
		st := s.State()
		ws.Add(st.AbandonCh())
		keys, err := st.RootKeys(ws)
		if err != nil {
			s.logger.Error("keyring replication: read root keys", "error", err)
		}
		missing := false
		for _, rk := range keys {
			if s.keyring.HasKEK(rk.KEKID) {
				continue
			}
			if err := s.keyring.Reload(); err == nil && s.keyring.HasKEK(rk.KEKID) {
				continue
			}
			if !s.fetchKEK(rk.KEKID) {
				missing = true
				s.warnMissingKEK(rk)
			}
		}
		timeout := time.Hour
		if missing {
			timeout = 5 * time.Second
		}
		timer := time.NewTimer(timeout)
		ws.Add(s.shutdownCh)
		_ = ws.Watch(timer.C)
		timer.Stop()
		if s.isShutdown() {
			return
		}
	}
}

// fetchKEK asks each other Raft server for KEK id.
func (s *Server) fetchKEK(id string) bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	self := s.config.RPCAdvertise.String()
	for _, srv := range f.Configuration().Servers {
		addr := string(srv.Address)
		if addr == self {
			continue
		}
		var reply structs.KEKResponse
		if err := s.peers.RPC(addr, "Keyring.KEK", &structs.KEKRequest{KEKID: id}, &reply); err != nil {
			s.logger.Debug("keyring replication: peer did not answer", "peer", addr, "error", err)
			continue
		}
		if len(reply.KEK) != keyring.KeySize || keyring.KEKID(reply.KEK) != id {
			continue
		}
		if _, err := s.keyring.AddKEK(reply.KEK); err != nil {
			s.logger.Error("keyring replication: store key-encryption key", "kek_id", id, "error", err)
			return false
		}
		s.logger.Info("replicated a key-encryption key from a peer", "kek_id", id, "peer", addr)
		return true
	}
	return false
}

func (s *Server) warnMissingKEK(rk *structs.RootKey) {
	s.keyringState.warnedMu.Lock()
	defer s.keyringState.warnedMu.Unlock()
	if t, ok := s.keyringState.warned[rk.KEKID]; ok && time.Since(t) < time.Minute {
		return
	}
	s.keyringState.warned[rk.KEKID] = time.Now()
	s.logger.Error("variables sealed with a root key this server cannot open: no server has its key-encryption key",
		"error", (&keyring.MissingKEKError{KeyID: rk.KeyID, KEKID: rk.KEKID, Dir: s.keyring.Dir()}).Error())
}

// reencryptBatch bounds the variables one pass of the leader's
// re-encryption loop moves to the active key.
const reencryptBatch = 64

// keyringLeader runs on the leader: it creates the first root key of a
// new cluster, and re-encrypts variables sealed with inactive root keys
// under the active one, each with a check-and-set on its ModifyIndex so
// a concurrent write is never overwritten.
func (s *Server) keyringLeader(stopCh <-chan struct{}) {
	if _, err := s.activeRootKey(); err != nil {
		s.logger.Warn("keyring: cannot use the active root key; variable writes will fail until it is fixed", "error", err)
	}
	for {
		ws := memdb.NewWatchSet()
		st := s.State()
		ws.Add(st.AbandonCh())
		keys, err := st.RootKeys(ws)
		if err != nil {
			s.logger.Error("keyring: read root keys", "error", err)
		}
		var active *structs.RootKey
		for _, k := range keys {
			if k.State == structs.RootKeyActive {
				active = k
			}
		}
		retry := false
		if active != nil && s.keyring.CanOpen(active) == nil {
			for _, k := range keys {
				if k.State == structs.RootKeyActive {
					continue
				}
				vars, err := st.VariablesByKeyID(ws, k.KeyID, reencryptBatch)
				if err != nil || len(vars) == 0 {
					continue
				}
				if err := s.keyring.CanOpen(k); err != nil {
					s.warnMissingKEK(k)
					retry = true
					continue
				}
				for _, v := range vars {
					if err := s.reencrypt(st, v, active); err != nil {
						s.logger.Warn("keyring: re-encrypt variable", "namespace", v.Namespace, "path", v.Path, "error", err)
						retry = true
					}
				}
			}
		} else if active == nil {
			retry = true
		}
		timer := time.NewTimer(time.Minute)
		if retry {
			timer.Reset(5 * time.Second)
		}
		ws.Add(stopCh)
		_ = ws.Watch(timer.C)
		timer.Stop()
		select {
		case <-stopCh:
			return
		default:
		}
		if active == nil {
			if _, err := s.activeRootKey(); err != nil {
				s.logger.Debug("keyring: no active root key yet", "error", err)
			}
		}
	}
}

// reencrypt moves one variable to the active root key.
func (s *Server) reencrypt(st *state.StateStore, v *structs.VariableEncrypted, active *structs.RootKey) error {
	dec, err := s.decryptVariable(st, v)
	if err != nil {
		return err
	}
	data, err := s.keyring.Seal(active, v.Namespace, v.Path, dec.Items)
	clear(dec.Items)
	if err != nil {
		return err
	}
	nv := &structs.VariableEncrypted{VariableMetadata: v.VariableMetadata, KeyID: active.KeyID, Data: data}
	_, _, err = s.raftApply(structs.VariableApplyRequestType, &structs.VariableApplyRequest{
		Op: structs.VarOpSet, Var: nv, CAS: v.ModifyIndex, ReencryptOnly: true,
		WriteRequest: structs.WriteRequest{Namespace: v.Namespace},
	})
	return err
}
