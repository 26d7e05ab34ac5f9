package server

import (
	"errors"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/acl"
	"github.com/droverhq/drover/server/keyring"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
)

// Variable is the RPC endpoint for variables. Writes are sealed on the
// leader (which holds the active root key unwrapped) and committed
// through Raft; a check-and-set is decided by the FSM in log order.
// Reads decrypt on the server that answers.
//
// Who may call what, with ACLs enabled:
//
//	Upsert    write on the path (variables path rule, or write-variables)
//	Delete    destroy on the path
//	Read      read on the path; or a client agent, with its node ID and
//	          secret, for a non-terminal allocation on that node in the
//	          variable's namespace (templates)
//	List      list, per path: what the token may not list is left out
type Variable struct {
	srv *Server
}

// variableDenied is the refusal of a variable operation.
func variableDenied(z *Authz, ns, path, capability string) error {
	return structs.NewNamespaceDeniedError(z.Token, fmt.Sprintf("variables %s on path %q", capability, path), ns)
}

// authorizeVariable refuses a token without capability on ns/path.
func (s *Server) authorizeVariable(token, ns, path, capability string) (*Authz, error) {
	z, err := s.Authorize(token)
	if err != nil {
		return nil, err
	}
	if !z.ACL.AllowVariable(ns, path, capability) {
		return nil, variableDenied(z, ns, path, capability)
	}
	return z, nil
}

// checkVariableNamespace refuses a write into a namespace that does not
// exist.
func (s *Server) checkVariableNamespace(ns string) error {
	n, err := s.State().NamespaceByName(nil, ns)
	if err != nil {
		return err
	}
	if n == nil {
		return structs.NewError(structs.CodeNotFound, fmt.Sprintf("namespace %q does not exist; create it with: drover namespace apply %s", ns, ns))
	}
	return nil
}

// Upsert writes a variable.
func (v *Variable) Upsert(args *structs.VariableUpsertRequest, reply *structs.VariableWriteResponse) error {
	if done, err := v.srv.forward("Variable.Upsert", args, args, reply); done {
		return err
	}
	ns := structs.NamespaceOrDefault(args.Namespace)
	if err := structs.ValidateVariablePath(args.Path); err != nil {
		return structs.NewError(structs.CodeInvalid, err.Error())
	}
	if _, err := v.srv.authorizeVariable(args.AuthToken, ns, args.Path, acl.VariableCapWrite); err != nil {
		return err
	}
	if err := structs.ValidateVariableItems(args.Items); err != nil {
		return structs.NewError(structs.CodeInvalid, err.Error())
	}
	if err := v.srv.checkVariableNamespace(ns); err != nil {
		return err
	}
	rk, err := v.srv.activeRootKey()
	if err != nil {
		return err
	}
	data, err := v.srv.keyring.Seal(rk, ns, args.Path, args.Items)
	if err != nil {
		return keyringError(err)
	}
	now := time.Now().UnixNano()
	req := &structs.VariableApplyRequest{
		Op: structs.VarOpSet,
		Var: &structs.VariableEncrypted{
			VariableMetadata: structs.VariableMetadata{Namespace: ns, Path: args.Path, CreateTime: now, ModifyTime: now},
			KeyID:            rk.KeyID,
			Data:             data,
		},
		WriteRequest: structs.WriteRequest{Namespace: ns},
	}
	if args.CheckIndex != nil {
		req.Op, req.CAS = structs.VarOpCAS, *args.CheckIndex
	}
	return v.srv.applyVariable(req, reply)
}

// Delete deletes a variable (a missing one is not an error unless a
// check index is given).
func (v *Variable) Delete(args *structs.VariableDeleteRequest, reply *structs.VariableWriteResponse) error {
	if done, err := v.srv.forward("Variable.Delete", args, args, reply); done {
		return err
	}
	ns := structs.NamespaceOrDefault(args.Namespace)
	if err := structs.ValidateVariablePath(args.Path); err != nil {
		return structs.NewError(structs.CodeInvalid, err.Error())
	}
	if _, err := v.srv.authorizeVariable(args.AuthToken, ns, args.Path, acl.VariableCapDestroy); err != nil {
		return err
	}
	req := &structs.VariableApplyRequest{
		Op:           structs.VarOpDelete,
		Var:          &structs.VariableEncrypted{VariableMetadata: structs.VariableMetadata{Namespace: ns, Path: args.Path}},
		WriteRequest: structs.WriteRequest{Namespace: ns},
	}
	if args.CheckIndex != nil {
		req.Op, req.CAS = structs.VarOpDeleteCAS, *args.CheckIndex
	}
	return v.srv.applyVariable(req, reply)
}

// applyVariable commits a variable entry and fills reply; a CAS
// conflict sets reply.Conflict and returns CodeConflict... not as an
// error: net/rpc drops the reply of a failed call, and the caller needs
// the current metadata, so the conflict travels in the reply
// (Conflicted) and the HTTP layer answers 409.
func (s *Server) applyVariable(req *structs.VariableApplyRequest, reply *structs.VariableWriteResponse) error {
	resp, index, err := s.raftApply(structs.VariableApplyRequestType, req)
	if err != nil {
		return err
	}
	r, ok := resp.(*structs.VariableApplyResponse)
	if !ok {
		return fmt.Errorf("variable apply: unexpected response %T", resp)
	}
	reply.Index = index
	if r.Conflicted {
		reply.Conflict = r.Conflict
		if reply.Conflict == nil {
			// Missing: a conflict with "does not exist".
			reply.Conflict = &structs.VariableMetadata{Namespace: req.Var.Namespace, Path: req.Var.Path}
		}
		return nil
	}
	reply.Meta = r.Meta
	return nil
}

