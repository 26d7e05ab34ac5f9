package gossip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Keyring operations.
const (
	OpInstall = "install"
	OpUse     = "use"
	OpRemove  = "remove"
)

// keyringMsgPrefix starts the user message that carries a keyring
// change to the other members: "keyring:<op>:<base64 key>".
const keyringMsgPrefix = "keyring:"

// Timings of a keyring operation's propagation.
const (
	// keyringResendInterval is how often the change is sent again to a
	// member that does not reflect it yet (a lost or refused stream).
	keyringResendInterval = time.Second
	// keyringPollInterval is how often the members' metadata is looked
	// at besides membership-change notifications.
	keyringPollInterval = 200 * time.Millisecond
	// metaUpdateWait bounds how long a keyring change waits for the new
	// metadata to be handed to gossip.
	metaUpdateWait = 2 * time.Second
	// viewSettleWait bounds how long a refusal waits for gossip to show
	// that the members' keyrings have changed after all.
	viewSettleWait = 2 * time.Second
)

// KeyringResult is the outcome of install, use or remove.
type KeyringResult struct {
	// Members is how many members were alive when the operation ended;
	// Reflected is how many of them reflected the change.
	Members   int
	Reflected int
	// Missing names the alive members that did not reflect the change
	// within the wait (the operation then also returns
	// ErrNotPropagated).
	Missing []string
}

// KeyringList is what list reports.
type KeyringList struct {
	// Members is how many members are alive.
	Members int
	// Keys are this agent's keys (primary first), then keys only other
	// members hold, by fingerprint.
	Keys []KeyInfo
}

// KeyInfo is one key of the cluster's keyrings.
type KeyInfo struct {
	// Key is the base64 key; empty for a key this agent does not hold,
	// which other members advertise by fingerprint only.
	Key         string
	Fingerprint string
	// Primary is true for this agent's primary key.
	Primary bool
	// Installed is how many alive members hold the key; PrimaryOn how
	// many of them encrypt with it.
	Installed int
	PrimaryOn int
}

// localKeys returns a copy of this agent's keys, primary first.
func (p *Pool) localKeys() [][]byte {
	if p.keyring == nil {
		return nil
	}
	keys := p.keyring.GetKeys()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = append([]byte(nil), k...)
	}
	return out
}

// currentMeta is this agent's metadata with its key fingerprints.
func (p *Pool) currentMeta() Meta {
	m := p.meta
	keys := p.localKeys()
	if len(keys) > 0 {
		m.Keys = make([]string, len(keys))
		for i, k := range keys {
			m.Keys[i] = Fingerprint(k)
		}
		m.PrimaryKey = m.Keys[0]
	}
	return m
}

// encodeMeta encodes currentMeta within limit bytes. memberlist panics
// on metadata over its limit, so when the fingerprints do not fit (a
// very long datacenter name with a full keyring) they are left out:
// keyring operations then report this member as not reflecting, which
// is visible and harmless, where a panic would not be.
func (p *Pool) encodeMeta(limit int) []byte {
	m := p.currentMeta()
	buf, err := json.Marshal(m)
	if err == nil && len(buf) <= limit {
		return buf
	}
	m.Keys = nil
	if buf, err = json.Marshal(m); err == nil && len(buf) <= limit {
		p.logger.Warn("gossip key fingerprints do not fit in the member metadata; advertising the primary key's only", "limit", limit)
		return buf
	}
	m.PrimaryKey = ""
	buf, _ = json.Marshal(m)
	p.logger.Warn("gossip key fingerprints do not fit in the member metadata; advertising none", "limit", limit)
	return buf
}

// aliveMembers returns the alive members with what they advertise; this
// agent's entry is taken from its keyring directly, which is newer
// than what gossip last reported.
func (p *Pool) aliveMembers() []Member {
	self := p.LocalName()
	var out []Member
	for _, m := range p.Members() {
		if m.Status != StatusAlive {
			continue
		}
		if m.Name == self {
			m.Meta = p.currentMeta()
		}
		out = append(out, m)
	}
	return out
}

// ListKeys reports every key of the cluster's keyrings with how many
// alive members hold it and use it as primary.
func (p *Pool) ListKeys() (*KeyringList, error) {
	if !p.Encrypted() {
		return nil, ErrEncryptionDisabled
	}
	members := p.aliveMembers()
	out := &KeyringList{Members: len(members)}
	index := make(map[string]int)
	for i, k := range p.localKeys() {
		fp := Fingerprint(k)
		index[fp] = len(out.Keys)
		out.Keys = append(out.Keys, KeyInfo{Key: encodeKey(k), Fingerprint: fp, Primary: i == 0})
	}
	var foreign []string
	for _, m := range members {
		for _, fp := range m.Keys {
			if _, ok := index[fp]; !ok {
				index[fp] = -1
				foreign = append(foreign, fp)
			}
		}
	}
	sort.Strings(foreign)
	for _, fp := range foreign {
		index[fp] = len(out.Keys)
		out.Keys = append(out.Keys, KeyInfo{Fingerprint: fp})
	}
	for _, m := range members {
		for _, fp := range m.Keys {
			out.Keys[index[fp]].Installed++
		}
		if i, ok := index[m.PrimaryKey]; ok && m.PrimaryKey != "" {
			out.Keys[i].PrimaryOn++
		}
	}
	return out, nil
}

