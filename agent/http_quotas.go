package agent

import (
	"fmt"
	"net/http"

	"github.com/droverhq/drover/structs"
)

// Quotas over HTTP: GET /v1/quotas (?prefix=), GET|PUT|POST|DELETE
// /v1/quota/{name}, and GET /v1/quota/usage/{name} (limits and what the
// bound namespace's allocations use). The servers authorize (quota:read,
// quota:write); the agent carries the token.

// quotaBody is the body of PUT|POST /v1/quota/{name}.
type quotaBody struct {
	// Name, when set, must be the name in the path.
	Name        string
	Description string
	Namespace   string
	Limits      structs.QuotaLimits
}

// quotaName reads {name} from the path.
func quotaName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	if err := structs.ValidateQuotaName(name); err != nil {
		return "", badRequest("%v", err)
	}
	return name, nil
}

func (a *Agent) quotaList(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var args structs.QuotaListRequest
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return nil, err
	}
	// Quotas are not in a namespace: ?namespace= means nothing here.
	args.Namespace = ""
	args.AuthToken = authToken(r)
	var resp structs.QuotaListResponse
	if err := a.RPC("Quota.List", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Quotas == nil {
		resp.Quotas = []*structs.QuotaSpec{}
	}
	return resp.Quotas, nil
}

// quotaReadRequest is the request of a read of one quota: its name from
// the path, the query options and token; quotas have no namespace.
func quotaReadRequest(r *http.Request) (structs.QuotaSpecificRequest, error) {
	name, err := quotaName(r)
	if err != nil {
		return structs.QuotaSpecificRequest{}, err
	}
	args := structs.QuotaSpecificRequest{Name: name}
	if err := parseQueryOptions(r, &args.QueryOptions); err != nil {
		return args, err
	}
	args.Namespace = ""
	args.AuthToken = authToken(r)
	return args, nil
}

func (a *Agent) quotaGet(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args, err := quotaReadRequest(r)
	if err != nil {
		return nil, err
	}
	var resp structs.SingleQuotaResponse
	if err := a.RPC("Quota.Get", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Quota == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("quota %q not found", args.Name))
	}
	return resp.Quota, nil
}

func (a *Agent) quotaUsage(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	args, err := quotaReadRequest(r)
	if err != nil {
		return nil, err
	}
	var resp structs.QuotaUsageResponse
	if err := a.RPC("Quota.Usage", &args, &resp); err != nil {
		return nil, err
	}
	setMeta(w, resp.QueryMeta)
	if resp.Usage == nil {
		return nil, structs.NewError(structs.CodeNotFound, fmt.Sprintf("quota %q not found", args.Name))
	}
	return resp.Usage, nil
}

func (a *Agent) quotaUpsert(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	name, err := quotaName(r)
	if err != nil {
		return nil, err
	}
	var body quotaBody
	if err := a.decodeBody(w, r, &body); err != nil {
		return nil, err
	}
	if body.Name != "" && body.Name != name {
		return nil, badRequest("the body names quota %q but the path names %q; they must agree", body.Name, name)
	}
	spec := &structs.QuotaSpec{Name: name, Description: body.Description, Namespace: body.Namespace, Limits: body.Limits}
	if err := spec.Validate(); err != nil {
		return nil, badRequest("%v", err)
	}
	args := structs.QuotaUpsertRequest{Quotas: []*structs.QuotaSpec{spec}}
	args.AuthToken = authToken(r)
	var resp structs.GenericResponse
	if err := a.RPC("Quota.Upsert", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return map[string]interface{}{"Index": resp.Index}, nil
}

func (a *Agent) quotaDelete(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	name, err := quotaName(r)
	if err != nil {
		return nil, err
	}
	args := structs.QuotaDeleteRequest{Names: []string{name}}
	args.AuthToken = authToken(r)
	var resp structs.GenericResponse
	if err := a.RPC("Quota.Delete", &args, &resp); err != nil {
		return nil, err
	}
	setIndex(w, resp.Index)
	return map[string]interface{}{"Index": resp.Index}, nil
}
