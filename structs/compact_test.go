package structs

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

// compactFiller sets every exported field of a value, recursively, to
// something other than its zero value, so a field the compact codec
// forgets does not survive the round trip. Jobs, deployments and
// evaluations (msgpack blobs in the compact encoding) are left nil.
type compactFiller struct{ rnd *rand.Rand }

var (
	timeType       = reflect.TypeOf(time.Time{})
	blobPtrTypes   = map[reflect.Type]bool{reflect.TypeOf(&Job{}): true, reflect.TypeOf(&Deployment{}): true, reflect.TypeOf(&Evaluation{}): true}
	fillerKeyWords = []string{"a", "web", "sidecar", "${meta.rack} = r1", ""}
)

func (f *compactFiller) fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", f.rnd.Intn(1000)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(f.rnd.Int63n(1<<40) - 1<<39 | 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(f.rnd.Int63()) | 1)
	case reflect.Float64:
		v.SetFloat(f.rnd.NormFloat64() + 0.25)
	case reflect.Pointer:
		if blobPtrTypes[v.Type()] {
			return
		}
		p := reflect.New(v.Type().Elem())
		f.fill(p.Elem())
		v.Set(p)
	case reflect.Slice:
		if blobPtrTypes[v.Type().Elem()] {
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			f.fill(s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := 0; i < 3; i++ {
			k := reflect.New(v.Type().Key()).Elem()
			k.SetString(fillerKeyWords[f.rnd.Intn(len(fillerKeyWords))])
			e := reflect.New(v.Type().Elem()).Elem()
			f.fill(e)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(time.Unix(f.rnd.Int63n(1<<34), f.rnd.Int63n(1e9)).UTC()))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				f.fill(v.Field(i))
			}
		}
	default:
		panic(fmt.Sprintf("compactFiller: %s", v.Type()))
	}
}

// filledAlloc returns an allocation with every field set (but Job).
func filledAlloc(rnd *rand.Rand) *Allocation {
	a := &Allocation{}
	(&compactFiller{rnd}).fill(reflect.ValueOf(a).Elem())
	return a
}

