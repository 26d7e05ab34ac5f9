package command

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/snapshot"
)

func newOperatorSnapshotCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save, inspect and restore snapshots of the cluster state",
		Long: `A snapshot is a file holding the whole cluster state as Raft holds it
(jobs and their versions, nodes, allocations, evaluations, deployments,
namespaces, quotas, ACL policies and tokens, the cluster ID): a tar of
meta.json, state.bin and SHA256SUMS. Saving and restoring need a
management token: a snapshot holds the nodes' secrets and every
namespace, so keep the files as safe as the token.`,
	}
	cmd.AddCommand(newSnapshotSaveCommand(g), newSnapshotInspectCommand(g), newSnapshotRestoreCommand(g))
	return cmd
}

// progressMin is the size from which transfers show progress.
const progressMin = 16 << 20

// progress reports a transfer's bytes on stderr, at most once a second.
type progress struct {
	ui    *ui
	verb  string
	total int64

	// mu guards done and last (a Read and the final line).
	mu   sync.Mutex
	done int64
	last time.Time
}

func newProgress(u *ui, verb string, total int64) *progress {
	if total < progressMin {
		return nil
	}
	return &progress{ui: u, verb: verb, total: total, last: time.Now()}
}

func (p *progress) add(n int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	if time.Since(p.last) >= time.Second || p.done == p.total {
		p.last = time.Now()
		p.ui.Eprintf("%s %s of %s (%d%%)\n", p.verb, formatBytes(p.done), formatBytes(p.total), p.done*100/p.total)
	}
}

// progressReader counts what is read through it.
type progressReader struct {
	r io.Reader
	p *progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(n)
	return n, err
}

// formatBytes formats a size in B, KiB, MiB or GiB.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// localLimit bounds what the CLI reads of a snapshot file it checks or
// inspects (after decompression): the most a tar entry holds.
const localLimit = 1 << 34

func newSnapshotSaveCommand(g *globals) *cobra.Command {
	var stale, gz bool
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a snapshot of the cluster state to FILE",
		Long: `Save a snapshot of the cluster state to FILE. The leader takes it after
every write committed so far (with -stale, the server of the agent at
-address takes it from its own state: for a cluster without a leader).

The snapshot is streamed into FILE.tmp, checked (every SHA-256 sum),
and only then renamed to FILE, so FILE is never a partial snapshot.
Progress is shown for large snapshots. With -gzip, or a FILE ending in
.gz or .tgz, the file is gzipped; inspect and restore read both.

Needs a management token (-token or DROVER_TOKEN when ACLs are on).`,
		Args: oneFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if strings.HasSuffix(path, ".gz") || strings.HasSuffix(path, ".tgz") {
				gz = true
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			d, err := c.Operator().SnapshotSave(&api.QueryOptions{AllowStale: stale})
			if err != nil {
				return err
			}
			defer d.Close()
			meta, written, err := writeSnapshotFile(g.ui, path, d, gz)
			if err != nil {
				return err
			}
			g.ui.Printf("Saved a snapshot of cluster %s at index %d (term %d) to %s (%s)\n", meta.ClusterID, meta.Index, meta.Term, path, formatBytes(written))
			return nil
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "let the agent's server take the snapshot from its own state, without a leader")
	cmd.Flags().BoolVar(&gz, "gzip", false, "gzip the file (the default for a FILE ending in .gz or .tgz)")
	return cmd
}

// writeSnapshotFile writes the download to path through path.tmp,
// checks it, and renames it into place. It returns the archive's
// metadata and the file's size.
func writeSnapshotFile(u *ui, path string, d *api.SnapshotDownload, gz bool) (*api.SnapshotMeta, int64, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, 0, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	var src io.Reader = d
	if p := newProgress(u, "Saved", d.Size); p != nil {
		src = &progressReader{r: d, p: p}
	}
	var dst io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(f)
		dst = zw
	}
	n, err := io.Copy(dst, src)
	if err != nil {
		return nil, 0, fmt.Errorf("save the snapshot: the download failed after %s: %w", formatBytes(n), err)
	}
	if d.Size >= 0 && n != d.Size {
		return nil, 0, fmt.Errorf("save the snapshot: the download ended after %s of %s; the server failed midway (its log says why)", formatBytes(n), formatBytes(d.Size))
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	// Check what is on disk, as restore will read it.
	r, err := os.Open(tmp)
	if err != nil {
		return nil, 0, err
	}
	meta, err := snapshot.Read(r, localLimit, io.Discard)
	r.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("save the snapshot: the file written is not a valid snapshot: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, 0, err
	}
	if err := f.Close(); err != nil {
		return nil, 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, 0, err
	}
	ok = true
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return &api.SnapshotMeta{ArchiveVersion: meta.ArchiveVersion, ClusterID: meta.ClusterID, Index: meta.Index, Term: meta.Term,
		Time: meta.Time, DroverVersion: meta.DroverVersion, FSMVersion: meta.FSMVersion, StateSize: meta.StateSize}, size, nil
}

