package api

import "net/http"

// QuotaLimits is an amount per dimension; in a QuotaSpec, 0 means
// unlimited.
type QuotaLimits struct {
	// CPU in MHz.
	CPU int64
	// MemoryMB in MB.
	MemoryMB    int64
	Allocations int64
}

// QuotaSpec is a named set of limits bound to a namespace: by the
// namespace's Quota field (which wins), or by its own Namespace field.
type QuotaSpec struct {
	Name        string
	Description string
	Namespace   string
	Limits      QuotaLimits
	CreateIndex uint64
	ModifyIndex uint64
}

// QuotaUsage is a quota's limits and what its namespace's non-terminal
// allocations use.
type QuotaUsage struct {
	Name      string
	Namespace string
	Used      QuotaLimits
	Limits    QuotaLimits
}

// quotaBody is the JSON of PUT /v1/quota/{name}.
type quotaBody struct {
	Name        string
	Description string `json:",omitempty"`
	Namespace   string `json:",omitempty"`
	Limits      QuotaLimits
}

// Quotas returns the quota endpoints: /v1/quotas, /v1/quota/{name} and
// /v1/quota/usage/{name}. Quotas are not in a namespace, so the
// client's own namespace does not apply to them.
func (c *Client) Quotas() *Quotas { return &Quotas{c: c.WithNamespace("")} }

// Quotas is /v1/quotas and /v1/quota/{name}.
type Quotas struct{ c *Client }

func noNamespace(q *QueryOptions) *QueryOptions {
	if q == nil {
		return nil
	}
	c := *q
	c.Namespace = ""
	return &c
}

// List lists the quota specs, by name (QueryOptions.Prefix filters by
// name prefix).
func (n *Quotas) List(q *QueryOptions) ([]*QuotaSpec, *QueryMeta, error) {
	var out []*QuotaSpec
	meta, err := n.c.query("/v1/quotas", &out, noNamespace(q))
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info reads one quota spec; an unknown one is a 404 (see IsNotFound).
func (n *Quotas) Info(name string, q *QueryOptions) (*QuotaSpec, *QueryMeta, error) {
	var out QuotaSpec
	meta, err := n.c.query("/v1/quota/"+escape(name), &out, noNamespace(q))
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Usage reads a quota's limits and its namespace's usage.
func (n *Quotas) Usage(name string, q *QueryOptions) (*QuotaUsage, *QueryMeta, error) {
	var out QuotaUsage
	meta, err := n.c.query("/v1/quota/usage/"+escape(name), &out, noNamespace(q))
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Register creates or updates a quota spec.
func (n *Quotas) Register(spec *QuotaSpec) (*WriteMeta, error) {
	body := &quotaBody{Name: spec.Name, Description: spec.Description, Namespace: spec.Namespace, Limits: spec.Limits}
	var out indexBody
	return n.c.write(http.MethodPut, "/v1/quota/"+escape(spec.Name), nil, body, &out)
}

// Delete deletes a quota spec. One a namespace's Quota field names is
// refused (409): unbind it first.
func (n *Quotas) Delete(name string) (*WriteMeta, error) {
	var out indexBody
	return n.c.write(http.MethodDelete, "/v1/quota/"+escape(name), nil, nil, &out)
}
