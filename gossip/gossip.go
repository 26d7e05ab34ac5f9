package gossip

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Member statuses.
const (
	StatusAlive   = "alive"
	StatusSuspect = "suspect"
	// StatusFailed members stopped answering; they may come back.
	StatusFailed = "failed"
	// StatusLeft members left gracefully.
	StatusLeft = "left"
)

// Meta is what an agent advertises about itself. It travels as JSON in
// memberlist's node metadata, which is limited to 512 bytes.
type Meta struct {
	Server bool `json:"s,omitempty"`
	Client bool `json:"c,omitempty"`
	// RPCAddr is the server's RPC (and Raft) address, host:port.
	RPCAddr string `json:"r,omitempty"`
	// RaftID is the server's stable Raft ID.
	RaftID string `json:"id,omitempty"`
	// BootstrapExpect is the server's bootstrap_expect.
	BootstrapExpect int    `json:"b,omitempty"`
	Datacenter      string `json:"dc,omitempty"`
	// Region names the cluster the agent belongs to; servers of other
	// regions are never made Raft peers.
	Region   string `json:"rg,omitempty"`
	HTTPAddr string `json:"h,omitempty"`
	Version  string `json:"v,omitempty"`
	// LogTypes is, for a server, the highest Raft log message type it
	// applies (structs.MaxMessageType of its build); 0 from servers too
	// old to say. The leader writes no entry some server would refuse.
	LogTypes int `json:"lt,omitempty"`

	// Keys and PrimaryKey are the fingerprints (see Fingerprint) of the
	// member's gossip keys, primary first, and of its primary key; empty
	// without encryption. The pool fills them in from its keyring: what
	// Config.Meta says is ignored.
	Keys       []string `json:"k,omitempty"`
	PrimaryKey string   `json:"kp,omitempty"`
}

// Member is one agent of the pool as this agent sees it.
type Member struct {
	Name   string
	Addr   string
	Port   int
	Status string
	Meta
}

// Config configures a Pool.
type Config struct {
	// Name must be unique in the pool.
	Name string
	// BindAddr and BindPort are where the gossip listeners (TCP and UDP)
	// bind; AdvertiseAddr is what others are told (default BindAddr).
	BindAddr      string
	BindPort      int
	AdvertiseAddr string
	Meta          Meta
	Logger        hclog.Logger

	// EncryptKey is the base64 gossip key (16, 24 or 32 bytes) that
	// turns encryption on, used when KeyringFile does not exist yet.
	EncryptKey string
	// KeyringFile persists the keyring (JSON list of base64 keys,
	// primary first, mode 0600) so that keys installed or rotated at
	// runtime survive a restart. When it exists it wins over EncryptKey.
	// Empty keeps the keyring in memory only.
	KeyringFile string
	// KeyringWait bounds how long a keyring operation waits for every
	// alive member to reflect it (default DefaultKeyringWait).
	KeyringWait time.Duration
}

// DefaultKeyringWait is how long a keyring operation waits for every
// alive member to reflect the change.
const DefaultKeyringWait = 10 * time.Second

// Pool is this agent's membership in the gossip pool.
type Pool struct {
	ml     *memberlist.Memberlist
	logger hclog.Logger
	// meta is what this agent advertises besides its key fingerprints;
	// it does not change after New.
	meta Meta

	// keyring is memberlist's, nil without encryption. keyringLock
	// serializes its changes and the writes of keyringFile; opLock
	// serializes the cluster-wide operations this agent was asked for
	// (it is held while they wait, keyringLock is not, so changes sent
	// by other members still apply meanwhile).
	keyring     *memberlist.Keyring
	keyringFile string
	keyringWait time.Duration
	keyringLock sync.Mutex
	opLock      sync.Mutex

	// l guards members, leaving and subscribers.
	l       sync.Mutex
	members map[string]*Member
	// leaving holds members that announced a graceful leave; memberlist
	// reports leaves and failures alike, so this is how they differ.
	leaving     map[string]bool
	subscribers []chan struct{}

	// name is this agent's name (memberlist's own lock is held when it
	// reports conflicts, so the pool keeps its own copy).
	name string
	// conflictMu guards conflicts and lastConflictLog.
	conflictMu sync.Mutex
	// conflicts counts the times another member claimed this agent's
	// name from another address; conflictAddr is the latest such address.
	conflicts       int
	conflictAddr    string
	lastConflictLog time.Time
}

// NameConflictError says another member of the pool uses this agent's
// name.
type NameConflictError struct {
	Name, Addr string
}

func (e *NameConflictError) Error() string {
	return fmt.Sprintf("node name %q is already used by %s; set -node-name", e.Name, e.Addr)
}

// conflictLogEvery rate-limits the log line of a name conflict.
const conflictLogEvery = 5 * time.Second

