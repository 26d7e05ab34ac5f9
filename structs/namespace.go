package structs

import (
	"fmt"
	"regexp"
)

// Namespaces partition jobs and what belongs to them (allocations,
// evaluations, deployments; later services and variables): those are
// keyed by (namespace, ID), so two teams may both run a job "web". ACL
// policies grant capabilities per namespace.
const (
	// DefaultNamespace holds everything that names no namespace. It
	// always exists and cannot be deleted.
	DefaultNamespace = "default"
	// AllNamespaces, in a list request, lists every namespace's objects.
	// It is never a namespace's name.
	AllNamespaces = "*"
)

// Namespace limits.
const (
	// MaxNamespaceNameLength bounds a namespace's name (bytes).
	MaxNamespaceNameLength = 128
	// MaxNamespaceDescriptionLength bounds a namespace's description.
	MaxNamespaceDescriptionLength = 256
	// MaxNamespaceMetaEntries bounds a namespace's meta.
	MaxNamespaceMetaEntries = 64
	// MaxNamespaceMetaBytes bounds each key and value of the meta.
	MaxNamespaceMetaBytes = 512
)

// Namespace is a named partition of the cluster's jobs.
type Namespace struct {
	Name        string
	Description string
	// Quota names the quota specification the namespace is held to
	// (structs/quota.go). It wins over a quota spec's own Namespace
	// field; the quota need not exist yet (no limit until it does).
	Quota       string
	Meta        map[string]string
	CreateIndex uint64
	ModifyIndex uint64
}

// Copy returns a deep copy.
func (n *Namespace) Copy() *Namespace {
	if n == nil {
		return nil
	}
	c := *n
	c.Meta = copyMap(n.Meta)
	return &c
}

// namespaceNameRE is what a namespace name may be: it appears in URLs,
// CLI flags, ACL policies and file names, so it is kept to a safe set.
var namespaceNameRE = regexp.MustCompile(`^[a-zA-Z0-9-]{1,128}$`)

// ValidateNamespaceName checks the name of a namespace that is created
// or named by a request ("*" is not a name: it means every namespace,
// in lists only).
func ValidateNamespaceName(name string) error {
	switch {
	case name == AllNamespaces:
		return fmt.Errorf("namespace %q means every namespace and is accepted only by list requests; name one namespace (letters, digits and dashes)", name)
	case len(name) > MaxNamespaceNameLength:
		return fmt.Errorf("namespace name is %d bytes long; the limit is %d", len(name), MaxNamespaceNameLength)
	case !namespaceNameRE.MatchString(name):
		return fmt.Errorf("namespace name %q is invalid: use 1-128 letters, digits and dashes", name)
	}
	return nil
}

// Validate checks a namespace before it is written: its name, and the
// sizes of what it carries.
func (n *Namespace) Validate() error {
	if n == nil {
		return fmt.Errorf("namespace is missing")
	}
	if err := ValidateNamespaceName(n.Name); err != nil {
		return err
	}
	if len(n.Description) > MaxNamespaceDescriptionLength {
		return fmt.Errorf("namespace %q: the description is %d bytes long; the limit is %d", n.Name, len(n.Description), MaxNamespaceDescriptionLength)
	}
	if !printableName(n.Description) {
		return fmt.Errorf("namespace %q: the description has control characters or invalid UTF-8", n.Name)
	}
	if n.Quota != "" && !namespaceNameRE.MatchString(n.Quota) {
		return fmt.Errorf("namespace %q: quota name %q is invalid: use 1-128 letters, digits and dashes", n.Name, n.Quota)
	}
	if len(n.Meta) > MaxNamespaceMetaEntries {
		return fmt.Errorf("namespace %q: meta has %d entries; the limit is %d", n.Name, len(n.Meta), MaxNamespaceMetaEntries)
	}
	for _, k := range sortedKeys(n.Meta) {
		if k == "" || len(k) > MaxNamespaceMetaBytes || len(n.Meta[k]) > MaxNamespaceMetaBytes {
			return fmt.Errorf("namespace %q: meta key %.40q: keys must be 1-%d bytes and values at most %d", n.Name, k, MaxNamespaceMetaBytes, MaxNamespaceMetaBytes)
		}
	}
	return nil
}

