package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/droverhq/drover/structs"
)

// Names of the archive's entries, in their order.
const (
	MetaName  = "meta.json"
	StateName = "state.bin"
	SumsName  = "SHA256SUMS"
)

// Bounds on what Read accepts.
const (
	// maxMetaSize bounds meta.json.
	maxMetaSize = 64 << 10
	// maxStateSize is the most a USTAR tar entry can hold (8 GiB - 1).
	maxStateSize = 1<<33 - 1
)

// ErrInvalid wraps every reason an archive is refused for what it
// holds: not a tar, entries missing, out of order or of the wrong kind,
// a sum that does not match, metadata that does not decode.
var ErrInvalid = errors.New("invalid snapshot archive")

// ErrTooLarge is returned when an archive (after decompression) is
// larger than the limit given to Read.
var ErrTooLarge = errors.New("snapshot archive too large")

func invalid(format string, args ...interface{}) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// tarEntrySize is the bytes a tar entry of n bytes takes: its header
// block and its data padded to whole blocks.
func tarEntrySize(n int64) int64 {
	return 512 + (n+511)/512*512
}

// sumsFile renders SHA256SUMS.
func sumsFile(metaSum, stateSum []byte) []byte {
	return []byte(fmt.Sprintf("%x  %s\n%x  %s\n", metaSum, MetaName, stateSum, StateName))
}

// sumsSize is the length of SHA256SUMS (hex SHA-256 sums have a fixed
// length).
var sumsSize = int64(len(sumsFile(make([]byte, sha256.Size), make([]byte, sha256.Size))))

// encodeMeta renders meta.json.
func encodeMeta(meta *structs.SnapshotMeta) ([]byte, error) {
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", MetaName, err)
	}
	return append(b, '\n'), nil
}

// Size returns the exact size of the archive Write writes for meta:
// servers announce it before streaming, and clients show progress
// against it.
func Size(meta *structs.SnapshotMeta) (int64, error) {
	m, err := encodeMeta(meta)
	if err != nil {
		return 0, err
	}
	// Two zero blocks end a tar.
	return tarEntrySize(int64(len(m))) + tarEntrySize(meta.StateSize) + tarEntrySize(sumsSize) + 1024, nil
}