// Read reads and decrypts one variable; Data is nil when it does not
// exist.
func (v *Variable) Read(args *structs.VariableReadRequest, reply *structs.VariableReadResponse) error {
	if done, err := v.srv.forward("Variable.Read", args, args, reply); done {
		return err
	}
	ns := structs.NamespaceOrDefault(args.Namespace)
	if err := structs.ValidateVariablePath(args.Path); err != nil {
		return structs.NewError(structs.CodeInvalid, err.Error())
	}
	if args.NodeID != "" || args.SecretID != "" {
		if err := v.srv.authorizeAllocVariableRead(args.NodeID, args.SecretID, args.AllocID, ns); err != nil {
			return err
		}
	} else if _, err := v.srv.authorizeVariable(args.AuthToken, ns, args.Path, acl.VariableCapRead); err != nil {
		return err
	}
	return v.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		enc, err := st.VariableByPath(ws, ns, args.Path)
		if err != nil {
			return err
		}
		if enc == nil {
			reply.Data = nil
			reply.Index, err = st.Index(state.TableVariables)
			return err
		}
		dec, err := v.srv.decryptVariable(st, enc)
		if err != nil {
			return err
		}
		reply.Data = dec
		reply.Index = enc.ModifyIndex
		return nil
	})
}

// authorizeAllocVariableRead lets a client agent read the variables of
// the namespace of a non-terminal allocation on its node.
func (s *Server) authorizeAllocVariableRead(nodeID, secretID, allocID, ns string) error {
	if _, err := s.authNode(nodeID, secretID); err != nil {
		return err
	}
	alloc, err := s.State().AllocByID(nil, allocID)
	if err != nil {
		return err
	}
	if alloc == nil || alloc.NodeID != nodeID {
		return structs.NewError(structs.CodePermission, fmt.Sprintf("permission denied: allocation %q is not on node %s", allocID, nodeID))
	}
	if structs.NamespaceOrDefault(alloc.Namespace) != ns {
		return structs.NewError(structs.CodePermission, fmt.Sprintf("permission denied: allocation %s runs in namespace %q, not %q", allocID, structs.NamespaceOrDefault(alloc.Namespace), ns))
	}
	if alloc.TerminalStatus() {
		return structs.NewError(structs.CodePermission, fmt.Sprintf("permission denied: allocation %s has stopped", allocID))
	}
	return nil
}

// decryptVariable opens a sealed variable with its root key.
func (s *Server) decryptVariable(st *state.StateStore, enc *structs.VariableEncrypted) (*structs.VariableDecrypted, error) {
	rk, err := st.RootKeyByID(nil, enc.KeyID)
	if err != nil {
		return nil, err
	}
	if rk == nil {
		return nil, structs.NewError(structs.CodeInternal, fmt.Sprintf("variable %s/%s is sealed with root key %s, which the state store does not hold", enc.Namespace, enc.Path, enc.KeyID))
	}
	items, err := s.keyring.Open(rk, enc)
	if err != nil {
		return nil, keyringError(err)
	}
	return &structs.VariableDecrypted{VariableMetadata: enc.VariableMetadata, Items: items}, nil
}

// keyringError codes a keyring failure: a missing KEK is the
// operator's to fix (unavailable, with the fix named).
func keyringError(err error) error {
	var missing *keyring.MissingKEKError
	if errors.As(err, &missing) {
		return structs.NewError(structs.CodeUnavailable, "cannot decrypt: "+err.Error())
	}
	return structs.NewError(structs.CodeInternal, err.Error())
}

// List lists variable metadata by path prefix.
func (v *Variable) List(args *structs.VariableListRequest, reply *structs.VariableListResponse) error {
	if done, err := v.srv.forward("Variable.List", args, args, reply); done {
		return err
	}
	ns := args.Namespace
	if ns != structs.AllNamespaces {
		ns = structs.NamespaceOrDefault(ns)
	}
	z, err := v.srv.Authorize(args.AuthToken)
	if err != nil {
		return err
	}
	if ns != structs.AllNamespaces && !z.ACL.AllowAnyVariables(ns) {
		return variableDenied(z, ns, args.Prefix+"*", acl.VariableCapList)
	}
	perPage := args.PerPage
	if perPage <= 0 || perPage > structs.MaxVariableListResults {
		perPage = structs.MaxVariableListResults
	}
	return v.srv.blockingRPC(&args.QueryOptions, &reply.QueryMeta, func(ws memdb.WatchSet, st *state.StateStore) error {
		reply.Variables = []*structs.VariableMetadata{}
		reply.NextToken = ""
		err := st.VariablesByPrefix(ws, ns, args.Prefix, func(enc *structs.VariableEncrypted) bool {
			if args.NextToken != "" && variableToken(&enc.VariableMetadata) <= args.NextToken {
				return true
			}
			if !z.ACL.AllowVariable(enc.Namespace, enc.Path, acl.VariableCapList) {
				return true
			}
			if len(reply.Variables) == perPage {
				reply.NextToken = variableToken(reply.Variables[len(reply.Variables)-1])
				return false
			}
			m := enc.VariableMetadata
			reply.Variables = append(reply.Variables, &m)
			return true
		})
		if err != nil {
			return err
		}
		reply.Index, err = st.Index(state.TableVariables)
		return err
	})
}

// variableToken is a list position: namespace and path, in the order
// the list walks.
func variableToken(m *structs.VariableMetadata) string {
	return m.Namespace + "\x00" + m.Path
}