// conflicts is memberlist's conflict delegate: it is told when a member
// claims a name that another address holds.
type conflicts struct{ pool *Pool }

func (c *conflicts) NotifyConflict(existing, other *memberlist.Node) {
	p := c.pool
	p.conflictMu.Lock()
	defer p.conflictMu.Unlock()
	mine := existing.Name == p.name
	if mine {
		p.conflicts++
		p.conflictAddr = other.Addr.String()
	}
	if time.Since(p.lastConflictLog) < conflictLogEvery {
		return
	}
	p.lastConflictLog = time.Now()
	if mine {
		p.logger.Error((&NameConflictError{Name: p.name, Addr: other.Addr.String()}).Error())
		return
	}
	p.logger.Error("two members claim one node name; the later one is ignored until it takes another name",
		"name", existing.Name, "holder", existing.Addr.String(), "claimant", other.Addr.String())
}

// nameConflicts returns how many conflicts over this agent's name were
// seen, and the latest claimant's address.
func (p *Pool) nameConflicts() (int, string) {
	p.conflictMu.Lock()
	defer p.conflictMu.Unlock()
	return p.conflicts, p.conflictAddr
}

// New joins nobody yet: it starts this agent's gossip listeners. Call
// Join to reach the pool.
func New(cfg Config) (*Pool, error) {
	if cfg.Name == "" {
		return nil, fmt.Errorf("gossip: a node name is required")
	}
	base := cfg.Meta
	base.Keys, base.PrimaryKey = nil, ""
	meta, err := json.Marshal(base)
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("gossip: member metadata is %d bytes, over memberlist's %d", len(meta), memberlist.MetaMaxSize)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	p := &Pool{logger: logger.Named("gossip"), meta: base, members: make(map[string]*Member), leaving: make(map[string]bool), name: cfg.Name,
		keyringFile: cfg.KeyringFile, keyringWait: cfg.KeyringWait}
	if p.keyringWait <= 0 {
		p.keyringWait = DefaultKeyringWait
	}
	keys, err := p.initialKeys(cfg)
	if err != nil {
		return nil, err
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.BindPort
	mc.Delegate = &delegate{pool: p}
	mc.Events = &events{pool: p}
	mc.Conflict = &conflicts{pool: p}
	mc.Logger = log.New(&logAdapter{logger: p.logger}, "", 0)
	// A restarted agent comes back under the same name at once instead
	// of waiting for its old incarnation to be reaped.
	mc.DeadNodeReclaimTime = time.Second
	if len(keys) > 0 {
		kr, err := memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip keyring: %w", err)
		}
		p.keyring = kr
		mc.Keyring = kr
		// Both on: a member sends nothing in the clear and drops whatever
		// arrives in the clear, so a stranger can neither join nor be
		// heard.
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	p.ml = ml
	return p, nil
}

// Join contacts the given gossip addresses (host or host:port) and
// returns how many answered. A member that answered with this agent's
// name at another address makes it a *NameConflictError: the agent that
// joins is the one that must take another name (the pool keeps the
// member it had).
func (p *Pool) Join(addrs []string) (int, error) {
	before, _ := p.nameConflicts()
	n, err := p.ml.Join(addrs)
	if after, addr := p.nameConflicts(); after > before {
		return n, &NameConflictError{Name: p.name, Addr: addr}
	}
	return n, err
}

// LocalName returns this agent's name in the pool.
func (p *Pool) LocalName() string { return p.ml.LocalNode().Name }

// LocalMember returns this agent as the pool sees it.
func (p *Pool) LocalMember() Member {
	name := p.LocalName()
	p.l.Lock()
	m := p.members[name]
	p.l.Unlock()
	if m != nil {
		return *m
	}
	n := p.ml.LocalNode()
	return Member{Name: name, Addr: n.Addr.String(), Port: int(n.Port), Status: StatusAlive, Meta: p.currentMeta()}
}

// Encrypted reports whether this agent gossips encrypted.
func (p *Pool) Encrypted() bool { return p.keyring != nil }

// LocalAddr returns this agent's gossip address, host:port.
func (p *Pool) LocalAddr() string {
	n := p.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Members returns every member this agent has seen, including failed
// and left ones, sorted by name.
func (p *Pool) Members() []Member {
	p.l.Lock()
	defer p.l.Unlock()
	out := make([]Member, 0, len(p.members))
	for _, m := range p.members {
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Servers returns the server members, in any status.
func (p *Pool) Servers() []Member {
	var out []Member
	for _, m := range p.Members() {
		if m.Server {
			out = append(out, m)
		}
	}
	return out
}

// AliveServerAddrs returns the RPC addresses of alive servers.
func (p *Pool) AliveServerAddrs() []string {
	var out []string
	for _, m := range p.Servers() {
		if m.Status == StatusAlive && m.RPCAddr != "" {
			out = append(out, m.RPCAddr)
		}
	}
	return out
}

// Subscribe returns a channel that receives a value (coalesced) after
// every membership change.
func (p *Pool) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	p.l.Lock()
	p.subscribers = append(p.subscribers, ch)
	p.l.Unlock()
	return ch
}

// unsubscribe stops notifications on a channel Subscribe returned.
func (p *Pool) unsubscribe(ch <-chan struct{}) {
	p.l.Lock()
	defer p.l.Unlock()
	for i, c := range p.subscribers {
		if c == ch {
			p.subscribers = append(p.subscribers[:i:i], p.subscribers[i+1:]...)
			return
		}
	}
}

// leaveMsgPrefix starts the message a leaving agent sends the servers.
const leaveMsgPrefix = "leave:"

// Leave announces a graceful departure, waiting up to timeout for it to
// spread. The alive servers are told directly first, so that they see
// this agent as left, not failed (a left server is removed from Raft).
func (p *Pool) Leave(timeout time.Duration) error {
	self := p.LocalName()
	for _, n := range p.ml.Members() {
		if n.Name == self {
			continue
		}
		var meta Meta
		if json.Unmarshal(n.Meta, &meta) != nil || !meta.Server {
			continue
		}
		if err := p.ml.SendReliable(n, []byte(leaveMsgPrefix+self)); err != nil {
			p.logger.Warn("could not tell a server about leaving", "server", n.Name, "error", err)
		}
	}
	return p.ml.Leave(timeout)
}

// markLeaving records a member's announced leave.
func (p *Pool) markLeaving(name string) {
	p.l.Lock()
	p.leaving[name] = true
	p.l.Unlock()
}

// Shutdown stops gossiping without announcing anything.
func (p *Pool) Shutdown() error {
	return p.ml.Shutdown()
}

// update records a member's state and notifies subscribers.
func (p *Pool) update(n *memberlist.Node, status string) {
	m := &Member{Name: n.Name, Addr: n.Addr.String(), Port: int(n.Port), Status: status}
	if len(n.Meta) > 0 {
		if err := json.Unmarshal(n.Meta, &m.Meta); err != nil {
			p.logger.Warn("ignoring member with unreadable metadata", "member", n.Name, "error", err)
			return
		}
	}
	p.l.Lock()
	old := p.members[n.Name]
	p.members[n.Name] = m
	subs := p.subscribers
	p.l.Unlock()
	if old == nil || old.Status != status {
		p.logger.Info("member "+status, "member", n.Name, "addr", m.Addr, "server", m.Server)
	}
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// delegate serves this agent's metadata.
type delegate struct{ pool *Pool }

func (d *delegate) NodeMeta(limit int) []byte { return d.pool.encodeMeta(limit) }
func (d *delegate) NotifyMsg(msg []byte) {
	s := string(msg)
	switch {
	case len(s) > len(leaveMsgPrefix) && s[:len(leaveMsgPrefix)] == leaveMsgPrefix:
		d.pool.markLeaving(s[len(leaveMsgPrefix):])
	case strings.HasPrefix(s, keyringMsgPrefix):
		d.pool.handleKeyringMsg(s[len(keyringMsgPrefix):])
	}
}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events tracks members as memberlist reports them.
type events struct{ pool *Pool }

// memberlist (v0.5) does not keep Node.State up to date in its events:
// joins and updates are alive members, and a leave is a graceful leave
// when the member announced it, a failure otherwise.
func (e *events) NotifyJoin(n *memberlist.Node) {
	e.pool.l.Lock()
	delete(e.pool.leaving, n.Name)
	e.pool.l.Unlock()
	e.pool.update(n, StatusAlive)
}

func (e *events) NotifyUpdate(n *memberlist.Node) { e.pool.update(n, StatusAlive) }

func (e *events) NotifyLeave(n *memberlist.Node) {
	e.pool.l.Lock()
	left := e.pool.leaving[n.Name]
	e.pool.l.Unlock()
	if left {
		e.pool.update(n, StatusLeft)
	} else {
		e.pool.update(n, StatusFailed)
	}
}

// logAdapter sends memberlist's log lines to hclog at debug level (or
// warn/error when memberlist marks them so).
type logAdapter struct{ logger hclog.Logger }

func (a *logAdapter) Write(b []byte) (int, error) {
	line := string(b)
	switch {
	case len(line) > 7 && line[:7] == "[ERR] m":
		a.logger.Error(trim(line))
	case len(line) > 8 && line[:8] == "[WARN] m":
		a.logger.Warn(trim(line))
	default:
		a.logger.Debug(trim(line))
	}
	return len(b), nil
}

func trim(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

var _ io.Writer = (*logAdapter)(nil)
