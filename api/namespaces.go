package api

import "net/http"

// DefaultNamespace holds every job that names no namespace; it always
// exists and cannot be deleted.
const DefaultNamespace = "default"

// AllNamespaces, as QueryOptions.Namespace (or Config.Namespace), lists
// every namespace's jobs, allocations, evaluations or deployments.
const AllNamespaces = "*"

// Namespace is a named partition of the cluster's jobs.
type Namespace struct {
	Name        string
	Description string
	// Quota names the quota specification the namespace is held to.
	Quota       string
	Meta        map[string]string
	CreateIndex uint64
	ModifyIndex uint64
}

// namespaceBody is the JSON of PUT /v1/namespace/{name}.
type namespaceBody struct {
	Name        string
	Description string
	Quota       string            `json:",omitempty"`
	Meta        map[string]string `json:",omitempty"`
}

// Namespaces returns the namespace endpoints: /v1/namespaces and
// /v1/namespace/{name}. They are about namespaces themselves, so the
// client's own namespace does not apply to them.
func (c *Client) Namespaces() *Namespaces { return &Namespaces{c: c.WithNamespace("")} }

// Namespaces is /v1/namespaces and /v1/namespace/{name}.
type Namespaces struct{ c *Client }

// List lists the namespaces, by name (QueryOptions.Prefix filters by
// name prefix).
func (n *Namespaces) List(q *QueryOptions) ([]*Namespace, *QueryMeta, error) {
	var out []*Namespace
	if q != nil {
		c := *q
		c.Namespace = ""
		q = &c
	}
	meta, err := n.c.query("/v1/namespaces", &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, meta, nil
}

// Info reads one namespace; an unknown one is a 404 (see IsNotFound).
func (n *Namespaces) Info(name string, q *QueryOptions) (*Namespace, *QueryMeta, error) {
	var out Namespace
	if q != nil {
		c := *q
		c.Namespace = ""
		q = &c
	}
	meta, err := n.c.query("/v1/namespace/"+escape(name), &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, meta, nil
}

// Register creates or updates a namespace.
func (n *Namespaces) Register(ns *Namespace) (*WriteMeta, error) {
	body := &namespaceBody{Name: ns.Name, Description: ns.Description, Quota: ns.Quota, Meta: ns.Meta}
	var out indexBody
	return n.c.write(http.MethodPut, "/v1/namespace/"+escape(ns.Name), nil, body, &out)
}

// Delete deletes a namespace. The default namespace cannot be deleted
// (400), nor one that still holds jobs (409, naming how many): purge
// them first.
func (n *Namespaces) Delete(name string) (*WriteMeta, error) {
	var out indexBody
	return n.c.write(http.MethodDelete, "/v1/namespace/"+escape(name), nil, nil, &out)
}
