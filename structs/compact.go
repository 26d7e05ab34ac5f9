package structs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// The compact log codec.
//
// Plan results and client allocation updates are most of what every
// server's FSM decodes, and reflective msgpack spent a fifth of a
// follower's CPU on them. Their compact entries
// (ApplyPlanResultsCompactRequestType, AllocClientUpdateCompactRequestType)
// are written by hand-written code over encoding/binary instead:
//
//   - the entry is the type byte, a format version byte (compactVersion),
//     then the request's fields in a fixed order, without names;
//   - integers are varints (signed ones zig-zag), floats 8 bytes little
//     endian, bools one byte (0 or 1), strings a length then the bytes;
//   - a pointer is a presence byte (0 nil, 1 set) then the value;
//   - a slice or map is its length plus one, 0 meaning nil, so nil and
//     empty survive the round trip as msgpack's do; map entries are
//     written in ascending key order, so one value has one encoding, and
//     the decoder refuses keys out of order;
//   - what is rare and large (a plan's Job and Deployment, evaluations)
//     is a length-prefixed msgpack blob (Encode's canonical handle).
//
// A stopped or preempted allocation carries only what the state store
// reads from it (compactStop), not the whole allocation.
//
// The decoder reads untrusted bytes (a corrupt log, or a fuzzer): it
// never panics, every length is checked against the bytes that remain
// before anything is allocated for it (an element takes at least one
// byte), and every loop consumes input, so it cannot hang. The fields
// of each type are listed once in the encoder and once in the decoder
// (compact_alloc.go); TestCompact_RoundTripsEveryField fills every
// field by reflection, so a field added to a struct and not to the codec
// fails it.

// compactVersion is the format version byte after the type byte. A
// decoder refuses versions it does not know.
const compactVersion = 1

// ErrCompactCorrupt is returned (wrapped) by the compact decoders for
// input that is not a valid compact entry.
var ErrCompactCorrupt = errors.New("corrupt compact entry")

// compactWriter appends the compact encoding to b.
type compactWriter struct {
	b []byte
	// err is the first blob that failed to encode.
	err error
}

func (w *compactWriter) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *compactWriter) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *compactWriter) int(v int)        { w.varint(int64(v)) }
func (w *compactWriter) f64(v float64) {
	w.b = binary.LittleEndian.AppendUint64(w.b, math.Float64bits(v))
}

func (w *compactWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *compactWriter) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

// present writes a pointer's presence byte and reports whether the value
// follows.
func (w *compactWriter) present(set bool) bool {
	w.bool(set)
	return set
}

// count writes a slice's or map's length (0 for nil).
func (w *compactWriter) count(n int, isNil bool) {
	if isNil {
		w.uvarint(0)
		return
	}
	w.uvarint(uint64(n) + 1)
}

// time writes a time as a presence byte (0: the zero time) then Unix
// seconds and nanoseconds. The location and the monotonic reading are
// not kept, as msgpack keeps neither: a time decodes in UTC.
func (w *compactWriter) time(t time.Time) {
	if !w.present(!t.IsZero()) {
		return
	}
	w.varint(t.Unix())
	w.uvarint(uint64(t.Nanosecond()))
}

func (w *compactWriter) strings(s []string) {
	w.count(len(s), s == nil)
	for _, v := range s {
		w.str(v)
	}
}

func (w *compactWriter) intMap(m map[string]int) {
	w.count(len(m), m == nil)
	for _, k := range sortedMapKeys(m) {
		w.str(k)
		w.int(m[k])
	}
}

// blob writes v in msgpack with a length prefix; nil (a nil pointer or
// slice) is written as length 0.
func (w *compactWriter) blob(v interface{}, isNil bool) {
	if isNil {
		w.uvarint(0)
		return
	}
	buf, err := Encode(0, v)
	if err != nil {
		if w.err == nil {
			w.err = err
		}
		w.uvarint(0)
		return
	}
	// Encode's first byte is the (unused) type byte.
	w.uvarint(uint64(len(buf)))
	w.b = append(w.b, buf[1:]...)
}

// sortedMapKeys returns m's keys in ascending order.
func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// compactReader decodes the compact encoding from b. The first error
// sticks: every later read returns a zero value, so a decoder checks
// err once at the end (and in loops, to stop early).
type compactReader struct {
	b   []byte
	err error
	// words holds the short strings read by word, so that the status
	// words, group names, evaluation IDs, map keys and event messages
	// repeated across an entry's allocations are allocated once (and
	// the fixed words of internTable not at all).
	words map[string]string
	// Maps that placements of a plan usually have equal, shared as
	// ApplyPlanResultsRequest.Compact would share them (see shared).
	nodesAvailable, classFiltered, constraintFiltered,
	classExhausted, dimensionExhausted sharedMap[map[string]int]
	tasks sharedMap[map[string]*AllocatedTaskResources]
}

// sharedMap is the last map decoded for one field, and its encoding.
type sharedMap[M any] struct {
	raw []byte
	m   M
}

// shared returns s's map again when the input continues with the same
// encoding (the encoding is canonical and self-delimiting, so the same
// bytes are the same value), else the map read reads, which it keeps in
// s for the next time.
func shared[M any](r *compactReader, s *sharedMap[M], read func() M) M {
	if len(s.raw) > 1 && bytes.HasPrefix(r.b, s.raw) {
		r.b = r.b[len(s.raw):]
		return s.m
	}
	start := r.b
	m := read()
	if r.err == nil {
		s.raw, s.m = start[:len(start)-len(r.b)], m
	}
	return m
}

