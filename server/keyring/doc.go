// Package keyring holds a server's key material for variables: the
// key-encryption keys (KEKs) on its disk, and the data keys (root keys)
// it unwrapped from the state store.
//
// The layering: a variable's items are sealed with AES-256-GCM under a
// root key (a random 256-bit data key), with the namespace, path and key
// ID as associated data. Root keys enter Raft only wrapped, with
// AES-256-GCM, by a KEK. A KEK is 32 random bytes in a file of the
// server's data directory (keyring/<kek-id>.kek, mode 0600), or in a
// file the server configuration names; it never enters Raft, the log,
// snapshots or an API answer. So a copy of raft.db or of a snapshot
// opens nothing without a server's keyring directory.
//
// Servers of one cluster share the KEK: the first leader creates it; a
// server that finds a root key wrapped by a KEK it lacks asks its peers
// for it over the server-only Keyring.KEK RPC (mTLS with a server
// certificate), and writes it to its own keyring directory. An operator
// restoring a snapshot into another cluster copies the old cluster's KEK
// file into the new servers' keyring directories (or names it in the
// configuration); without it the variables read as a clear error naming
// the missing KEK.
//
// The package does crypto and files only; the server's leader loop and
// RPC endpoints decide when to create, rotate and replicate keys.
package keyring