// InstallKey installs key (base64) on every member, as a secondary key:
// members then decrypt with it, and UseKey can make it primary.
func (p *Pool) InstallKey(key string) (*KeyringResult, error) {
	return p.keyringOp(OpInstall, key)
}

// UseKey makes key (base64), which every alive member must hold, the
// primary key that every member encrypts with.
func (p *Pool) UseKey(key string) (*KeyringResult, error) {
	return p.keyringOp(OpUse, key)
}

// RemoveKey removes key (base64), which must be no member's primary,
// from every member.
func (p *Pool) RemoveKey(key string) (*KeyringResult, error) {
	return p.keyringOp(OpRemove, key)
}

// keyringOp checks the operation against what the members advertise,
// applies it here, sends it to every other alive member and waits until
// every alive member reflects it.
func (p *Pool) keyringOp(op, keyStr string) (*KeyringResult, error) {
	if !p.Encrypted() {
		return nil, ErrEncryptionDisabled
	}
	key, err := ParseKey(keyStr)
	if err != nil {
		return nil, err
	}
	p.opLock.Lock()
	defer p.opLock.Unlock()
	fp := Fingerprint(key)
	if err := p.checkKeyringOp(op, key, fp); err != nil {
		return nil, err
	}
	if err := p.applyKeyring(op, key); err != nil {
		return nil, err
	}
	p.logger.Info("gossip keyring changed here; sending the change to the other members", "op", op, "key", fp)
	return p.propagate(op, key, fp)
}

// checkKeyringOp refuses what would break the pool: a keyring too big
// to advertise, a primary key some member lacks (it could no longer
// read anything), removing a key some member still encrypts with.
func (p *Pool) checkKeyringOp(op string, key []byte, fp string) error {
	local := p.localKeys()
	has := slices.ContainsFunc(local, func(k []byte) bool { return bytes.Equal(k, key) })
	switch op {
	case OpInstall:
		if !has && len(local) >= MaxKeys {
			return fmt.Errorf("%w: this agent holds %d keys, the most a keyring may hold; remove a key that is no longer needed (drover operator gossip keyring remove KEY) first", ErrKeyringFull, len(local))
		}
	case OpUse:
		missing := p.settledView(func(m Member) bool { return !slices.Contains(m.Keys, fp) })
		if len(missing) > 0 {
			return fmt.Errorf("%w: key %s is not installed on %s; install it first (drover operator gossip keyring install KEY), then use it", ErrKeyNotInstalled, fp, strings.Join(missing, ", "))
		}
	case OpRemove:
		if len(local) > 0 && bytes.Equal(local[0], key) {
			return fmt.Errorf("%w: key %s is this agent's primary key; make another key primary first (drover operator gossip keyring use OTHER_KEY), then remove this one", ErrRemovePrimary, fp)
		}
		primaryOn := p.settledView(func(m Member) bool { return m.PrimaryKey == fp })
		if len(primaryOn) > 0 {
			return fmt.Errorf("%w: key %s is the primary key of %s; make another key primary first (drover operator gossip keyring use OTHER_KEY), then remove this one", ErrRemovePrimary, fp, strings.Join(primaryOn, ", "))
		}
	default:
		return fmt.Errorf("unknown keyring operation %q; want install, use or remove", op)
	}
	return nil
}

// settledView returns the alive members for which bad holds, after
// giving gossip up to viewSettleWait to bring news that none does: a
// change made through another agent a moment ago (install there, use
// here) reaches this agent's view of the members by gossip, a few
// hundred milliseconds later.
func (p *Pool) settledView(bad func(Member) bool) []string {
	changes := p.Subscribe()
	defer p.unsubscribe(changes)
	deadline := time.NewTimer(viewSettleWait)
	defer deadline.Stop()
	poll := time.NewTicker(keyringPollInterval)
	defer poll.Stop()
	for {
		var out []string
		for _, m := range p.aliveMembers() {
			if bad(m) {
				out = append(out, m.Name)
			}
		}
		if len(out) == 0 {
			return nil
		}
		select {
		case <-deadline.C:
			return out
		case <-changes:
		case <-poll.C:
		}
	}
}

