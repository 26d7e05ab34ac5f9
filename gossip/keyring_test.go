package gossip

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// freePortOn returns a port free for both TCP and UDP on ip.
func freePortOn(t *testing.T, ip string) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatalf("no free TCP+UDP port on %s", ip)
	return 0
}

// startPool starts a pool on its own loopback address, with cfg's
// encryption settings.
func startPool(t *testing.T, ip, name string, cfg Config) *Pool {
	t.Helper()
	cfg.Name = name
	cfg.BindAddr = ip
	cfg.BindPort = freePortOn(t, ip)
	if !cfg.Meta.Server && !cfg.Meta.Client {
		cfg.Meta = Meta{Client: true}
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown() })
	return p
}

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func names(p *Pool) []string {
	var out []string
	for _, m := range p.Members() {
		out = append(out, m.Name)
	}
	return out
}

func sees(p *Pool, name string) bool {
	for _, m := range p.Members() {
		if m.Name == name && m.Status == StatusAlive {
			return true
		}
	}
	return false
}

func TestParseKey_AcceptsAESSizesOnly(t *testing.T) {
	cases := []struct {
		name string
		key  string
		ok   bool
		want string
	}{
		{"32 bytes", base64.StdEncoding.EncodeToString(make([]byte, 32)), true, ""},
		{"24 bytes", base64.StdEncoding.EncodeToString(make([]byte, 24)), true, ""},
		{"16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), true, ""},
		{"surrounding spaces", " " + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n", true, ""},
		{"empty", "", false, "empty"},
		{"not base64", "not-base64!!", false, "not valid base64"},
		{"20 bytes", base64.StdEncoding.EncodeToString(make([]byte, 20)), false, "decodes to 20 bytes; gossip keys are 16, 24 or 32 bytes"},
		{"64 bytes", base64.StdEncoding.EncodeToString(make([]byte, 64)), false, "decodes to 64 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKey(tc.key)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidKey mentioning %q", err, tc.want)
			}
		})
	}
	k := mustKey(t)
	if raw, err := ParseKey(k); err != nil || len(raw) != 32 {
		t.Fatalf("generated key: %d bytes, %v", len(raw), err)
	}
}

func TestPool_DifferentKeysNeverSeeEachOther(t *testing.T) {
	key1, key2 := mustKey(t), mustKey(t)
	a := startPool(t, "127.0.0.2", "a", Config{EncryptKey: key1})
	b := startPool(t, "127.0.0.3", "b", Config{EncryptKey: key2})
	c := startPool(t, "127.0.0.4", "c", Config{EncryptKey: key1})

	if n, err := b.Join([]string{a.LocalAddr()}); err == nil || n != 0 {
		t.Fatalf("a pool with another key joined: %d contacted, err %v", n, err)
	}
	// c, with the same key, joins; once a and c see each other and have
	// gossiped, b must appear nowhere.
	if n, err := c.Join([]string{a.LocalAddr()}); err != nil || n != 1 {
		t.Fatalf("same key did not join: %d %v", n, err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		return sees(a, "c") && sees(c, "a"), fmt.Errorf("a sees %v, c sees %v", names(a), names(c))
	})
	// b tries again, now towards c: still refused.
	if n, err := b.Join([]string{c.LocalAddr()}); err == nil || n != 0 {
		t.Fatalf("a pool with another key joined c: %d %v", n, err)
	}
	for _, p := range []*Pool{a, c} {
		if sees(p, "b") || len(p.Members()) != 2 {
			t.Fatalf("%s sees %v", p.LocalName(), names(p))
		}
	}
	if len(b.Members()) != 1 {
		t.Fatalf("b sees %v", names(b))
	}
}

func TestPool_PlaintextCannotJoinEncrypted(t *testing.T) {
	enc := startPool(t, "127.0.0.2", "enc", Config{EncryptKey: mustKey(t)})
	plain := startPool(t, "127.0.0.3", "plain", Config{})
	if !enc.Encrypted() || plain.Encrypted() {
		t.Fatal("Encrypted() wrong")
	}
	if n, err := plain.Join([]string{enc.LocalAddr()}); err == nil || n != 0 {
		t.Fatalf("plaintext agent joined an encrypted pool: %d %v", n, err)
	}
	// The other way round fails too: the encrypted agent will not talk
	// in the clear.
	if n, err := enc.Join([]string{plain.LocalAddr()}); err == nil || n != 0 {
		t.Fatalf("encrypted agent joined a plaintext pool: %d %v", n, err)
	}
	// A member with the key still joins, and the plaintext agent is
	// never seen.
	friend := startPool(t, "127.0.0.4", "friend", Config{EncryptKey: enc.mustPrimary(t)})
	if _, err := friend.Join([]string{enc.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		return sees(enc, "friend"), fmt.Errorf("enc sees %v", names(enc))
	})
	if sees(enc, "plain") || sees(friend, "plain") || len(plain.Members()) != 1 {
		t.Fatalf("enc sees %v, friend %v, plain %v", names(enc), names(friend), names(plain))
	}
}

