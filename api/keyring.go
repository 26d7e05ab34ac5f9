package api

import "net/http"

// Keyring returns the gossip keyring endpoints of the agent.
func (a *Agent) Keyring() *Keyring { return &Keyring{c: a.c} }

// Keyring is /v1/agent/keyring: the gossip encryption keys of every
// member of the pool. Every agent answers it.
type Keyring struct{ c *Client }

// KeyringKey is one key of the cluster's keyrings.
type KeyringKey struct {
	// Key is the base64 key; empty for a key the agent asked does not
	// hold, which other members advertise by fingerprint only.
	Key         string
	Fingerprint string
	// Primary is true for the asked agent's primary key.
	Primary bool
	// Installed is how many alive members hold the key; PrimaryOn how
	// many of them encrypt with it.
	Installed int
	PrimaryOn int
}

// KeyringList is the keyring as GET /v1/agent/keyring/list reports it.
type KeyringList struct {
	// Members is how many gossip members are alive.
	Members int
	Keys    []*KeyringKey
}

// KeyringResponse answers install, use and remove, once every alive
// member reflects the change.
type KeyringResponse struct {
	Members   int
	Reflected int
}

// keyringRequest is the body of install, use and remove.
type keyringRequest struct {
	Key string
}

// List returns every key with how many alive members hold it.
func (k *Keyring) List() (*KeyringList, error) {
	var out KeyringList
	if _, err := k.c.query("/v1/agent/keyring/list", &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// Install adds key (base64) to every member's keyring.
func (k *Keyring) Install(key string) (*KeyringResponse, error) {
	return k.op("install", key)
}

// Use makes key, installed on every alive member, the primary key.
func (k *Keyring) Use(key string) (*KeyringResponse, error) {
	return k.op("use", key)
}

// Remove removes key, which must be no member's primary, everywhere.
func (k *Keyring) Remove(key string) (*KeyringResponse, error) {
	return k.op("remove", key)
}

func (k *Keyring) op(op, key string) (*KeyringResponse, error) {
	var out KeyringResponse
	if _, err := k.c.write(http.MethodPut, "/v1/agent/keyring/"+op, nil, &keyringRequest{Key: key}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
