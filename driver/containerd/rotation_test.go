package containerd

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/droverhq/drover/testutil"
)

// TestDriver_LogRotationBoundsDisk: a task writing 100 MB to stdout with
// logs { max_files = 3, max_file_size = 5 } leaves the newest 3 files of
// 5 MB on disk, however fast it writes.
func TestDriver_LogRotationBoundsDisk(t *testing.T) {
	h := newHarness(t)
	cfg := h.shellTask("chatty", "dd if=/dev/zero bs=1048576 count=100 2>/dev/null; echo done >&2")
	cfg.LogMaxFiles, cfg.LogMaxFileSizeMB = 3, 5
	h.start(cfg)
	if res := h.wait(h.drv, cfg.ID); !res.Successful() {
		t.Fatalf("task: %+v; stderr %q", res, readStream(cfg.StderrPath))
	}
	const fileBytes = 5 << 20
	// The logger may still be writing the last bytes the task wrote
	// before it exited: 100 MB make files 0 to 19 of exactly 5 MB.
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		files, err := LogFiles(cfg.StdoutPath)
		if err != nil {
			return false, err
		}
		var total int64
		var desc []string
		for _, f := range files {
			fi, err := os.Stat(f.Path)
			if err != nil {
				return false, err
			}
			total += fi.Size()
			desc = append(desc, fmt.Sprintf("%d:%d", f.Index, fi.Size()))
		}
		if len(files) > 3 || total > 3*fileBytes {
			t.Fatalf("stdout keeps %d files, %d bytes (%v); want at most 3 files of 5 MiB", len(files), total, desc)
		}
		if len(files) != 3 || files[0].Index != 17 || files[2].Index != 19 || total != 3*fileBytes {
			return false, fmt.Errorf("stdout files %v, want 17 18 19 of 5 MiB", desc)
		}
		return true, nil
	})
	fileContains(t, cfg.StderrPath, "done\n")
}
