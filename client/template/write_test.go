package template

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWriteFile_AtomicWithPerms(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	if err := writeFile(dir, "sub/deeper/app.conf", []byte("one"), 0o640); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "sub", "deeper", "app.conf")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %o, want 0640 whatever the umask", fi.Mode().Perm())
	}
	// Replacing the file makes a new inode (a rename), so a reader that
	// opened the old one reads it whole.
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeFile(dir, "sub/deeper/app.conf", []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf [8]byte
	n, _ := f.Read(buf[:])
	if string(buf[:n]) != "one" {
		t.Fatalf("the open file reads %q: it was rewritten in place", buf[:n])
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Fatalf("file holds %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode after rewrite %o", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

// TestWriteFile_RefusesSymlinkEscapes: a task owns its directories and
// may plant symlinks in them; the client, root on the node, must never
// follow one out of the directory.
func TestWriteFile_RefusesSymlinkEscapes(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	victim := filepath.Join(outside, "passwd")
	if err := os.WriteFile(victim, []byte("root:x:0:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory on the way that points out.
	if err := os.Symlink(outside, filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir, "sub/passwd", []byte("owned"), 0o644); err == nil {
		t.Fatal("wrote through a symlinked directory")
	}
	if err := writeFile(dir, "sub/new", []byte("owned"), 0o644); err == nil {
		t.Fatal("created a file through a symlinked directory")
	}
	// An absolute symlink, and a relative one climbing out.
	if err := os.Symlink("../../../../../../"+outside, filepath.Join(dir, "climb")); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir, "climb/passwd", []byte("owned"), 0o644); err == nil {
		t.Fatal("wrote through a climbing symlink")
	}
	// The destination itself a symlink: the rename replaces the link,
	// the target is untouched.
	if err := os.Symlink(victim, filepath.Join(dir, "app.conf")); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir, "app.conf", []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:x:0:0" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	fi, err := os.Lstat(filepath.Join(dir, "app.conf"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("destination is not a regular file now: %v %v", fi, err)
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Fatalf("files appeared outside: %v", entries)
	}
	// Reading back never follows a link out either.
	if err := os.Symlink(victim, filepath.Join(dir, "peek")); err != nil {
		t.Fatal(err)
	}
	if s, ok := readFile(dir, "peek", 1<<10); ok {
		t.Fatalf("read %q through a symlink", s)
	}
	if s, ok := readFile(dir, "app.conf", 1<<10); !ok || s != "mine" {
		t.Fatalf("readFile = %q %v", s, ok)
	}
	if _, ok := readFile(dir, "app.conf", 2); ok {
		t.Fatal("readFile read past its limit")
	}
}

func TestWriteFile_DestinationIsADirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := writeFile(dir, "conf", []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "rename") {
		t.Fatalf("writing over a directory: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary file left behind: %v", entries)
	}
}
