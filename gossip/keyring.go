package gossip

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Gossip encryption.
//
// memberlist encrypts every packet and stream with the primary key of
// its keyring and decrypts with any installed key; with
// GossipVerifyIncoming on it drops whatever is not encrypted with one of
// them, so an agent without a key never becomes a member: its joins
// fail and it is never seen. The keyring is this package's to keep:
//
//   - at start it comes from the keyring file in the data dir when one
//     exists (keys installed or rotated at runtime survive restarts), or
//     else from the configured key, which is then written to the file;
//   - install, use and remove change it on every member: the agent that
//     is asked applies the change and sends it to every alive member as
//     a user message, which travels encrypted under the current primary
//     key, so only members can send one (keyring messages that arrive
//     while encryption is off are ignored);
//   - every member advertises short fingerprints of its keys and of its
//     primary key in its metadata, which is how the agent that was asked
//     knows when every member reflects the change, and how list counts
//     the members that hold each key.

// Errors of the keyring operations. The agent maps them to HTTP
// statuses; their messages are written for the operator.
var (
	// ErrInvalidKey is a key that is not the base64 of 16, 24 or 32
	// bytes.
	ErrInvalidKey = errors.New("invalid gossip key")
	// ErrEncryptionDisabled is a keyring operation on an agent that
	// started without gossip encryption.
	ErrEncryptionDisabled = errors.New("gossip encryption is off on this agent: start every agent with -encrypt KEY (a key from `drover operator gossip keyring generate`) to use a keyring")
	// ErrRemovePrimary is removing a key that is some member's primary.
	ErrRemovePrimary = errors.New("the primary key cannot be removed")
	// ErrKeyNotInstalled is using a key as primary before every alive
	// member has it installed.
	ErrKeyNotInstalled = errors.New("the key is not installed on every alive member")
	// ErrKeyringFull is installing a key beyond MaxKeys.
	ErrKeyringFull = errors.New("the keyring is full")
	// ErrNotPropagated is a keyring change that some alive member did
	// not reflect within the wait.
	ErrNotPropagated = errors.New("the keyring change did not reach every alive member")
)

// KeySizes are the accepted key lengths in bytes (AES-128, -192, -256).
var KeySizes = []int{16, 24, 32}

// MaxKeys bounds a keyring: rotation needs two or three keys, and every
// key's fingerprint takes room in the member metadata (512 bytes).
const MaxKeys = 8

// GenerateKey returns a fresh random 32-byte key in base64, the form
// `encrypt` and the keyring commands take.
func GenerateKey() (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// ParseKey decodes a base64 gossip key and checks its length. Errors
// wrap ErrInvalidKey and say what would be accepted.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: the key is empty; want the base64 of 16, 24 or 32 random bytes (`drover operator gossip keyring generate` makes one)", ErrInvalidKey)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not valid base64 (%v); want the base64 of 16, 24 or 32 random bytes (`drover operator gossip keyring generate` makes one)", ErrInvalidKey, err)
	}
	for _, n := range KeySizes {
		if len(key) == n {
			return key, nil
		}
	}
	return nil, fmt.Errorf("%w: the key decodes to %d bytes; gossip keys are 16, 24 or 32 bytes (AES-128, -192, -256); `drover operator gossip keyring generate` makes a 32-byte one", ErrInvalidKey, len(key))
}

// Fingerprint is the short public name of a key that members advertise
// in their metadata: the first 4 bytes of its SHA-256, in hex. It is
// enough to tell a handful of keys apart and says nothing useful about
// the key.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

func encodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// readKeyringFile reads a keyring file: a JSON list of base64 keys,
// primary first.
func readKeyringFile(path string) ([][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var encoded []string
	if err := json.Unmarshal(raw, &encoded); err != nil {
		return nil, fmt.Errorf("gossip keyring file %s is not a JSON list of base64 keys: %w", path, err)
	}
	if len(encoded) == 0 {
		return nil, fmt.Errorf("gossip keyring file %s holds no keys; delete it to start from the encrypt setting", path)
	}
	keys := make([][]byte, 0, len(encoded))
	for i, s := range encoded {
		key, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("gossip keyring file %s, key %d: %w", path, i, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// writeKeyringFile writes keys (primary first) to path, readable by
// the agent's user only, through a synced temp file and a rename so a
// crash leaves the old keyring or the new one.
func writeKeyringFile(path string, keys [][]byte) error {
	encoded := make([]string, len(keys))
	for i, k := range keys {
		encoded[i] = encodeKey(k)
	}
	data, err := json.Marshal(encoded)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create gossip keyring dir: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	// An existing temp file keeps its mode through O_TRUNC: make sure.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	return nil
}

// initialKeys decides the keyring a pool starts with: the keyring file
// when it exists (it carries the keys installed and rotated at runtime,
// so it wins over the configured key), else the configured key, which
// is then written to the file. No file and no key: no encryption (nil).
func (p *Pool) initialKeys(cfg Config) ([][]byte, error) {
	var configured []byte
	if cfg.EncryptKey != "" {
		k, err := ParseKey(cfg.EncryptKey)
		if err != nil {
			return nil, fmt.Errorf("gossip encrypt key: %w", err)
		}
		configured = k
	}
	if cfg.KeyringFile != "" {
		keys, err := readKeyringFile(cfg.KeyringFile)
		switch {
		case err == nil:
			if configured != nil {
				held := false
				for _, k := range keys {
					held = held || bytes.Equal(k, configured)
				}
				p.logger.Info("gossip keyring file exists and wins over the encrypt setting (it keeps keys installed or rotated at runtime)",
					"file", cfg.KeyringFile, "keys", len(keys), "encrypt_key_in_keyring", held)
			} else {
				p.logger.Info("gossip encryption on from the keyring file", "file", cfg.KeyringFile, "keys", len(keys))
			}
			return keys, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("read gossip keyring: %w", err)
		}
	}
	if configured == nil {
		return nil, nil
	}
	keys := [][]byte{configured}
	if cfg.KeyringFile != "" {
		if err := writeKeyringFile(cfg.KeyringFile, keys); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