// mustPrimary returns the pool's primary key in base64.
func (p *Pool) mustPrimary(t *testing.T) string {
	t.Helper()
	keys := p.localKeys()
	if len(keys) == 0 {
		t.Fatal("no keyring")
	}
	return encodeKey(keys[0])
}

func TestPool_KeyringFileWinsAndPersists(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gossip", "keyring")
	key1, key2 := mustKey(t), mustKey(t)

	p := startPool(t, "127.0.0.2", "a", Config{EncryptKey: key1, KeyringFile: file})
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatalf("keyring file not written at start: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := p.InstallKey(key2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UseKey(key2); err != nil {
		t.Fatal(err)
	}
	_ = p.Shutdown()
	var onDisk []string
	raw, _ := os.ReadFile(file)
	if err := json.Unmarshal(raw, &onDisk); err != nil || len(onDisk) != 2 || onDisk[0] != key2 || onDisk[1] != key1 {
		t.Fatalf("keyring file %s: %v", raw, err)
	}

	// Restarted with the old key in its configuration: the file wins,
	// so the rotated key is still primary.
	p2 := startPool(t, "127.0.0.2", "a", Config{EncryptKey: key1, KeyringFile: file})
	list, err := p2.ListKeys()
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Keys) != 2 || list.Keys[0].Key != key2 || !list.Keys[0].Primary || list.Keys[1].Key != key1 {
		t.Fatalf("keyring after restart: %+v", list.Keys)
	}
	// And without any configured key, encryption stays on.
	_ = p2.Shutdown()
	p3 := startPool(t, "127.0.0.2", "a", Config{KeyringFile: file})
	if !p3.Encrypted() || p3.mustPrimary(t) != key2 {
		t.Fatal("keyring file not used without a configured key")
	}
}

func TestPool_RejectsBadKeyringInputs(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		file string // contents of the keyring file, "" for none
		key  string
		want string
	}{
		{"bad configured key", "", "short", "gossip encrypt key"},
		{"garbage file", "{not json", "", "not a JSON list"},
		{"empty file list", "[]", "", "holds no keys"},
		{"bad key in file", `["abc"]`, "", "key 0"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, fmt.Sprint(i), "keyring")
			if tc.file != "" {
				_ = os.MkdirAll(filepath.Dir(file), 0o700)
				if err := os.WriteFile(file, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := New(Config{Name: "x", BindAddr: "127.0.0.1", BindPort: freePortOn(t, "127.0.0.1"), EncryptKey: tc.key, KeyringFile: file})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPool_KeyringOpsRefusedWithoutEncryption(t *testing.T) {
	p := startPool(t, "127.0.0.2", "plain", Config{})
	k := mustKey(t)
	if _, err := p.ListKeys(); !errors.Is(err, ErrEncryptionDisabled) {
		t.Fatalf("list: %v", err)
	}
	for name, op := range map[string]func(string) (*KeyringResult, error){"install": p.InstallKey, "use": p.UseKey, "remove": p.RemoveKey} {
		if _, err := op(k); !errors.Is(err, ErrEncryptionDisabled) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// A keyring message arriving in the clear is ignored: nothing to
	// apply it to, and nothing vouches for its sender.
	p.handleKeyringMsg(OpInstall + ":" + k)
	if p.Encrypted() {
		t.Fatal("a plaintext keyring message turned encryption on")
	}
}

func TestPool_KeyringRotationAcrossMembers(t *testing.T) {
	key1, key2 := mustKey(t), mustKey(t)
	dir := t.TempDir()
	var pools []*Pool
	for i, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		name := fmt.Sprintf("m%d", i+1)
		pools = append(pools, startPool(t, ip, name, Config{EncryptKey: key1, KeyringFile: filepath.Join(dir, name, "keyring")}))
	}
	a, b, c := pools[0], pools[1], pools[2]
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		for _, p := range pools {
			if len(p.aliveMembers()) != 3 {
				return false, fmt.Errorf("%s sees %v", p.LocalName(), names(p))
			}
		}
		return true, nil
	})

	// Using or removing keys in the wrong order is refused, with nothing
	// changed.
	if _, err := a.UseKey(key2); !errors.Is(err, ErrKeyNotInstalled) {
		t.Fatalf("use of a key nobody has: %v", err)
	}
	if _, err := b.RemoveKey(key1); !errors.Is(err, ErrRemovePrimary) {
		t.Fatalf("remove primary: %v", err)
	}
	if _, err := a.InstallKey("bm90IGEga2V5"); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("install of a malformed key: %v", err)
	}

	// Install on one member reaches all three.
	res, err := a.InstallKey(key2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Members != 3 || res.Reflected != 3 || len(res.Missing) != 0 {
		t.Fatalf("install result %+v", res)
	}
	for _, p := range pools {
		if keys := p.localKeys(); len(keys) != 2 || encodeKey(keys[0]) != key1 {
			t.Fatalf("%s after install: %d keys", p.LocalName(), len(keys))
		}
	}
	// Another member lists from what gossip has told it: a's install
	// reflected on all three (above), but c may hear of the third
	// member's new metadata a gossip round later.
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		list, err := c.ListKeys()
		if err != nil {
			return false, err
		}
		ok := list.Members == 3 && len(list.Keys) == 2 && list.Keys[0].Key == key1 && list.Keys[0].PrimaryOn == 3 &&
			list.Keys[1].Key == key2 && list.Keys[1].Installed == 3 && list.Keys[1].PrimaryOn == 0
		return ok, fmt.Errorf("list after install: %+v", list)
	})

	// Use it, from another member.
	if _, err := b.UseKey(key2); err != nil {
		t.Fatal(err)
	}
	for _, p := range pools {
		if encodeKey(p.localKeys()[0]) != key2 {
			t.Fatalf("%s does not use the new key", p.LocalName())
		}
	}
	// The old key may now go; the new primary may not.
	if _, err := c.RemoveKey(key2); !errors.Is(err, ErrRemovePrimary) {
		t.Fatalf("remove of the new primary: %v", err)
	}
	if _, err := c.RemoveKey(key1); err != nil {
		t.Fatal(err)
	}
	for _, p := range pools {
		if keys := p.localKeys(); len(keys) != 1 || encodeKey(keys[0]) != key2 {
			t.Fatalf("%s after remove: %d keys", p.LocalName(), len(keys))
		}
		var onDisk []string
		raw, _ := os.ReadFile(filepath.Join(dir, p.LocalName(), "keyring"))
		if err := json.Unmarshal(raw, &onDisk); err != nil || len(onDisk) != 1 || onDisk[0] != key2 {
			t.Fatalf("%s keyring file %s", p.LocalName(), raw)
		}
	}
	// The pool still works under the new key: a newcomer with only the
	// old key is locked out, one with the new key joins.
	stale := startPool(t, "127.0.0.5", "stale", Config{EncryptKey: key1})
	if n, err := stale.Join([]string{a.LocalAddr()}); err == nil || n != 0 {
		t.Fatalf("a member with the removed key joined: %d %v", n, err)
	}
	fresh := startPool(t, "127.0.0.6", "fresh", Config{EncryptKey: key2})
	if _, err := fresh.Join([]string{b.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		return sees(a, "fresh") && sees(c, "fresh"), fmt.Errorf("a sees %v, c sees %v", names(a), names(c))
	})
	if sees(a, "stale") {
		t.Fatalf("a sees %v", names(a))
	}
}