// NamespaceOrDefault returns ns, or DefaultNamespace for "": an object
// or request that names no namespace is in the default one (objects
// written before namespaces existed among them).
func NamespaceOrDefault(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

// NamespaceNotFoundError is the refusal of a write into a namespace
// that does not exist (400: the request names it).
func NamespaceNotFoundError(name string) *CodedError {
	return NewError(CodeInvalid, fmt.Sprintf("namespace %q does not exist; create it first with: drover namespace apply %s", name, name))
}

// JobNamespace decides which namespace a job registration is for: the
// job's own (the job file's `namespace`), or the request's (-namespace,
// DROVER_NAMESPACE, ?namespace=) when the job names none, or the
// default one. A job and a request that name different namespaces are
// refused (400), naming both: silently picking one would put the job
// where its author did not expect it.
func JobNamespace(jobNS, requestNS string) (string, error) {
	switch {
	case jobNS != "" && requestNS != "" && jobNS != requestNS:
		return "", NewError(CodeInvalid, fmt.Sprintf("the job names namespace %q but the request is for namespace %q; make them agree, or drop one (the job's namespace attribute, or -namespace/DROVER_NAMESPACE/?namespace=)", jobNS, requestNS))
	case jobNS != "":
		return jobNS, nil
	}
	return NamespaceOrDefault(requestNS), nil
}

// NamespacedID names a job (or anything keyed by job): job IDs repeat
// across namespaces, so every map and index keyed by job uses both.
type NamespacedID struct {
	Namespace string
	ID        string
}

// NewNamespacedID returns the key of job id in namespace ns ("" is the
// default namespace).
func NewNamespacedID(ns, id string) NamespacedID {
	return NamespacedID{Namespace: NamespaceOrDefault(ns), ID: id}
}

// String renders the key for logs and messages: "namespace/id".
func (n NamespacedID) String() string { return n.Namespace + "/" + n.ID }

// Less orders keys by namespace, then ID, so that work keyed by job is
// done in the same order on every server.
func (n NamespacedID) Less(o NamespacedID) bool {
	if n.Namespace != o.Namespace {
		return n.Namespace < o.Namespace
	}
	return n.ID < o.ID
}

// Key returns the job's (namespace, ID).
func (j *Job) Key() NamespacedID { return NewNamespacedID(j.Namespace, j.ID) }

// JobKey returns the (namespace, ID) of the allocation's job.
func (a *Allocation) JobKey() NamespacedID { return NewNamespacedID(a.Namespace, a.JobID) }

// JobKey returns the (namespace, ID) of the evaluation's job.
func (e *Evaluation) JobKey() NamespacedID { return NewNamespacedID(e.Namespace, e.JobID) }

// JobKey returns the (namespace, ID) of the deployment's job.
func (d *Deployment) JobKey() NamespacedID { return NewNamespacedID(d.Namespace, d.JobID) }

// RequestNamespace returns the namespace a read is about: the one it
// names, or the default one.
func (q *QueryOptions) RequestNamespace() string { return NamespaceOrDefault(q.Namespace) }

// ListNamespace returns the namespace a list request is about: the one
// it names, AllNamespaces for every namespace, or the default one.
func (q *QueryOptions) ListNamespace() string {
	if q.Namespace == AllNamespaces {
		return AllNamespaces
	}
	return q.RequestNamespace()
}

// RequestNamespace returns the namespace a write is about: the one it
// names, or the default one.
func (w *WriteRequest) RequestNamespace() string { return NamespaceOrDefault(w.Namespace) }

// NamespaceListRequest lists namespaces (by name prefix with Prefix).
type NamespaceListRequest struct {
	QueryOptions
}

// NamespaceListResponse carries namespaces, sorted by name.
type NamespaceListResponse struct {
	Namespaces []*Namespace
	QueryMeta
}

// NamespaceSpecificRequest reads one namespace.
type NamespaceSpecificRequest struct {
	Name string
	QueryOptions
}

// SingleNamespaceResponse carries one namespace, nil if unknown.
type SingleNamespaceResponse struct {
	Namespace *Namespace
	QueryMeta
}

// NamespaceUpsertRequest creates or updates namespaces (the Raft entry
// NamespaceUpsertRequestType).
type NamespaceUpsertRequest struct {
	Namespaces []*Namespace
	WriteRequest
}

// NamespaceDeleteRequest deletes namespaces by name (the Raft entry
// NamespaceDeleteRequestType).
type NamespaceDeleteRequest struct {
	Names []string
	WriteRequest
}
