package agent

import (
	"fmt"
	"net/http"

	"github.com/droverhq/drover/structs"
)

// Namespaces over HTTP, with Nomad's paths: GET /v1/namespaces, and
// GET|PUT|POST|DELETE /v1/namespace/{name} (PUT|POST /v1/namespace with
// the name in the body, as Nomad also accepts). Every other read and
// write takes ?namespace=NAME (the default namespace when absent);
// lists also take ?namespace=* for every namespace.

// queryNamespace reads ?namespace= from r: "" when absent (the server
// takes the default namespace), "*" only when allowAll (lists), else a
// valid namespace name.
func queryNamespace(r *http.Request, allowAll bool) (string, error) {
	ns := r.URL.Query().Get("namespace")
	switch {
	case ns == "":
		return "", nil
	case ns == structs.AllNamespaces && allowAll:
		return ns, nil
	case ns == structs.AllNamespaces:
		return "", badRequest("namespace=* is accepted by lists only (GET /v1/jobs, /v1/allocations, /v1/evaluations, /v1/deployments); name one namespace for %s %s", r.Method, r.URL.Path)
	}
	if err := structs.ValidateNamespaceName(ns); err != nil {
		return "", badRequest("namespace=%.140q: %v", ns, err)
	}
	return ns, nil
}

// parseWriteRequest reads the options of a write: ?namespace= (one
// namespace, never "*"), and the request's ACL token.
func parseWriteRequest(r *http.Request, w *structs.WriteRequest) error {
	ns, err := queryNamespace(r, false)
	if err != nil {
		return err
	}
	w.Namespace = ns
	w.AuthToken = authToken(r)
	return nil
}

// parseSingleQuery is parseQueryOptions for a read of one job or of
// what belongs to one job: it names one namespace, never "*".
func parseSingleQuery(r *http.Request, q *structs.QueryOptions) error {
	if err := parseQueryOptions(r, q); err != nil {
		return err
	}
	if q.Namespace == structs.AllNamespaces {
		_, err := queryNamespace(r, false)
		return err
	}
	return nil
}

// namespaceBody is the body of PUT /v1/namespace/{name} (and of PUT
// /v1/namespace, where Name is required).
type namespaceBody struct {
	// Name, when set, must be the name in the path.
	Name        string
	Description string
	Quota       string
	Meta        map[string]string
}

func (a *Agent) namespaceList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.NamespaceListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	// The list is of namespaces, not in one: ?namespace= means nothing.
	args.Namespace = ""
	args.AuthToken = authToken(r)
	var resp structs.NamespaceListResponse
	if err := a.RPC("Namespace.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Namespaces == nil {
		resp.Namespaces = []*structs.Namespace{}
	}
	return resp.Namespaces, nil
}

// namespaceName reads {name} from the path.
func namespaceName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := structs.ValidateNamespaceName(name); err != nil {
		return "", badRequest("%v", err)
	}
	return name, nil
}

func (a *Agent) namespaceGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	name, err := namespaceName(r)
	if err != nil {
		return nil, err
	}
	args := structs.NamespaceSpecificRequest{Name: name}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	args.Namespace = ""
	args.AuthToken = authToken(r)
	var resp structs.SingleNamespaceResponse
	if err := a.RPC("Namespace.Get", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Namespace == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("namespace %q not found", name))
	}
	return resp.Namespace, nil
}

// namespaceUpsert serves PUT|POST /v1/namespace/{name} and PUT|POST
// /v1/namespace (name in the body).
func (a *Agent) namespaceUpsert(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var body namespaceBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	name := body.Name
	if path := r.PathValue("name"); path != "" {
		if body.Name != "" && body.Name != path {
			return nil, badRequest("the body names namespace %q but the path names %q; they must agree", body.Name, path)
		}
		name = path
	}
	if name == "" {
		return nil, badRequest(`the namespace has no name: PUT /v1/namespace/NAME, or send {"Name": "NAME", ...}`)
	}
	ns := &structs.Namespace{Name: name, Description: body.Description, Quota: body.Quota, Meta: body.Meta}
	if err := ns.Validate(); err != nil {
		return nil, badRequest("%v", err)
	}
	args := structs.NamespaceUpsertRequest{Namespaces: []*structs.Namespace{ns}}
	args.AuthToken = authToken(r)
	var resp structs.GenericResponse
	if err := a.RPC("Namespace.Upsert", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return map[string]interface{}{"Index": resp.Index}, nil
}

func (a *Agent) namespaceDelete(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	name, err := namespaceName(r)
	if err != nil {
		return nil, err
	}
	args := structs.NamespaceDeleteRequest{Names: []string{name}}
	args.AuthToken = authToken(r)
	var resp structs.GenericResponse
	if err := a.RPC("Namespace.Delete", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return map[string]interface{}{"Index": resp.Index}, nil
}

func (a *Agent) evalList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.EvalListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	var resp structs.EvalListResponse
	if err := a.RPC("Eval.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Evaluations == nil {
		resp.Evaluations = []*structs.Evaluation{}
	}
	return resp.Evaluations, nil
}