// msgpackRoundTrip returns what the FSM decodes from msg's msgpack entry.
func msgpackRoundTrip[T any](t *testing.T, typ MessageType, msg *T) *T {
	t.Helper()
	buf, err := Encode(typ, msg)
	if err != nil {
		t.Fatal(err)
	}
	out := new(T)
	if err := Decode(buf[1:], out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCompact_RoundTripsEveryField encodes allocations with every field
// set, in client updates and plans, and requires the compact decoding
// to equal both the input and the msgpack decoding.
func TestCompact_RoundTripsEveryField(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		upd := &AllocUpdateRequest{
			NodeID: "node-1", SecretID: "secret", Alloc: []*Allocation{filledAlloc(rnd), filledAlloc(rnd)},
			Evals:     []*Evaluation{{ID: "e1", JobID: "j", Status: EvalStatusPending}},
			UpdatedAt: rnd.Int63(), WriteRequest: WriteRequest{Namespace: "ns", Forwarded: true, AuthToken: "token"},
		}
		buf, err := Encode(AllocClientUpdateCompactRequestType, upd)
		if err != nil {
			t.Fatal(err)
		}
		if MessageType(buf[0]) != AllocClientUpdateCompactRequestType {
			t.Fatalf("type byte %d", buf[0])
		}
		got, err := DecodeCompactAllocUpdate(buf[1:])
		if err != nil {
			t.Fatal(err)
		}
		want := *upd
		want.SecretID, want.AuthToken = "", ""
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("client update: decoded %+v\nwant %+v", got.Alloc[0], want.Alloc[0])
		}
		old := msgpackRoundTrip(t, AllocClientUpdateRequestType, upd)
		old.SecretID = ""
		if !reflect.DeepEqual(got, old) {
			t.Fatalf("client update: the compact decoding differs from the msgpack one")
		}

		job := &Job{ID: "j", Name: "j", Namespace: "ns", TaskGroups: []*TaskGroup{{Name: "web", Count: 1}}}
		own := filledAlloc(rnd)
		own.Job = &Job{ID: "j", Name: "j", Version: 7}
		shared := filledAlloc(rnd)
		shared.Job = job
		stop, evict := filledAlloc(rnd), filledAlloc(rnd)
		plan := &ApplyPlanResultsRequest{
			Job: job, AllocsPlaced: []*Allocation{filledAlloc(rnd), own, shared},
			AllocsStopped: []*Allocation{stop}, AllocsPreempted: []*Allocation{evict},
			Deployment:        &Deployment{ID: "d", JobID: "j", Status: "running"},
			DeploymentUpdates: []*DeploymentStatusUpdate{{DeploymentID: "d0", Status: "cancelled", StatusDescription: "superseded"}},
			Evals:             []*Evaluation{{ID: "e2", JobID: "j"}}, EvalID: "e0", UpdatedAt: rnd.Int63(),
		}
		batch := &ApplyPlanResultsBatchRequest{Plans: []*ApplyPlanResultsRequest{plan, {EvalID: "empty"}}}
		buf, err = Encode(ApplyPlanResultsCompactRequestType, batch)
		if err != nil {
			t.Fatal(err)
		}
		gotBatch, err := DecodeCompactPlanBatch(buf[1:])
		if err != nil {
			t.Fatal(err)
		}
		if gotBatch.Plans[0].AllocsPlaced[2].Job != gotBatch.Plans[0].Job {
			t.Fatalf("an allocation of the plan's job does not share the decoded job")
		}
		oldBatch := msgpackRoundTrip(t, ApplyPlanResultsBatchRequestType, batch)
		for _, b := range []*ApplyPlanResultsBatchRequest{batch, oldBatch} {
			p := *b.Plans[0]
			p.AllocsStopped = []*Allocation{CompactStop(p.AllocsStopped[0])}
			p.AllocsPreempted = []*Allocation{CompactStop(p.AllocsPreempted[0])}
			want := &ApplyPlanResultsBatchRequest{Plans: []*ApplyPlanResultsRequest{&p, b.Plans[1]}}
			if !reflect.DeepEqual(gotBatch, want) {
				t.Fatalf("plan batch: the compact decoding differs from the input or the msgpack decoding\n%+v\n%+v", gotBatch.Plans[0].AllocsPlaced[0], want.Plans[0].AllocsPlaced[0])
			}
		}
	}
}

// TestCompact_EncodeRefusesWhatItCannotWrite checks Encode's errors
// for the compact types: no request, or a request of another type.
func TestCompact_EncodeRefusesWhatItCannotWrite(t *testing.T) {
	cases := []struct {
		name string
		typ  MessageType
		msg  interface{}
	}{
		{"nil plan batch", ApplyPlanResultsCompactRequestType, (*ApplyPlanResultsBatchRequest)(nil)},
		{"nil update", AllocClientUpdateCompactRequestType, (*AllocUpdateRequest)(nil)},
		{"no message", AllocClientUpdateCompactRequestType, nil},
		{"a single plan", ApplyPlanResultsCompactRequestType, &ApplyPlanResultsRequest{}},
		{"an update as a plan batch", ApplyPlanResultsCompactRequestType, &AllocUpdateRequest{}},
		{"a plan batch as an update", AllocClientUpdateCompactRequestType, &ApplyPlanResultsBatchRequest{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if buf, err := Encode(c.typ, c.msg); err == nil {
				t.Fatalf("encoded %d bytes, want an error", len(buf))
			}
		})
	}
}