// Bounds of compactReader.words.
const (
	maxCompactWords   = 1024
	maxCompactWordLen = 128
)

func (r *compactReader) fail(format string, args ...interface{}) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrCompactCorrupt, fmt.Sprintf(format, args...))
	}
	r.b = nil
}

func (r *compactReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad unsigned varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *compactReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *compactReader) int() int {
	v := r.varint()
	if int64(int(v)) != v {
		r.fail("integer %d out of range", v)
		return 0
	}
	return int(v)
}

func (r *compactReader) f64() float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("short float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *compactReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("string of %d bytes, %d left", n, len(r.b))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// word reads a string that is likely repeated in the entry (see
// compactReader.words); it returns the same value str would.
func (r *compactReader) word() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("string of %d bytes, %d left", n, len(r.b))
		return ""
	}
	b := r.b[:n]
	r.b = r.b[n:]
	if n == 0 {
		return ""
	}
	if w, ok := r.words[string(b)]; ok {
		return w
	}
	if w, ok := internTable[string(b)]; ok {
		return w
	}
	s := string(b)
	if n <= maxCompactWordLen && len(r.words) < maxCompactWords {
		if r.words == nil {
			r.words = make(map[string]string)
		}
		r.words[s] = s
	}
	return s
}

func (r *compactReader) bool() bool {
	if r.err != nil {
		return false
	}
	if len(r.b) == 0 {
		r.fail("short bool")
		return false
	}
	v := r.b[0]
	if v > 1 {
		r.fail("bool byte %d", v)
		return false
	}
	r.b = r.b[1:]
	return v == 1
}

// present reads a pointer's presence byte.
func (r *compactReader) present() bool { return r.bool() }

// count reads a slice's or map's length; isNil for a nil one. n is at
// most the bytes that remain: every element takes at least one byte, so
// a length prefix cannot make the decoder allocate more than its input.
func (r *compactReader) count() (n int, isNil bool) {
	v := r.uvarint()
	if r.err != nil {
		return 0, true
	}
	if v == 0 {
		return 0, true
	}
	if v-1 > uint64(len(r.b)) {
		r.fail("%d elements, %d bytes left", v-1, len(r.b))
		return 0, true
	}
	return int(v - 1), false
}

// key reads a map key, which must sort after prev (the previous key;
// first is true for the first key).
func (r *compactReader) key(prev string, first bool) string {
	k := r.word()
	if r.err == nil && !first && k <= prev {
		r.fail("map key %q after %q: keys must be unique and ascending", k, prev)
	}
	return k
}

func (r *compactReader) time() time.Time {
	if !r.present() {
		return time.Time{}
	}
	sec := r.varint()
	nsec := r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		r.fail("time nanoseconds %d", nsec)
		return time.Time{}
	}
	t := time.Unix(sec, int64(nsec)).UTC()
	if t.IsZero() {
		// The zero time has its own encoding.
		r.fail("zero time written as a time")
		return time.Time{}
	}
	return t
}

func (r *compactReader) strings() []string {
	n, isNil := r.count()
	if isNil {
		return nil
	}
	out := make([]string, n)
	for i := 0; i < n && r.err == nil; i++ {
		out[i] = r.str()
	}
	return out
}

func (r *compactReader) intMap() map[string]int {
	n, isNil := r.count()
	if isNil {
		return nil
	}
	m := make(map[string]int, n)
	var prev string
	for i := 0; i < n && r.err == nil; i++ {
		k := r.key(prev, i == 0)
		m[k] = r.int()
		prev = k
	}
	return m
}

// blob reads a length-prefixed msgpack value into out and reports
// whether one was there (length 0: nil, out untouched).
func (r *compactReader) blob(out interface{}) bool {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return false
	}
	// n counts Encode's type byte, which is not written.
	n--
	if n > uint64(len(r.b)) {
		r.fail("blob of %d bytes, %d left", n, len(r.b))
		return false
	}
	if err := Decode(r.b[:n], out); err != nil {
		r.fail("blob %T: %v", out, err)
		return false
	}
	r.b = r.b[n:]
	return true
}

// compactBuffers keeps the encoders' buffers between calls, as Encode's
// pool does.
var compactBuffers = sync.Pool{New: func() interface{} { return new(compactWriter) }}

// encodeCompact runs fill over a pooled writer after the type and
// version bytes and returns a new slice of exactly the entry's length.
func encodeCompact(t MessageType, fill func(w *compactWriter)) ([]byte, error) {
	w := compactBuffers.Get().(*compactWriter)
	w.b = append(w.b[:0], byte(t), compactVersion)
	w.err = nil
	fill(w)
	out, err := append([]byte(nil), w.b...), w.err
	w.err = nil
	if cap(w.b) <= maxPooledEncodeBuffer {
		compactBuffers.Put(w)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return out, nil
}

// decodeCompact checks the version byte, runs read over the rest and
// requires it to consume every byte.
func decodeCompact(buf []byte, what string, read func(r *compactReader)) error {
	if len(buf) == 0 {
		return fmt.Errorf("decode %s: %w: empty", what, ErrCompactCorrupt)
	}
	if buf[0] != compactVersion {
		return fmt.Errorf("decode %s: %w: format version %d, this server reads %d", what, ErrCompactCorrupt, buf[0], compactVersion)
	}
	r := &compactReader{b: buf[1:]}
	read(r)
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fmt.Errorf("decode %s: %w", what, r.err)
	}
	return nil
}
