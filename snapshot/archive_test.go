package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/droverhq/drover/fsm"
	"github.com/droverhq/drover/state"
	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// testState returns a store with a cluster ID, two nodes and a job,
// and its FSM snapshot.
func testState(t testing.TB) (*state.StateStore, []byte) {
	t.Helper()
	st := state.NewStateStore()
	if err := st.CreateClusterMeta(1, &structs.ClusterMeta{ClusterID: structs.GenerateUUID(), CreateTime: 1}); err != nil {
		t.Fatal(err)
	}
	for i := uint64(2); i < 4; i++ {
		if err := st.UpsertNode(i, mock.Node(), int64(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.UpsertJob(4, mock.Job(), 4, nil); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := fsm.WriteSnapshot(&buf, st, nil); err != nil {
		t.Fatal(err)
	}
	return st, buf.Bytes()
}

func metaFor(st *state.StateStore, stateBin []byte) *structs.SnapshotMeta {
	m, _ := st.ClusterMeta()
	latest, _ := st.LatestIndex()
	return &structs.SnapshotMeta{
		ArchiveVersion: structs.SnapshotArchiveVersion, ClusterID: m.ClusterID,
		Index: latest + 2, Term: 3, Time: "2026-12-06T05:15:14.123Z", DroverVersion: "test",
		FSMVersion: fsm.SnapshotVersion, StateSize: int64(len(stateBin)),
	}
}

// testArchive returns a valid archive and its parts.
func testArchive(t testing.TB) ([]byte, *structs.SnapshotMeta, *state.StateStore, []byte) {
	t.Helper()
	st, stateBin := testState(t)
	meta := metaFor(st, stateBin)
	var buf bytes.Buffer
	n, err := Write(&buf, meta, bytes.NewReader(stateBin))
	if err != nil {
		t.Fatal(err)
	}
	size, err := Size(meta)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n != size {
		t.Fatalf("Write says %d bytes, wrote %d, Size says %d", n, buf.Len(), size)
	}
	return buf.Bytes(), meta, st, stateBin
}

func TestArchive_RoundTrip(t *testing.T) {
	archive, meta, st, stateBin := testArchive(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(archive)
	zw.Close()
	for name, data := range map[string][]byte{"tar": archive, "gzip": gz.Bytes()} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			got, err := Read(bytes.NewReader(data), 1<<20, &out)
			if err != nil {
				t.Fatal(err)
			}
			if *got != *meta {
				t.Fatalf("meta %+v, want %+v", got, meta)
			}
			if !bytes.Equal(out.Bytes(), stateBin) {
				t.Fatal("state.bin differs")
			}
			d, err := Decode(bytes.NewReader(data), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			_, want, _ := st.Hash()
			_, have, _ := d.State.Hash()
			for table, sum := range want {
				if have[table] != sum {
					t.Fatalf("table %s differs after Decode", table)
				}
			}
			rows, _ := d.Rows()
			if rows[state.TableNodes] != 2 || rows[state.TableJobs] != 1 || rows[state.TableClusterMeta] != 1 {
				t.Fatalf("rows %v", rows)
			}
			if d.ClusterID() != meta.ClusterID || d.FSM.Version != fsm.SnapshotVersion {
				t.Fatalf("decoded cluster %q version %d", d.ClusterID(), d.FSM.Version)
			}
		})
	}
	// The layout: three entries in order, the sums in sha256sum's format.
	tr := tar.NewReader(bytes.NewReader(archive))
	var names []string
	var sums string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Name == SumsName {
			b, _ := io.ReadAll(tr)
			sums = string(b)
		}
	}
	if strings.Join(names, ",") != "meta.json,state.bin,SHA256SUMS" {
		t.Fatalf("entries %v", names)
	}
	if want := fmt.Sprintf("%x  state.bin\n", sha256.Sum256(stateBin)); !strings.Contains(sums, want) {
		t.Fatalf("SHA256SUMS %q lacks %q", sums, want)
	}
}

// Every damaged archive is refused with ErrInvalid (or ErrTooLarge),
// whatever part is damaged.
func TestArchive_RefusesDamage(t *testing.T) {
	archive, meta, st, stateBin := testArchive(t)
	rebuild := func(entries ...[2]string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e[0], Size: int64(len(e[1])), Mode: 0o600})
			tw.Write([]byte(e[1]))
		}
		tw.Close()
		return buf.Bytes()
	}
	metaJSON, _ := encodeMeta(meta)
	metaSum := sha256.Sum256(metaJSON)
	stateSum := sha256.Sum256(stateBin)
	goodSums := string(sumsFile(metaSum[:], stateSum[:]))
	otherCluster := *meta
	otherCluster.ClusterID = structs.GenerateUUID()
	otherJSON, _ := encodeMeta(&otherCluster)
	otherSum := sha256.Sum256(otherJSON)
	flip := func(at int) []byte {
		b := append([]byte(nil), archive...)
		b[at] ^= 0x01
		return b
	}
	stateAt := bytes.Index(archive, stateBin[:64])
	// A few kilobytes of gzip that inflate past the 1 MiB limit, each
	// entry declaring a size within it: the bound on the inflated
	// stream refuses it, not a declared size.
	var gzBomb bytes.Buffer
	zeros := make([]byte, 1<<20-100)
	bombMeta := *meta
	bombMeta.StateSize = int64(len(zeros))
	zw := gzip.NewWriter(&gzBomb)
	if _, err := Write(zw, &bombMeta, bytes.NewReader(zeros)); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	if gzBomb.Len() > 64<<10 {
		t.Fatalf("the bomb is %d bytes compressed", gzBomb.Len())
	}
	_ = st

	cases := []struct {
		name    string
		data    []byte
		tooBig  bool
		message string
	}{
		{"empty", nil, false, "ends before meta.json"},
		{"not a tar", []byte("hello, this is not a tar archive at all"), false, ""},
		{"truncated in state.bin", archive[:stateAt+100], false, ""},
		{"truncated before the sums", archive[:len(archive)-1024-512-512], false, ""},
		{"a flipped bit in state.bin", flip(stateAt + 10), false, "SHA-256 of state.bin"},
		{"a flipped bit in meta.json", flip(512 + 20), false, ""},
		{"entries out of order", rebuild([2]string{StateName, string(stateBin)}, [2]string{MetaName, string(metaJSON)}), false, "where meta.json was expected"},
		{"no sums", rebuild([2]string{MetaName, string(metaJSON)}, [2]string{StateName, string(stateBin)}), false, "ends before SHA256SUMS"},
		{"an extra entry", rebuild([2]string{MetaName, string(metaJSON)}, [2]string{StateName, string(stateBin)}, [2]string{SumsName, goodSums}, [2]string{"x", "y"}), false, "an entry follows"},
		{"sums for another meta.json", rebuild([2]string{MetaName, string(metaJSON)}, [2]string{StateName, string(stateBin)},
			[2]string{SumsName, string(sumsFile(otherSum[:], stateSum[:]))}), false, "SHA-256 of meta.json"},
		{"meta.json of another cluster with its sums", rebuild([2]string{MetaName, string(otherJSON)}, [2]string{StateName, string(stateBin)},
			[2]string{SumsName, string(sumsFile(otherSum[:], stateSum[:]))}), false, "holds cluster"},
		{"a sums line naming another file", rebuild([2]string{MetaName, string(metaJSON)}, [2]string{StateName, string(stateBin)},
			[2]string{SumsName, goodSums + fmt.Sprintf("%x  ../etc/passwd\n", stateSum)}), false, "names"},
		{"meta.json not JSON", rebuild([2]string{MetaName, "{"}), false, "meta.json"},
		{"newer archive version", rebuild([2]string{MetaName, `{"ArchiveVersion":2}`}), false, "archive version 2"},
		{"a state.bin that is not a snapshot", func() []byte {
			junk := []byte("not msgpack at all")
			m := *meta
			m.StateSize = int64(len(junk))
			mj, _ := encodeMeta(&m)
			ms, js := sha256.Sum256(mj), sha256.Sum256(junk)
			return rebuild([2]string{MetaName, string(mj)}, [2]string{StateName, string(junk)}, [2]string{SumsName, string(sumsFile(ms[:], js[:]))})
		}(), false, "does not decode"},
		{"over the limit", archive, true, ""},
		{"a gzip bomb", gzBomb.Bytes(), true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			limit := int64(1 << 20)
			if tc.name == "over the limit" {
				limit = int64(len(archive)) / 2
			}
			_, err := Decode(bytes.NewReader(tc.data), limit)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.tooBig {
				// Read alone: Decode may stop at the state that does
				// not decode before the stream reaches the limit.
				_, err = Read(bytes.NewReader(tc.data), limit, io.Discard)
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("error %v, want ErrTooLarge", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("error %q does not say %q", err, tc.message)
			}
		})
	}
}

// Exactly the limit is accepted; a byte less is not.
func TestArchive_LimitIsExact(t *testing.T) {
	archive, _, _, _ := testArchive(t)
	if _, err := Read(bytes.NewReader(archive), int64(len(archive)), io.Discard); err != nil {
		t.Fatalf("an archive of exactly the limit: %v", err)
	}
	if _, err := Read(bytes.NewReader(archive), int64(len(archive))-1, io.Discard); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an archive one byte over the limit: %v", err)
	}
}

// An error from the caller's writer comes back as it is.
func TestArchive_ReadReturnsWriterErrors(t *testing.T) {
	archive, _, _, _ := testArchive(t)
	boom := errors.New("disk full")
	_, err := Read(bytes.NewReader(archive), 1<<20, failingWriter{boom})
	if !errors.Is(err, boom) || errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v, want the writer's", err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestArchive_WriteRefusesShortState(t *testing.T) {
	st, stateBin := testState(t)
	meta := metaFor(st, stateBin)
	if _, err := Write(io.Discard, meta, bytes.NewReader(stateBin[:10])); err == nil || !strings.Contains(err.Error(), "ended after 10") {
		t.Fatalf("short state: %v", err)
	}
}