// TestCompact_KeepsNilAndEmpty checks that nil and empty collections and
// nil elements decode as they were, as msgpack's do.
func TestCompact_KeepsNilAndEmpty(t *testing.T) {
	a := &Allocation{
		ID: "a", TaskStates: map[string]*TaskState{"t": nil, "u": {Events: []*TaskEvent{nil}}},
		PreemptedAllocations: []string{},
		AllocatedResources:   &AllocatedResources{Tasks: map[string]*AllocatedTaskResources{}},
		Metrics:              &AllocMetric{NodesAvailable: map[string]int{}, ScoreMetaData: []*NodeScoreMeta{nil, {Scores: ScoreComponents{}}}},
		RescheduleTracker:    &RescheduleTracker{Events: []*RescheduleEvent{}},
		DeploymentStatus:     &AllocDeploymentStatus{Healthy: new(bool)},
	}
	upd := &AllocUpdateRequest{Alloc: []*Allocation{a, nil}, Evals: []*Evaluation{}}
	buf, err := Encode(AllocClientUpdateCompactRequestType, upd)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCompactAllocUpdate(buf[1:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, upd) {
		t.Fatalf("decoded %+v, want %+v", got.Alloc[0], upd.Alloc[0])
	}
	if old := msgpackRoundTrip(t, AllocClientUpdateRequestType, upd); !reflect.DeepEqual(got, old) {
		t.Fatalf("the compact decoding differs from the msgpack one")
	}

	// Checks is omitempty: msgpack decodes an empty map as nil, and so
	// must the compact codec.
	a.Checks = map[string]*CheckStatus{}
	buf, err = Encode(AllocClientUpdateCompactRequestType, upd)
	if err != nil {
		t.Fatal(err)
	}
	if got, err = DecodeCompactAllocUpdate(buf[1:]); err != nil {
		t.Fatal(err)
	}
	old := msgpackRoundTrip(t, AllocClientUpdateRequestType, upd)
	if got.Alloc[0].Checks != nil || !reflect.DeepEqual(got, old) {
		t.Fatalf("empty Checks decoded as %#v; msgpack decodes %#v", got.Alloc[0].Checks, old.Alloc[0].Checks)
	}
}

// TestCompact_IsCanonical checks that equal values give equal bytes
// whatever the maps' iteration order, and that a decoded entry encodes
// to the bytes it came from.
func TestCompact_IsCanonical(t *testing.T) {
	in := benchPlanBatch(4)
	first, err := EncodeCompactPlanBatch(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		again, err := EncodeCompactPlanBatch(in)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("encoding %d differs from the first", i)
		}
	}
	out, err := DecodeCompactPlanBatch(first[1:])
	if err != nil {
		t.Fatal(err)
	}
	again, err := EncodeCompactPlanBatch(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, again) {
		t.Fatalf("re-encoding the decoded entry gives %d bytes, not the %d it came from", len(again), len(first))
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("decoded batch differs from the encoded one")
	}
}

// TestCompact_RefusesCorruptInput checks the decoders' errors: every
// truncation, trailing bytes, an unknown version, keys out of order and
// lengths beyond the input.
func TestCompact_RefusesCorruptInput(t *testing.T) {
	rnd := rand.New(rand.NewSource(2))
	upd := &AllocUpdateRequest{Alloc: []*Allocation{filledAlloc(rnd)}, Evals: []*Evaluation{{ID: "e"}}}
	good, err := EncodeCompactAllocUpdate(upd)
	if err != nil {
		t.Fatal(err)
	}
	body := good[1:]
	for n := 0; n < len(body); n++ {
		if _, err := DecodeCompactAllocUpdate(body[:n]); !errors.Is(err, ErrCompactCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: error %v, want ErrCompactCorrupt", n, len(body), err)
		}
	}
	cases := []struct {
		name string
		buf  []byte
	}{
		{"trailing byte", append(append([]byte(nil), body...), 0)},
		{"unknown version", append([]byte{compactVersion + 1}, body[1:]...)},
		// NodeID "", then 2^62 allocations.
		{"huge count", []byte{compactVersion, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40}},
		// NodeID of 1000 bytes with 2 left.
		{"long string", []byte{compactVersion, 0xe8, 0x07, 'a', 'b'}},
		{"bool byte 2", []byte{compactVersion, 0, 0, 0, 0, 2, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := DecodeCompactAllocUpdate(c.buf); !errors.Is(err, ErrCompactCorrupt) {
				t.Fatalf("error %v, want ErrCompactCorrupt", err)
			}
		})
	}
	t.Run("keys out of order", func(t *testing.T) {
		w := &compactWriter{}
		w.count(2, false)
		w.str("b")
		w.int(1)
		w.str("a")
		w.int(2)
		r := &compactReader{b: w.b}
		r.intMap()
		if !errors.Is(r.err, ErrCompactCorrupt) {
			t.Fatalf("error %v, want ErrCompactCorrupt", r.err)
		}
	})
}

