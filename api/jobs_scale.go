package api

import "net/http"

// Scale sets the count of one task group of a job (PUT
// /v1/job/<id>/scale, Nomad's ScalingRequest). The job is registered
// again with the new count, as a new version; the response's EvalID is
// the evaluation that places or stops allocations.
func (j *Jobs) Scale(id, group string, count int64) (*JobRegisterResponse, error) {
	var resp JobRegisterResponse
	body := map[string]interface{}{"Count": count, "Target": map[string]string{"Job": id, "Group": group}}
	if _, err := j.c.write(http.MethodPut, "/v1/job/"+escape(id)+"/scale", nil, body, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
