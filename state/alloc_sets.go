package state

import (
	"fmt"
	"sort"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// Allocations are listed by node (the scheduler, the plan applier,
// clients) and by job (the scheduler, job status). These were memdb
// indexes on the allocs table; each index entry costs ~370 bytes of
// radix tree (a leaf, a node, two watch channels, the key), twice per
// allocation on every server, and every allocation write (placement,
// then every client status report) re-inserted the allocation in both.
// They are derived rows instead, one per node and one per job, holding
// the current version of each of its allocations sorted by ID (8 bytes
// per allocation per row). A transaction rewrites the row of every node
// and job whose allocations it changed, once, at its end; a watch on the
// row fires when any of them changes, as the index's did.
//
// The rows are rebuilt on restore and are not written to snapshots.
//
// A job's row is keyed by its namespace and ID (jobAllocsKey): job IDs
// repeat across namespaces.

const (
	tableNodeAllocs = "node_allocs"
	tableJobAllocs  = "job_allocs"
)

// allocSet holds the allocations on one node or of one job, sorted by
// ID. Stored rows are never modified: a change writes a new row.
type allocSet struct {
	Key    string
	Allocs []*structs.Allocation
}

func allocSetSchema(name string) *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: name,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		},
	}
}

// allocSetWriter gathers the allocations a transaction writes, so that
// each node's and job's row is rewritten once per transaction rather
// than once per allocation (a job of 1,000 would copy its row 1,000
// times).
type allocSetWriter struct {
	node, job map[string][]*structs.Allocation
	// usage holds, per namespace, the change of its quota usage
	// (quotas.go).
	usage map[string]structs.QuotaLimits
	// services holds, by ID, the allocations whose service instances
	// the transaction must re-derive (services.go).
	services map[string]*structs.Allocation
	// nodeGone and jobGone hold, per row key, the IDs of allocations
	// the transaction deleted (the garbage collector's, gc.go).
	nodeGone, jobGone map[string]map[string]bool
}

// remove records an allocation the transaction deleted: it leaves its
// node's and job's rows when w is flushed.
func (w *allocSetWriter) remove(a *structs.Allocation) {
	if w.nodeGone == nil {
		w.nodeGone, w.jobGone = make(map[string]map[string]bool), make(map[string]map[string]bool)
	}
	for _, g := range []struct {
		m   map[string]map[string]bool
		key string
	}{{w.nodeGone, a.NodeID}, {w.jobGone, jobAllocsKey(a.Namespace, a.JobID)}} {
		if g.m[g.key] == nil {
			g.m[g.key] = make(map[string]bool)
		}
		g.m[g.key][a.ID] = true
	}
}

// put records an allocation version written in the transaction (new or
// changed). The last version put of an ID wins.
func (w *allocSetWriter) put(a *structs.Allocation) {
	if w.node == nil {
		w.node, w.job = make(map[string][]*structs.Allocation), make(map[string][]*structs.Allocation)
	}
	w.node[a.NodeID] = append(w.node[a.NodeID], a)
	key := jobAllocsKey(a.Namespace, a.JobID)
	w.job[key] = append(w.job[key], a)
}

// jobAllocsKey is the key of job (namespace, jobID)'s row. Neither part
// contains a NUL byte (namespace names are letters, digits and dashes),
// so distinct jobs never share a key.
func jobAllocsKey(namespace, jobID string) string {
	return structs.NamespaceOrDefault(namespace) + "\x00" + jobID
}

// flush writes the rows; reads in txn see them after. Call it before
// listing by node or job in the same transaction, and before commit.
func (w *allocSetWriter) flush(txn *memdb.Txn) error {
	for _, t := range []struct {
		table string
		m     map[string][]*structs.Allocation
		gone  map[string]map[string]bool
	}{{tableNodeAllocs, w.node, w.nodeGone}, {tableJobAllocs, w.job, w.jobGone}} {
		for key, changed := range t.m {
			if err := writeSetTxn(txn, t.table, key, changed, t.gone[key]); err != nil {
				return err
			}
		}
		for key, gone := range t.gone {
			if _, done := t.m[key]; done {
				continue
			}
			if err := writeSetTxn(txn, t.table, key, nil, gone); err != nil {
				return err
			}
		}
	}
	w.node, w.job, w.nodeGone, w.jobGone = nil, nil, nil, nil
	return w.flushUsage(txn)
}

// writeSetTxn writes key's row with changed merged in: allocations with
// an ID already in the row replace it, others are added; those in gone
// leave it. A row left empty by gone is deleted.
func writeSetTxn(txn *memdb.Txn, table, key string, changed []*structs.Allocation, gone map[string]bool) error {
	// Sort by ID keeping put order among equal IDs, then keep the last.
	sort.SliceStable(changed, func(i, j int) bool { return changed[i].ID < changed[j].ID })
	latest := changed[:0:0]
	for i, a := range changed {
		if i+1 < len(changed) && changed[i+1].ID == a.ID {
			continue
		}
		latest = append(latest, a)
	}
	var old []*structs.Allocation
	raw, err := txn.First(table, "id", key)
	if err != nil {
		return fmt.Errorf("%s lookup: %w", table, err)
	}
	if raw != nil {
		old = raw.(*allocSet).Allocs
	}
	merged := make([]*structs.Allocation, 0, len(old)+len(latest))
	i, j := 0, 0
	for i < len(old) || j < len(latest) {
		switch {
		case j == len(latest) || (i < len(old) && old[i].ID < latest[j].ID):
			merged = append(merged, old[i])
			i++
		case i == len(old) || latest[j].ID < old[i].ID:
			merged = append(merged, latest[j])
			j++
		default: // the same allocation: the new version
			merged = append(merged, latest[j])
			i++
			j++
		}
	}
	if len(gone) > 0 {
		kept := merged[:0]
		for _, a := range merged {
			if !gone[a.ID] {
				kept = append(kept, a)
			}
		}
		merged = kept
		if len(merged) == 0 {
			if raw == nil {
				return nil
			}
			if err := txn.Delete(table, raw); err != nil {
				return fmt.Errorf("%s delete: %w", table, err)
			}
			return nil
		}
	}
	if err := txn.Insert(table, &allocSet{Key: key, Allocs: merged}); err != nil {
		return fmt.Errorf("%s insert: %w", table, err)
	}
	return nil
}

// allocSetTxn returns key's row, read-only; with ws, it watches it.
func allocSetTxn(txn *memdb.Txn, ws memdb.WatchSet, table, key string) ([]*structs.Allocation, error) {
	ch, raw, err := txn.FirstWatch(table, "id", key)
	if err != nil {
		return nil, fmt.Errorf("%s lookup: %w", table, err)
	}
	watch(ws, ch)
	if raw == nil {
		return nil, nil
	}
	return raw.(*allocSet).Allocs, nil
}

// allocsInSetTxn returns a copy of key's row, the caller's to modify.
func allocsInSetTxn(txn *memdb.Txn, ws memdb.WatchSet, table, key string) ([]*structs.Allocation, error) {
	row, err := allocSetTxn(txn, ws, table, key)
	if err != nil || len(row) == 0 {
		return nil, err
	}
	return append([]*structs.Allocation(nil), row...), nil
}
