package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// secretsTmpfsSize bounds a task's secrets directory (bytes): what its
// templates render there, and what the task writes itself.
const secretsTmpfsSize = 4 << 20

// taskDirs are one task's directories on the node, under the
// allocation directory:
//
//	<alloc>/alloc/                 shared by the group's tasks (/alloc)
//	<alloc>/tasks/<task>/local/    the task's own, on disk (/local)
//	<alloc>/tasks/<task>/secrets/  the task's own, a tmpfs (/secrets)
//
// The task directories sit under tasks/ (beside the resolv.conf the
// containerd driver writes there), so no task name can collide with the
// shared alloc directory.
type taskDirs struct {
	alloc, local, secrets string
	// tmpfs: secrets is a tmpfs mount; otherwise (Config.SecretsOnDisk)
	// an ordinary directory.
	tmpfs bool
}

func newTaskDirs(allocDir, task string, tmpfs bool) *taskDirs {
	root := filepath.Join(allocDir, "tasks", task)
	return &taskDirs{
		alloc:   filepath.Join(allocDir, "alloc"),
		local:   filepath.Join(root, "local"),
		secrets: filepath.Join(root, "secrets"),
		tmpfs:   tmpfs,
	}
}

// templateDirs maps each of structs.TemplateDirs to its directory.
func (d *taskDirs) templateDirs() map[string]string {
	return map[string]string{"alloc": d.alloc, "local": d.local, "secrets": d.secrets}
}

// prepare creates the directories and mounts the secrets tmpfs (mode
// 0700, size-bounded, nosuid, nodev, noexec). It is idempotent: a tmpfs
// already mounted there (a client restart) is kept, with what it holds.
func (d *taskDirs) prepare() error {
	if err := os.MkdirAll(d.local, 0o755); err != nil {
		return fmt.Errorf("create task directory: %w", err)
	}
	if err := os.MkdirAll(d.secrets, 0o700); err != nil {
		return fmt.Errorf("create secrets directory: %w", err)
	}
	if !d.tmpfs {
		return os.Chmod(d.secrets, 0o700)
	}
	mounted, err := isTmpfsMount(d.secrets)
	if err != nil {
		return fmt.Errorf("secrets directory: %w", err)
	}
	if mounted {
		return nil
	}
	opts := "mode=0700,size=" + strconv.Itoa(secretsTmpfsSize)
	if err := unix.Mount("tmpfs", d.secrets, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount a tmpfs on the secrets directory %s: %w (the client agent must run as root)", d.secrets, err)
	}
	return nil
}

// release unmounts the secrets tmpfs (what it held is gone with it) and
// removes the secrets directory. The task must not run any more.
func (d *taskDirs) release() error {
	var errs []error
	if mounted, err := isTmpfsMount(d.secrets); err == nil && mounted {
		if err := unix.Unmount(d.secrets, 0); err != nil {
			// Busy (someone has a file open there): detach it now, the
			// kernel frees it once the last user is gone.
			if err := unix.Unmount(d.secrets, unix.MNT_DETACH); err != nil {
				errs = append(errs, fmt.Errorf("unmount %s: %w", d.secrets, err))
			}
		}
	}
	if err := os.RemoveAll(d.secrets); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// isTmpfsMount reports whether dir is a mount point of a tmpfs: a
// tmpfs, and on another device than its parent.
func isTmpfsMount(dir string) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return false, nil
	}
	var st, parent unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// ReleaseTaskDirs unmounts the secrets tmpfs of every task under a
// client data dir, for an agent about to remove the data dir it made
// for itself (-dev without -data-dir). The client must be shut down.
func ReleaseTaskDirs(dataDir string) error {
	dirs, err := filepath.Glob(filepath.Join(dataDir, "alloc", "*", "tasks", "*", "secrets"))
	if err != nil {
		return err
	}
	var errs []error
	for _, secrets := range dirs {
		d := &taskDirs{secrets: secrets}
		if err := d.release(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