func TestPool_UseRefusedWhileAMemberLacksTheKey(t *testing.T) {
	key1, key2 := mustKey(t), mustKey(t)
	a := startPool(t, "127.0.0.2", "a", Config{EncryptKey: key1})
	b := startPool(t, "127.0.0.3", "b", Config{EncryptKey: key1})
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return len(a.aliveMembers()) == 2, nil })
	if _, err := a.InstallKey(key2); err != nil {
		t.Fatal(err)
	}
	// A member that joins later, with the first key only, lacks key2:
	// making key2 primary would cut it off.
	late := startPool(t, "127.0.0.4", "late", Config{EncryptKey: key1})
	if _, err := late.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) {
		for _, m := range a.aliveMembers() {
			if m.Name == "late" && len(m.Keys) == 1 {
				return true, nil
			}
		}
		return false, fmt.Errorf("a sees %v", names(a))
	})
	_, err := a.UseKey(key2)
	if !errors.Is(err, ErrKeyNotInstalled) || !strings.Contains(err.Error(), "late") {
		t.Fatalf("use with a member lacking the key: %v", err)
	}
	if encodeKey(a.localKeys()[0]) != key1 {
		t.Fatal("refused use changed the primary key")
	}
}

func TestPool_KeyringOpReportsMembersThatDoNotReflectIt(t *testing.T) {
	key1, key2 := mustKey(t), mustKey(t)
	a := startPool(t, "127.0.0.2", "a", Config{EncryptKey: key1, KeyringWait: time.Second})
	// b's metadata leaves no room for its key fingerprints (memberlist
	// would panic on metadata over 512 bytes; the pool drops them), so
	// it can never be seen to reflect an install.
	b := startPool(t, "127.0.0.3", "b", Config{EncryptKey: key1, Meta: Meta{Client: true, Datacenter: strings.Repeat("x", 470)}})
	if _, err := b.Join([]string{a.LocalAddr()}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() (bool, error) { return len(a.aliveMembers()) == 2, nil })
	res, err := a.InstallKey(key2)
	if !errors.Is(err, ErrNotPropagated) || !strings.Contains(err.Error(), "b") {
		t.Fatalf("install: %v", err)
	}
	if res == nil || res.Members != 2 || res.Reflected != 1 || len(res.Missing) != 1 || res.Missing[0] != "b" {
		t.Fatalf("result %+v", res)
	}
	// b did get and apply the change; only its advertisement is short.
	testutil.WaitFor(t, 5*time.Second, func() (bool, error) { return len(b.localKeys()) == 2, nil })
}
