package state

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/droverhq/drover/structs"
)

// UpsertNode registers a node or updates its fingerprint. The node's
// scheduling eligibility is kept from the existing record when the
// update does not set one. evals are written in the same transaction.
func (s *StateStore) UpsertNode(index uint64, node *structs.Node, updatedAt int64, evals []*structs.Evaluation) error {
	s.detachNodeViews()
	txn := s.writeTxn()
	defer txn.Abort()
	raw, err := txn.First(TableNodes, "id", node.ID)
	if err != nil {
		return fmt.Errorf("node lookup: %w", err)
	}
	n := node.Copy()
	if raw != nil {
		existing := raw.(*structs.Node)
		n.CreateIndex = existing.CreateIndex
		if n.SchedulingEligibility == "" {
			n.SchedulingEligibility = existing.SchedulingEligibility
		}
		if n.Status != existing.Status {
			n.StatusUpdatedAt = updatedAt
		} else {
			n.StatusUpdatedAt = existing.StatusUpdatedAt
		}
	} else {
		n.CreateIndex = index
		n.StatusUpdatedAt = updatedAt
	}
	if n.SchedulingEligibility == "" {
		n.SchedulingEligibility = structs.NodeSchedulingEligible
	}
	n.ModifyIndex = index
	if err := txn.Insert(TableNodes, n); err != nil {
		return fmt.Errorf("insert node: %w", err)
	}
	if err := setIndex(txn, index, TableNodes); err != nil {
		return err
	}
	// A node back with another address: its instances move with it.
	if raw == nil || nodeAddress(raw.(*structs.Node)) != nodeAddress(n) {
		if err := refreshNodeInstancesTxn(txn, index, n.ID, nodeAddress(n)); err != nil {
			return err
		}
	}
	if err := upsertEvalsTxn(txn, index, evals); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// UpdateNodeStatus changes a node's status. evals are written in the same
// transaction.
func (s *StateStore) UpdateNodeStatus(index uint64, nodeID, status string, updatedAt int64, evals []*structs.Evaluation) error {
	return s.updateNode(index, nodeID, evals, func(n *structs.Node) error {
		if n.Status != status {
			n.StatusUpdatedAt = updatedAt
		}
		n.Status = status
		return nil
	})
}

// updateNode applies change to a copy of the node and writes it, with
// evals, in one transaction at index.
func (s *StateStore) updateNode(index uint64, nodeID string, evals []*structs.Evaluation, change func(*structs.Node) error) error {
	s.detachNodeViews()
	txn := s.writeTxn()
	defer txn.Abort()
	raw, err := txn.First(TableNodes, "id", nodeID)
	if err != nil {
		return fmt.Errorf("node lookup: %w", err)
	}
	if raw == nil {
		return fmt.Errorf("node %q: %w", nodeID, ErrNotFound)
	}
	n := raw.(*structs.Node).Copy()
	if err := change(n); err != nil {
		return err
	}
	n.ModifyIndex = index
	if err := txn.Insert(TableNodes, n); err != nil {
		return fmt.Errorf("update node: %w", err)
	}
	if err := setIndex(txn, index, TableNodes); err != nil {
		return err
	}
	if err := upsertEvalsTxn(txn, index, evals); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// DeleteNode removes a node.
func (s *StateStore) DeleteNode(index uint64, nodeID string) error {
	s.detachNodeViews()
	txn := s.writeTxn()
	defer txn.Abort()
	raw, err := txn.First(TableNodes, "id", nodeID)
	if err != nil {
		return fmt.Errorf("node lookup: %w", err)
	}
	if raw == nil {
		return fmt.Errorf("node %q: %w", nodeID, ErrNotFound)
	}
	if err := txn.Delete(TableNodes, raw); err != nil {
		return fmt.Errorf("delete node: %w", err)
	}
	if err := setIndex(txn, index, TableNodes); err != nil {
		return err
	}
	// Instances of its allocations that still have them lose the
	// address.
	if err := refreshNodeInstancesTxn(txn, index, nodeID, ""); err != nil {
		return err
	}
	s.commit(txn)
	return nil
}

// NodeByID returns the node, or nil.
func (s *StateStore) NodeByID(ws memdb.WatchSet, id string) (*structs.Node, error) {
	raw, err := first(s.db.Txn(false), ws, TableNodes, "id", id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*structs.Node), nil
}

// NodesByIDPrefix returns the nodes whose ID starts with prefix.
func (s *StateStore) NodesByIDPrefix(ws memdb.WatchSet, prefix string) ([]*structs.Node, error) {
	return collect[*structs.Node](s.db.Txn(false), ws, TableNodes, "id_prefix", prefix)
}

// Nodes returns every node, sorted by ID.
func (s *StateStore) Nodes(ws memdb.WatchSet) ([]*structs.Node, error) {
	return collect[*structs.Node](s.db.Txn(false), ws, TableNodes, "id")
}

// UpdateNodeDrain starts a drain (strategy set; the node becomes
// ineligible) or ends one (strategy nil; markEligible makes it eligible
// again).
func (s *StateStore) UpdateNodeDrain(index uint64, nodeID string, strategy *structs.DrainStrategy, markEligible bool, updatedAt int64) error {
	return s.updateNode(index, nodeID, nil, func(n *structs.Node) error {
		n.DrainStrategy = strategy.Copy()
		switch {
		case strategy != nil:
			n.SchedulingEligibility = structs.NodeSchedulingIneligible
		case markEligible:
			n.SchedulingEligibility = structs.NodeSchedulingEligible
		}
		return nil
	})
}

// UpdateNodeEligibility sets a node's scheduling eligibility. A draining
// node cannot be made eligible. evals are written in the same
// transaction.
func (s *StateStore) UpdateNodeEligibility(index uint64, nodeID, eligibility string, evals []*structs.Evaluation) error {
	return s.updateNode(index, nodeID, evals, func(n *structs.Node) error {
		if n.DrainStrategy != nil && eligibility == structs.NodeSchedulingEligible {
			return structs.NewError(structs.CodeConflict, fmt.Sprintf("node %s is draining; stop the drain to make it eligible", nodeID))
		}
		n.SchedulingEligibility = eligibility
		return nil
	})
}

// ShareNodeStrings makes decoded allocations refer to the node IDs and
// names the nodes table already holds, instead of each carrying its own
// copy: the allocation's node, and the nodes its placement metrics
// scored (three 36-byte IDs per allocation). Only for objects the
// caller owns (the FSM's decoded requests): it rewrites string fields
// to equal values.
func (s *StateStore) ShareNodeStrings(allocs []*structs.Allocation) {
	txn := s.db.Txn(false)
	lookup := func(id string) *structs.Node {
		raw, err := txn.First(TableNodes, "id", id)
		if err != nil || raw == nil {
			return nil
		}
		return raw.(*structs.Node)
	}
	for _, a := range allocs {
		if n := lookup(a.NodeID); n != nil {
			a.NodeID = n.ID
			if a.NodeName == n.Name {
				a.NodeName = n.Name
			}
		}
		if a.Metrics == nil {
			continue
		}
		for _, m := range a.Metrics.ScoreMetaData {
			if m.NodeID == a.NodeID {
				m.NodeID = a.NodeID
			} else if n := lookup(m.NodeID); n != nil {
				m.NodeID = n.ID
			}
		}
	}
}
