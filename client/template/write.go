package template

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
)

// writeFile writes data to rel under dir atomically: a new temporary
// file in the destination's directory, synced, then renamed over rel.
// Every path is resolved through an os.Root of dir, so a symlink a task
// put anywhere on the way (dir is mounted into the task, writable)
// cannot lead the write outside dir. Missing directories on the way are
// created (0755). The file gets mode perm, whatever the umask.
func writeFile(dir, rel string, data []byte, perm fs.FileMode) (err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	if d := path.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	tmp := path.Join(path.Dir(rel), "."+path.Base(rel)+".drover-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = root.Remove(tmp)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := root.Rename(tmp, rel); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	return nil
}

// readFile returns what rel under dir holds, through an os.Root of dir,
// at most limit bytes; ok is false when it cannot be read (missing, a
// symlink out of dir, a directory, too large).
func readFile(dir, rel string, limit int) (string, bool) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", false
	}
	defer root.Close()
	fi, err := root.Lstat(rel)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > int64(limit) {
		return "", false
	}
	b, err := root.ReadFile(rel)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	return string(b), err == nil
}
