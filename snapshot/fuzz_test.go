package snapshot

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"testing"
)

// FuzzRead feeds Read arbitrary bytes: it must never panic, must
// refuse with ErrInvalid or ErrTooLarge, and whatever it accepts must
// be an archive whose parts rewrite to the same archive (so a success
// means the sums really matched what was read).
func FuzzRead(f *testing.F) {
	archive, _, _, _ := testArchive(f)
	f.Add(archive)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(archive)
	zw.Close()
	f.Add(gz.Bytes())
	f.Add(archive[:len(archive)/2])
	f.Add([]byte{0x1f, 0x8b})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 20
		var state bytes.Buffer
		meta, err := Read(bytes.NewReader(data), limit, &state)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrInvalid nor ErrTooLarge", err)
			}
			return
		}
		if int64(state.Len()) != meta.StateSize {
			t.Fatalf("state.bin is %d bytes, meta says %d", state.Len(), meta.StateSize)
		}
		var again bytes.Buffer
		if _, err := Write(&again, meta, bytes.NewReader(state.Bytes())); err != nil {
			t.Fatalf("rewrite an accepted archive: %v", err)
		}
		meta2, err := Read(bytes.NewReader(again.Bytes()), limit, io.Discard)
		if err != nil {
			t.Fatalf("the rewritten archive is refused: %v", err)
		}
		if *meta2 != *meta {
			t.Fatalf("meta changed through a rewrite: %+v vs %+v", meta, meta2)
		}
		// Decode must not panic either (its errors are checked above).
		_, _ = Decode(bytes.NewReader(data), limit)
	})
}