// snapshotInspection is what inspect prints (and -json).
type snapshotInspection struct {
	ClusterID      string
	Index          uint64
	Term           uint64
	Time           string
	DroverVersion  string
	ArchiveVersion int
	FSMVersion     int
	StateSize      int64
	// StateIndex is the latest index of the state inside.
	StateIndex uint64
	// Rows is the number of rows of every table.
	Rows map[string]int
}

func newSnapshotInspectCommand(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Check a snapshot file and print what it holds",
		Long: `Check a snapshot file (its layout and every SHA-256 sum), decode its state
with the servers' own restore code, and print the cluster, Raft index
and term it was taken at, and the rows of every table. Reads the file
only; needs no agent.`,
		Args: oneFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			d, err := snapshot.Decode(f, localLimit)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			rows, err := d.Rows()
			if err != nil {
				return err
			}
			out := snapshotInspection{ClusterID: d.Meta.ClusterID, Index: d.Meta.Index, Term: d.Meta.Term, Time: d.Meta.Time,
				DroverVersion: d.Meta.DroverVersion, ArchiveVersion: d.Meta.ArchiveVersion, FSMVersion: d.Meta.FSMVersion,
				StateSize: d.Meta.StateSize, StateIndex: d.FSM.LastIndex, Rows: rows}
			if asJSON {
				return printJSON(g.ui, out)
			}
			printKV(g.ui, [][2]string{
				{"Cluster ID", orNone(out.ClusterID)},
				{"Index", fmt.Sprint(out.Index)},
				{"Term", fmt.Sprint(out.Term)},
				{"Time", out.Time},
				{"Drover Version", orNone(out.DroverVersion)},
				{"Format", fmt.Sprintf("archive %d, FSM snapshot %d", out.ArchiveVersion, out.FSMVersion)},
				{"State Size", formatBytes(out.StateSize)},
			})
			g.ui.Printf("\n")
			tables := make([]string, 0, len(rows))
			for t := range rows {
				tables = append(tables, t)
			}
			sort.Strings(tables)
			table := [][]string{{"Table", "Rows"}}
			for _, t := range tables {
				table = append(table, []string{t, fmt.Sprint(rows[t])})
			}
			printTable(g.ui, table)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newSnapshotRestoreCommand(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Replace the cluster state with a snapshot",
		Long: `Replace the whole cluster state with the snapshot in FILE. The file is
checked here first, then sent to the leader, which checks it again
(every SHA-256 sum, the state decoding) before anything changes; a
damaged file changes nothing.

A snapshot of another cluster is refused by a cluster that holds data
(jobs, nodes, allocations...), so that a file for the wrong cluster
cannot wipe this one: -force restores it anyway, and the cluster keeps
its own ID. A new cluster that holds nothing yet takes any snapshot
without -force, and takes its cluster ID too: it becomes the cluster
it was a backup of.

Allocations in the snapshot that clients no longer run are found and
replaced as usual once the clients report. Needs a management token.`,
		Args: oneFileArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			meta, err := snapshot.Read(f, localLimit, io.Discard)
			if err != nil {
				return fmt.Errorf("%s: %w; nothing was sent", args[0], err)
			}
			size, err := f.Seek(0, io.SeekEnd)
			if err != nil {
				return err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			var body io.Reader = f
			if p := newProgress(g.ui, "Sent", size); p != nil {
				body = &progressReader{r: f, p: p}
			}
			res, err := c.Operator().SnapshotRestore(body, size, force)
			if err != nil {
				return err
			}
			g.ui.Printf("Restored the snapshot of cluster %s at index %d (taken %s)\n", orNone(meta.ClusterID), meta.Index, meta.Time)
			switch {
			case res.Forced:
				g.ui.Printf("It was of another cluster (-force): this cluster keeps its ID %s\n", res.ClusterID)
			case res.Adopted:
				g.ui.Printf("This cluster held no data and took the snapshot's cluster ID %s\n", res.ClusterID)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "restore a snapshot of another cluster into this cluster, which holds data (it keeps its ID)")
	return cmd
}

// oneFileArg accepts exactly one argument, the snapshot FILE.
func oneFileArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one snapshot FILE, got %d arguments", cmd.CommandPath(), len(args))
	}
	return nil
}