// FuzzCompactDecode feeds arbitrary bytes to both compact decoders: they
// must not panic, and whatever they accept must encode back to a value
// that decodes equal.
func FuzzCompactDecode(f *testing.F) {
	rnd := rand.New(rand.NewSource(3))
	if seed, err := EncodeCompactPlanBatch(benchPlanBatch(1)); err == nil {
		f.Add(seed[1:])
	}
	if seed, err := EncodeCompactAllocUpdate(&AllocUpdateRequest{Alloc: []*Allocation{filledAlloc(rnd)}}); err == nil {
		f.Add(seed[1:])
	}
	f.Add([]byte{compactVersion, 1})
	f.Fuzz(func(t *testing.T, buf []byte) {
		if p, err := DecodeCompactPlanBatch(buf); err == nil {
			again, err := EncodeCompactPlanBatch(p)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			p2, err := DecodeCompactPlanBatch(again[1:])
			if err != nil || !reflect.DeepEqual(p, p2) {
				t.Fatalf("a decoded plan batch does not survive a round trip: %v", err)
			}
		}
		if u, err := DecodeCompactAllocUpdate(buf); err == nil {
			again, err := EncodeCompactAllocUpdate(u)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			u2, err := DecodeCompactAllocUpdate(again[1:])
			if err != nil || !reflect.DeepEqual(u, u2) {
				t.Fatalf("a decoded client update does not survive a round trip: %v", err)
			}
		}
	})
}

// TestCompact_SharesRepeatedWords checks that the decoder allocates a
// repeated short string once: the allocations of a decoded plan share
// their evaluation ID, group name and status words.
func TestCompact_SharesRepeatedWords(t *testing.T) {
	buf, err := EncodeCompactPlanBatch(benchPlanBatch(1))
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeCompactPlanBatch(buf[1:])
	if err != nil {
		t.Fatal(err)
	}
	placed := out.Plans[0].AllocsPlaced
	a, b := placed[0], placed[len(placed)-1]
	for _, f := range []struct{ name, x, y string }{
		{"EvalID", a.EvalID, b.EvalID}, {"TaskGroup", a.TaskGroup, b.TaskGroup},
		{"ClientStatus", a.ClientStatus, b.ClientStatus}, {"plan EvalID", a.EvalID, out.Plans[0].EvalID},
	} {
		if f.x != f.y || unsafe.StringData(f.x) != unsafe.StringData(f.y) {
			t.Errorf("%s: %q and %q are separate copies", f.name, f.x, f.y)
		}
	}
	if unsafe.StringData(a.DesiredStatus) != unsafe.StringData(AllocDesiredStatusRun) {
		t.Errorf("DesiredStatus is not the shared fixed word")
	}
	// Equal maps are one map, as Compact would leave them; a different
	// one is its own.
	if reflect.ValueOf(a.Metrics.NodesAvailable).Pointer() != reflect.ValueOf(b.Metrics.NodesAvailable).Pointer() ||
		reflect.ValueOf(a.AllocatedResources.Tasks).Pointer() != reflect.ValueOf(b.AllocatedResources.Tasks).Pointer() {
		t.Errorf("equal metric or task resource maps are separate copies")
	}
	in := benchPlanBatch(1)
	in.Plans[0].AllocsPlaced[1].Metrics.NodesAvailable = map[string]int{"dc1": 1}
	buf, err = EncodeCompactPlanBatch(in)
	if err != nil {
		t.Fatal(err)
	}
	if out, err = DecodeCompactPlanBatch(buf[1:]); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("a plan with one different map decodes to another plan")
	}
}
