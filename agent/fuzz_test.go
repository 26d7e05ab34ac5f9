package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/droverhq/drover/structs"
	"github.com/droverhq/drover/testutil/mock"
)

// FuzzJobDecode feeds arbitrary bodies to the HTTP API's job decode
// path (PUT /v1/jobs without the RPC): size limit, unknown-field check,
// JSON decoding, Canonicalize and Validate. Invariants:
//
//   - it never panics, and a refusal is a 400 or a 413, never a 500:
//     whatever a client sends is the client's mistake, and says so;
//   - every problem of a refusal has a message;
//   - an accepted job is valid, stays valid and unchanged through a
//     second Canonicalize, through msgpack (the RPC and Raft encoding)
//     and through the API's own JSON (what `job inspect` prints is
//     accepted back).
func FuzzJobDecode(f *testing.F) {
	seed := func(v interface{}) {
		buf, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
	}
	seed(JobRegisterBody{Job: mock.Job()})
	seed(JobRegisterBody{Job: mock.BatchJob(), EnforceIndex: true, JobModifyIndex: 7})
	big := mock.Job()
	big.TaskGroups[0].Count = 1_000_000_000
	seed(JobRegisterBody{Job: big})
	f.Add([]byte(`{"Job":{"ID":"x","TaskGroups":[{"Name":"g","Tasks":[{"Name":"t","Driver":"containerd","Config":{"image":"i"}}]}]}}`))
	f.Add([]byte(`{"Job":{"ID":"x","TaskGroups":[{"Name":"g","Count":-1,"Tasks":[{"Name":"t","Driver":"containerd","Resources":{"CPU":9223372036854775807,"MemoryMB":1}}]}]}}`))
	f.Add([]byte(`{"Job":{"ID":"x","Bogus":1,"TaskGroups":[{"Nmae":"g"}]}}`))
	f.Add([]byte(`{"Job":{"ID":"x","TaskGroups":[null,{"Tasks":[null]}],"Constraints":[null]}}`))
	f.Add([]byte(`{"Job":{"ID":"x","TaskGroups":"no"}}`))
	f.Add([]byte(`{"Job":null}`))
	f.Add([]byte(`[1,2,3]`))
	f.Add([]byte(``))

	a := httpAgent(nil)
	a.config.MaxRequestBytes = 64 << 10
	// The round trip's JSON carries every default Canonicalize filled
	// in, so it may be bigger than the body it came from.
	roundTrip := httpAgent(nil)
	roundTrip.config.MaxRequestBytes = 64 << 20
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("PUT", "/v1/jobs", bytes.NewReader(body))
		decoded, err := a.decodeJobBody(rec, req, nil)
		if err != nil {
			status := writeError(httptest.NewRecorder(), err)
			if status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
				t.Fatalf("refusal is a %d, want 400 or 413: %v", status, err)
			}
			var verr *structs.ValidationError
			if errors.As(err, &verr) {
				if len(verr.Problems) == 0 {
					t.Fatal("a validation error without problems")
				}
				for _, p := range verr.Problems {
					if p.Message == "" {
						t.Fatalf("problem at %q without a message", p.Path)
					}
				}
			}
			return
		}
		job := decoded.Job
		if job == nil {
			t.Fatal("accepted a body without a job")
		}
		if err := job.Validate(); err != nil {
			t.Fatalf("accepted an invalid job: %v", err)
		}
		again := job.Copy()
		again.Canonicalize()
		if job.SpecChanged(again) {
			t.Fatal("Canonicalize is not idempotent on an accepted job")
		}

		// The RPC and the Raft log carry the job as msgpack.
		buf, err := structs.Encode(structs.JobRegisterRequestType, &structs.JobRegisterRequest{Job: job})
		if err != nil {
			t.Fatalf("encode an accepted job: %v", err)
		}
		var wire structs.JobRegisterRequest
		if err := structs.Decode(buf[1:], &wire); err != nil {
			t.Fatalf("decode an accepted job: %v", err)
		}
		if err := wire.Job.Validate(); err != nil {
			t.Fatalf("an accepted job is invalid after msgpack: %v", err)
		}
		if job.SpecChanged(wire.Job) {
			t.Fatalf("msgpack changed an accepted job:\n%+v\n%+v", job, wire.Job)
		}

		// What the API returns for the job, it accepts back.
		out, err := json.Marshal(JobRegisterBody{Job: job})
		if err != nil {
			t.Fatalf("encode an accepted job as JSON: %v", err)
		}
		back, err := roundTrip.decodeJobBody(httptest.NewRecorder(), httptest.NewRequest("PUT", "/v1/jobs", bytes.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("the API's own JSON of an accepted job is refused: %v\n%s", err, out)
		}
		if job.SpecChanged(back.Job) {
			t.Fatalf("a JSON round trip changed an accepted job:\n%s", out)
		}
	})
}