// Write writes an archive of meta and state.bin to w, reading exactly
// meta.StateSize bytes of the FSM snapshot from state. It returns the
// bytes written, which are Size(meta).
func Write(w io.Writer, meta *structs.SnapshotMeta, state io.Reader) (int64, error) {
	if meta.StateSize < 0 || meta.StateSize > maxStateSize {
		return 0, fmt.Errorf("write snapshot archive: state size %d is out of range (0 to %d bytes)", meta.StateSize, int64(maxStateSize))
	}
	m, err := encodeMeta(meta)
	if err != nil {
		return 0, err
	}
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	modTime := time.Now().UTC().Truncate(time.Second)
	if t, err := time.Parse(time.RFC3339Nano, meta.Time); err == nil {
		modTime = t.UTC().Truncate(time.Second)
	}
	header := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600,
			ModTime: modTime, Format: tar.FormatUSTAR,
		})
	}
	if err := header(MetaName, int64(len(m))); err != nil {
		return cw.n, fmt.Errorf("write %s: %w", MetaName, err)
	}
	if _, err := tw.Write(m); err != nil {
		return cw.n, fmt.Errorf("write %s: %w", MetaName, err)
	}
	metaSum := sha256.Sum256(m)

	if err := header(StateName, meta.StateSize); err != nil {
		return cw.n, fmt.Errorf("write %s: %w", StateName, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(state, meta.StateSize))
	if err != nil {
		return cw.n, fmt.Errorf("write %s: %w", StateName, err)
	}
	if n != meta.StateSize {
		return cw.n, fmt.Errorf("write %s: the FSM snapshot ended after %d of its %d bytes", StateName, n, meta.StateSize)
	}

	sums := sumsFile(metaSum[:], h.Sum(nil))
	if err := header(SumsName, int64(len(sums))); err != nil {
		return cw.n, fmt.Errorf("write %s: %w", SumsName, err)
	}
	if _, err := tw.Write(sums); err != nil {
		return cw.n, fmt.Errorf("write %s: %w", SumsName, err)
	}
	if err := tw.Close(); err != nil {
		return cw.n, fmt.Errorf("write snapshot archive: %w", err)
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Read checks the archive read from r and returns its metadata, copying
// state.bin to stateOut as it goes. r may be a tar or a gzipped tar;
// limit bounds the tar's size (after decompression): past it Read fails
// with ErrTooLarge. Every other refusal wraps ErrInvalid, and an error
// from stateOut is returned as it is.
//
// The sums are checked at the end, after state.bin went to stateOut:
// on any error, what stateOut received must be thrown away.
func Read(r io.Reader, limit int64, stateOut io.Writer) (*structs.SnapshotMeta, error) {
	br := bufio.NewReader(r)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, invalid("gzip: %v", err)
		}
		defer zr.Close()
		src = zr
	}
	lr := &limitReader{r: src, left: limit}
	tr := tar.NewReader(lr)
	wrap := func(what string, err error) error {
		switch {
		case errors.Is(err, ErrTooLarge):
			return fmt.Errorf("%w: larger than the limit of %d bytes", ErrTooLarge, limit)
		case errors.Is(err, ErrInvalid):
			return err
		}
		return invalid("%s: %v", what, err)
	}

	next := func(want string, max int64) (*tar.Header, error) {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, invalid("the archive ends before %s (want %s, %s, %s in that order)", want, MetaName, StateName, SumsName)
		}
		if err != nil {
			return nil, wrap("read "+want+" header", err)
		}
		if hdr.Name != want {
			return nil, invalid("entry %q where %s was expected (want %s, %s, %s in that order)", truncate(hdr.Name), want, MetaName, StateName, SumsName)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, invalid("%s is not a regular file (tar type %q)", want, hdr.Typeflag)
		}
		if hdr.Size < 0 || hdr.Size > max {
			if hdr.Size > limit {
				return nil, fmt.Errorf("%w: %s declares %d bytes, over the limit of %d bytes", ErrTooLarge, want, hdr.Size, limit)
			}
			return nil, invalid("%s declares %d bytes; at most %d are accepted", want, hdr.Size, max)
		}
		return hdr, nil
	}

	// meta.json
	hdr, err := next(MetaName, maxMetaSize)
	if err != nil {
		return nil, err
	}
	metaRaw := make([]byte, hdr.Size)
	if _, err := io.ReadFull(tr, metaRaw); err != nil {
		return nil, wrap("read "+MetaName, err)
	}
	var meta structs.SnapshotMeta
	if err := json.Unmarshal(metaRaw, &meta); err != nil {
		return nil, invalid("%s: %v", MetaName, err)
	}
	if meta.ArchiveVersion != structs.SnapshotArchiveVersion {
		return nil, invalid("archive version %d; this Drover reads version %d (a newer Drover wrote it, or it is not a Drover snapshot)", meta.ArchiveVersion, structs.SnapshotArchiveVersion)
	}
	if meta.ClusterID != "" {
		if err := structs.ValidateClusterID(meta.ClusterID); err != nil {
			return nil, invalid("%s: %v", MetaName, err)
		}
	}

	// state.bin
	hdr, err = next(StateName, min(limit, maxStateSize))
	if err != nil {
		return nil, err
	}
	if hdr.Size != meta.StateSize {
		return nil, invalid("%s holds %d bytes but %s says %d", StateName, hdr.Size, MetaName, meta.StateSize)
	}
	stateHash := sha256.New()
	n, err := io.Copy(&outWriter{w: stateOut, h: stateHash}, tr)
	if err != nil {
		var oe *outError
		if errors.As(err, &oe) {
			return nil, oe.err
		}
		return nil, wrap("read "+StateName, err)
	}
	if n != hdr.Size {
		return nil, invalid("%s ended after %d of its %d bytes", StateName, n, hdr.Size)
	}

	// SHA256SUMS
	hdr, err = next(SumsName, 4096)
	if err != nil {
		return nil, err
	}
	sumsRaw := make([]byte, hdr.Size)
	if _, err := io.ReadFull(tr, sumsRaw); err != nil {
		return nil, wrap("read "+SumsName, err)
	}
	sums, err := parseSums(sumsRaw)
	if err != nil {
		return nil, err
	}
	metaSum := sha256.Sum256(metaRaw)
	for _, part := range []struct {
		name string
		got  []byte
	}{{MetaName, metaSum[:]}, {StateName, stateHash.Sum(nil)}} {
		want, ok := sums[part.name]
		if !ok {
			return nil, invalid("%s has no sum for %s", SumsName, part.name)
		}
		if !bytes.Equal(want, part.got) {
			return nil, invalid("the SHA-256 of %s is %x, but %s says %x: the file is damaged or was changed", part.name, part.got, SumsName, want)
		}
	}
	if _, err := tr.Next(); !errors.Is(err, io.EOF) {
		if err == nil {
			return nil, invalid("an entry follows %s; the archive holds exactly %s, %s and %s", SumsName, MetaName, StateName, SumsName)
		}
		return nil, wrap("read the end of the archive", err)
	}
	return &meta, nil
}

// parseSums reads SHA256SUMS: one "<hex sha256>  <name>" line for each
// of meta.json and state.bin, and nothing else.
func parseSums(raw []byte) (map[string][]byte, error) {
	out := make(map[string][]byte, 2)
	for i, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			return nil, invalid("%s line %d is not \"<sha256>  <name>\"", SumsName, i+1)
		}
		if name != MetaName && name != StateName {
			return nil, invalid("%s line %d names %q, not %s or %s", SumsName, i+1, truncate(name), MetaName, StateName)
		}
		if _, dup := out[name]; dup {
			return nil, invalid("%s names %s twice", SumsName, name)
		}
		b, err := hex.DecodeString(sum)
		if err != nil || len(b) != sha256.Size {
			return nil, invalid("%s line %d: %q is not a hex SHA-256", SumsName, i+1, truncate(sum))
		}
		out[name] = b
	}
	return out, nil
}

// limitReader passes on at most left bytes and then fails with
// ErrTooLarge if the stream goes on (io.LimitReader would end it
// quietly, and a truncated tar would be reported instead of the
// limit). It never hands out a byte past the limit along with an
// error: io.ReadFull drops an error that comes with a full buffer.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if l.left <= 0 {
		// At the limit: one more byte means the stream is over it.
		var one [1]byte
		for {
			n, err := l.r.Read(one[:])
			if n > 0 {
				return 0, ErrTooLarge
			}
			if err != nil {
				return 0, err
			}
		}
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// outWriter hashes what it passes on to the caller's writer and marks
// the caller's errors, so Read returns them as they are.
type outWriter struct {
	w io.Writer
	h hash.Hash
}

type outError struct{ err error }

func (e *outError) Error() string { return e.err.Error() }

func (o *outWriter) Write(p []byte) (int, error) {
	o.h.Write(p)
	n, err := o.w.Write(p)
	if err != nil {
		return n, &outError{err}
	}
	return n, nil
}

// truncate bounds a hostile name quoted in an error.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
