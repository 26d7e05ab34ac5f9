package structs

// LogConfig is a task's `logs` block: how much of each of its output
// streams (stdout, stderr) is kept on the node. The task logger writes a
// stream to numbered files of at most MaxFileSizeMB each and keeps the
// newest MaxFiles, so a stream never holds more than MaxFiles x
// MaxFileSizeMB of disk.
type LogConfig struct {
	MaxFiles      int
	MaxFileSizeMB int
}

// Log retention defaults (Nomad's) and bounds.
const (
	DefaultLogMaxFiles      = 10
	DefaultLogMaxFileSizeMB = 10

	minLogMaxFiles      = 1
	maxLogMaxFiles      = 100
	minLogMaxFileSizeMB = 1
	// maxLogMaxFileSizeMB is 10 GiB per file.
	maxLogMaxFileSizeMB = 10240
)

// DefaultLogConfig returns the retention a task without a logs block
// gets.
func DefaultLogConfig() *LogConfig {
	return &LogConfig{MaxFiles: DefaultLogMaxFiles, MaxFileSizeMB: DefaultLogMaxFileSizeMB}
}

// Effective returns the retention to apply: l, with any zero field
// defaulted (a job stored before validation required both), or the
// defaults for a nil l. It never returns nil and never changes l.
func (l *LogConfig) Effective() *LogConfig {
	out := DefaultLogConfig()
	if l == nil {
		return out
	}
	if l.MaxFiles != 0 {
		out.MaxFiles = l.MaxFiles
	}
	if l.MaxFileSizeMB != 0 {
		out.MaxFileSizeMB = l.MaxFileSizeMB
	}
	return out
}

// Copy returns a copy of l (nil for nil).
func (l *LogConfig) Copy() *LogConfig {
	if l == nil {
		return nil
	}
	c := *l
	return &c
}

// validate checks the logs block of the task at path. A task without
// one gets DefaultLogConfig; a block given must set both fields (the
// HCL block fills the ones it leaves out with the defaults).
func (l *LogConfig) validate(p *problems, path string) {
	if l == nil {
		return
	}
	if l.MaxFiles < minLogMaxFiles || l.MaxFiles > maxLogMaxFiles {
		p.add(path+".MaxFiles", "%d files is not allowed; max_files must be between %d and %d", l.MaxFiles, minLogMaxFiles, maxLogMaxFiles)
	}
	if l.MaxFileSizeMB < minLogMaxFileSizeMB || l.MaxFileSizeMB > maxLogMaxFileSizeMB {
		p.add(path+".MaxFileSizeMB", "%d MB is not allowed; max_file_size must be between %d and %d MB", l.MaxFileSizeMB, minLogMaxFileSizeMB, maxLogMaxFileSizeMB)
	}
}
