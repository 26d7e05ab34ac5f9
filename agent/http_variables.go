package agent

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/droverhq/drover/structs"
)

// Variables over HTTP:
//
//	GET    /v1/vars?prefix=P&namespace=NS    metadata of the variables under P
//	GET    /v1/var/<path>                    one variable, items decrypted (?index= blocks)
//	PUT    /v1/var/<path>[?cas=N]            write {"Namespace","Path","Items":{...}}
//	DELETE /v1/var/<path>[?cas=N]            delete
//
// and the keyring: GET /v1/operator/keyring/keys, PUT|POST
// /v1/operator/keyring/rotate. The servers authorize (variables path
// rules; operator:read/write for the keyring); the agent carries the
// token. A check-and-set that does not hold is a 409 naming the
// variable's current modify index, with nothing changed.

// variableBody is the body of PUT /v1/var/<path>.
type variableBody struct {
	Namespace   string
	Path        string
	Items       map[string]string
	CreateIndex uint64
	ModifyIndex uint64
	CreateTime  int64
	ModifyTime  int64
}

// variablePath reads <path> from the URL and checks it.
func variablePath(r *http.Request) (string, error) {
	path := r.PathValue("path")
	if err := structs.ValidateVariablePath(path); err != nil {
		return "", badRequest("%v", err)
	}
	return path, nil
}

// casParam reads ?cas=N; nil without it.
func casParam(r *http.Request) (*uint64, error) {
	s, ok := r.URL.Query()["cas"]
	if !ok {
		return nil, nil
	}
	n, err := strconv.ParseUint(s[0], 10, 64)
	if err != nil {
		return nil, badRequest("cas=%q is not a modify index (a non-negative integer; 0 means: only if it does not exist)", s[0])
	}
	return &n, nil
}

// casConflictError is the 409 of a check-and-set that did not hold; its
// body carries the variable's current metadata (writeError).
type casConflictError struct {
	*structs.CodedError
	current *structs.VariableMetadata
}

func (e *casConflictError) Unwrap() error { return e.CodedError }

// casConflict builds the 409 of a check-and-set that did not hold.
func casConflict(path string, asked uint64, cur *structs.VariableMetadata) error {
	if cur == nil || cur.ModifyIndex == 0 {
		return &casConflictError{CodedError: structs.NewError(structs.CodeConflict, fmt.Sprintf("check-and-set failed: variable %q does not exist (cas=%d); nothing was changed", path, asked)), current: cur}
	}
	return &casConflictError{CodedError: structs.NewError(structs.CodeConflict, fmt.Sprintf("check-and-set failed: variable %q is at modify index %d, not %d; nothing was changed", path, cur.ModifyIndex, asked)), current: cur}
}

func (a *Agent) variableList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.VariableListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	args.NextToken = r.URL.Query().Get("next_token")
	if s := r.URL.Query().Get("per_page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, badRequest("per_page=%q is not a positive integer", s)
		}
		args.PerPage = n
	}
	var resp structs.VariableListResponse
	if err := a.RPC("Variable.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.NextToken != "" {
		w.Header().Set("X-Drover-NextToken", resp.NextToken)
		w.Header().Set("X-Nomad-NextToken", resp.NextToken)
	}
	if resp.Variables == nil {
		resp.Variables = []*structs.VariableMetadata{}
	}
	return resp.Variables, nil
}

func (a *Agent) variableGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	path, err := variablePath(r)
	if err != nil {
		return nil, err
	}
	args := structs.VariableReadRequest{Path: path}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	if args.Namespace == structs.AllNamespaces {
		return nil, badRequest("a variable is read in one namespace; namespace=* is for lists")
	}
	var resp structs.VariableReadResponse
	if err := a.RPC("Variable.Read", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Data == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("variable %q not found in namespace %q", path, structs.NamespaceOrDefault(args.Namespace)))
	}
	return resp.Data, nil
}

func (a *Agent) variablePut(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	path, err := variablePath(r)
	if err != nil {
		return nil, err
	}
	cas, err := casParam(r)
	if err != nil {
		return nil, err
	}
	var body variableBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	if body.Path != "" && body.Path != path {
		return nil, badRequest("the body names variable %q but the URL names %q; they must agree", body.Path, path)
	}
	ns := r.URL.Query().Get("namespace")
	switch {
	case ns == "":
		ns = body.Namespace
	case body.Namespace != "" && body.Namespace != ns:
		return nil, badRequest("the body names namespace %q but the query names %q; they must agree", body.Namespace, ns)
	}
	if ns == structs.AllNamespaces {
		return nil, badRequest("a variable is written in one namespace, not %q", ns)
	}
	if err := structs.ValidateVariableItems(body.Items); err != nil {
		return nil, badRequest("%v", err)
	}
	args := structs.VariableUpsertRequest{Path: path, Items: body.Items, CheckIndex: cas}
	args.Namespace = structs.NamespaceOrDefault(ns)
	args.AuthToken = authToken(r)
	var resp structs.VariableWriteResponse
	if err := a.RPC("Variable.Upsert", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	if resp.Conflict != nil {
		return nil, casConflict(path, *cas, resp.Conflict)
	}
	out := &structs.VariableDecrypted{Items: body.Items}
	if resp.Meta != nil {
		out.VariableMetadata = *resp.Meta
	}
	return out, nil
}

func (a *Agent) variableDelete(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	path, err := variablePath(r)
	if err != nil {
		return nil, err
	}
	cas, err := casParam(r)
	if err != nil {
		return nil, err
	}
	ns := r.URL.Query().Get("namespace")
	if ns == structs.AllNamespaces {
		return nil, badRequest("a variable is deleted in one namespace, not %q", ns)
	}
	args := structs.VariableDeleteRequest{Path: path, CheckIndex: cas}
	args.Namespace = structs.NamespaceOrDefault(ns)
	args.AuthToken = authToken(r)
	var resp structs.VariableWriteResponse
	if err := a.RPC("Variable.Delete", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	if resp.Conflict != nil {
		return nil, casConflict(path, *cas, resp.Conflict)
	}
	return map[string]interface{}{"Index": resp.Index}, nil
}

func (a *Agent) rootKeyList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.KeyringListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	args.Namespace = ""
	var resp structs.KeyringListResponse
	if err := a.RPC("Keyring.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Keys == nil {
		resp.Keys = []*structs.RootKeyMeta{}
	}
	return resp.Keys, nil
}

func (a *Agent) rootKeyRotate(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.KeyringRotateRequest
	args.AuthToken = authToken(r)
	var resp structs.KeyringRotateResponse
	if err := a.RPC("Keyring.Rotate", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return resp.Key, nil
}