// applyKeyring changes this agent's keyring, persists it and hands the
// new fingerprints to gossip.
func (p *Pool) applyKeyring(op string, key []byte) error {
	fp := Fingerprint(key)
	p.keyringLock.Lock()
	keys := p.keyring.GetKeys()
	has := slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) })
	var err error
	switch op {
	case OpInstall:
		if !has && len(keys) >= MaxKeys {
			err = fmt.Errorf("%w: this agent holds %d keys already", ErrKeyringFull, len(keys))
		} else {
			err = p.keyring.AddKey(key)
		}
	case OpUse:
		if !has {
			err = fmt.Errorf("%w: key %s is not installed on this agent", ErrKeyNotInstalled, fp)
		} else {
			err = p.keyring.UseKey(key)
		}
	case OpRemove:
		if len(keys) > 0 && bytes.Equal(keys[0], key) {
			err = fmt.Errorf("%w: key %s is this agent's primary key", ErrRemovePrimary, fp)
		} else if has {
			err = p.keyring.RemoveKey(key)
		}
	default:
		err = fmt.Errorf("unknown keyring operation %q", op)
	}
	if err != nil {
		p.keyringLock.Unlock()
		return err
	}
	var persistErr error
	if p.keyringFile != "" {
		if werr := writeKeyringFile(p.keyringFile, p.localKeys()); werr != nil {
			persistErr = fmt.Errorf("keyring changed in memory but not persisted (a restart would bring the old keyring back): %w", werr)
		}
	}
	p.keyringLock.Unlock()
	// Advertise the new fingerprints even when persisting failed: the
	// keyring in use did change.
	if uerr := p.ml.UpdateNode(metaUpdateWait); uerr != nil {
		p.logger.Debug("new key fingerprints not broadcast yet; gossip will carry them", "error", uerr)
	}
	return persistErr
}

// handleKeyringMsg applies a keyring change another member sent.
// memberlist hands it over only after decrypting it with one of our
// keys (GossipVerifyIncoming drops anything in the clear), so only a
// member can have sent it. Without encryption there is no keyring and
// nothing vouches for the sender: the message is ignored.
func (p *Pool) handleKeyringMsg(body string) {
	if !p.Encrypted() {
		p.logger.Debug("ignoring a keyring message: gossip encryption is off")
		return
	}
	op, encoded, ok := strings.Cut(body, ":")
	if !ok || (op != OpInstall && op != OpUse && op != OpRemove) {
		p.logger.Warn("ignoring a malformed keyring message", "op", op)
		return
	}
	key, err := ParseKey(encoded)
	if err != nil {
		p.logger.Warn("ignoring a keyring message with a bad key", "op", op, "error", err)
		return
	}
	if err := p.applyKeyring(op, key); err != nil {
		p.logger.Warn("could not apply a keyring change sent by another member", "op", op, "key", Fingerprint(key), "error", err)
		return
	}
	p.logger.Info("gossip keyring changed by another member", "op", op, "key", Fingerprint(key))
}

// reflects reports whether a member's advertised keyring shows op.
func reflects(m Member, op, fp string) bool {
	switch op {
	case OpInstall:
		return slices.Contains(m.Keys, fp)
	case OpUse:
		return m.PrimaryKey == fp
	case OpRemove:
		return !slices.Contains(m.Keys, fp)
	}
	return false
}

// propagate sends the change to every alive member that does not
// reflect it yet, again every keyringResendInterval, until every alive
// member reflects it or the wait is over.
func (p *Pool) propagate(op string, key []byte, fp string) (*KeyringResult, error) {
	msg := []byte(keyringMsgPrefix + op + ":" + encodeKey(key))
	self := p.LocalName()
	changes := p.Subscribe()
	defer p.unsubscribe(changes)
	done := make(chan struct{})
	defer close(done)
	// Sends run in their own goroutines (a stream to a hung member can
	// take memberlist's TCP timeout); sent reports their end.
	sent := make(chan string)
	inflight := make(map[string]bool)
	lastSent := make(map[string]time.Time)
	deadline := time.Now().Add(p.keyringWait)
	poll := time.NewTicker(keyringPollInterval)
	defer poll.Stop()
	for {
		members := p.aliveMembers()
		var missing []string
		for _, m := range members {
			if !reflects(m, op, fp) {
				missing = append(missing, m.Name)
			}
		}
		res := &KeyringResult{Members: len(members), Reflected: len(members) - len(missing), Missing: missing}
		if len(missing) == 0 {
			p.logger.Info("gossip keyring change reflected by every alive member", "op", op, "key", fp, "members", res.Members)
			return res, nil
		}
		if !time.Now().Before(deadline) {
			return res, fmt.Errorf("%w: %s %s: %d of %d alive members reflect it after %s; not: %s (run the command again, or look at those agents' logs)",
				ErrNotPropagated, op, fp, res.Reflected, res.Members, p.keyringWait, strings.Join(missing, ", "))
		}
		nodes := make(map[string]*memberlist.Node)
		for _, n := range p.ml.Members() {
			nodes[n.Name] = n
		}
		for _, name := range missing {
			n := nodes[name]
			if name == self || n == nil || inflight[name] || time.Since(lastSent[name]) < keyringResendInterval {
				continue
			}
			inflight[name] = true
			lastSent[name] = time.Now()
			go func() {
				if err := p.ml.SendReliable(n, msg); err != nil {
					p.logger.Warn("could not send a keyring change to a member; retrying", "member", n.Name, "op", op, "error", err)
				}
				select {
				case sent <- n.Name:
				case <-done:
				}
			}()
		}
		select {
		case name := <-sent:
			delete(inflight, name)
		case <-changes:
		case <-poll.C:
		}
	}
}
