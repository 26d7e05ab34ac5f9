package command

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/droverhq/drover/api"
)

// isTTY reports whether w is a terminal, where the deployment monitor
// redraws its table in place.
func isTTY(w interface{}) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// findDeployment returns the deployment that rolls out the job version an
// evaluation acted on: the one the evaluation names, else the job's
// latest deployment when it is for the current version and still
// running. Nil means the job rolls out without a deployment (no update
// block, batch and system jobs).
func (m *monitor) findDeployment(eval *api.Evaluation, job *api.Job) (*api.Deployment, error) {
	if eval.DeploymentID != "" {
		d, _, err := m.client.Deployments().Info(eval.DeploymentID, nil)
		if err == nil {
			return d, nil
		}
		if !api.IsNotFound(err) {
			return nil, err
		}
	}
	d, _, err := m.client.Jobs().LatestDeployment(job.ID, nil)
	if err != nil {
		if api.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	if d == nil || d.JobVersion != job.Version || d.JobModifyIndex != job.JobModifyIndex {
		return nil, nil
	}
	return d, nil
}

// watchDeployment follows a deployment until it ends: successful (exit
// 0), failed or reverted (exit 1), cancelled by a newer version (exit 1).
// A deployment that waits for its canaries to be promoted ends the watch
// with exit 0 once they are healthy, with the command that promotes
// them. On a terminal the progress table is redrawn in place; otherwise
// every change is a plain line.
func (m *monitor) watchDeployment(id string) error {
	m.ui.Printf("==> Monitoring deployment %q\n", short(id))
	tty := m.tty
	var index uint64
	drawn := 0 // lines of the last table drawn (terminal)
	lastLine := map[string]string{}
	seenEvents := 0
	for {
		wait, err := m.timeLeft()
		if err != nil {
			return err
		}
		d, meta, err := m.client.Deployments().Info(id, &api.QueryOptions{WaitIndex: index, WaitTime: wait})
		if err != nil {
			return err
		}
		index = meta.LastIndex

		// History lines that are new since the last look.
		if seenEvents > len(d.History) {
			seenEvents = 0 // the history was trimmed; start over
		}
		newEvents := d.History[seenEvents:]
		seenEvents = len(d.History)

		if tty {
			var b bytes.Buffer
			for _, e := range newEvents {
				fmt.Fprintf(&b, "    %s %s\n", time.Unix(0, e.Time).Local().Format("15:04:05"), e.Message)
			}
			table := deploymentProgressTable(d)
			if drawn > 0 {
				// Move up over the old table and clear to the end.
				m.ui.Printf("\x1b[%dA\x1b[J", drawn)
			}
			m.ui.Printf("%s%s", b.String(), table)
			drawn = strings.Count(table, "\n")
		} else {
			for _, e := range newEvents {
				m.ui.Printf("    %s %s\n", time.Unix(0, e.Time).Local().Format("15:04:05"), e.Message)
			}
			for _, line := range deploymentProgressLines(d) {
				if lastLine[line.group] != line.text {
					m.ui.Printf("    %s\n", line.text)
					lastLine[line.group] = line.text
				}
			}
		}

		switch d.Status {
		case "successful":
			m.ui.Printf("==> Deployment %q successful: %s\n", short(d.ID), d.StatusDescription)
			return nil
		case "failed":
			m.ui.Printf("==> Deployment %q failed: %s\n", short(d.ID), d.StatusDescription)
			return withCode(ExitError, fmt.Errorf("deployment %s failed: %s", short(d.ID), d.StatusDescription))
		case "cancelled":
			m.ui.Printf("==> Deployment %q cancelled: %s\n", short(d.ID), d.StatusDescription)
			return withCode(ExitError, fmt.Errorf("deployment %s cancelled: %s", short(d.ID), d.StatusDescription))
		case "running":
			if canariesReady(d) {
				m.ui.Printf("==> Deployment %q: the canaries are healthy and wait for promotion:\n    drover deployment promote %s\n", short(d.ID), d.ID)
				return nil
			}
		}
	}
}

// canariesReady reports whether the deployment waits only for a manual
// promotion: every group with canaries has them placed and healthy and
// none is promoted yet, and no group promotes automatically.
func canariesReady(d *api.Deployment) bool {
	waiting := false
	for _, s := range d.TaskGroups {
		if s.DesiredCanaries == 0 || s.Promoted {
			continue
		}
		if s.AutoPromote || len(s.PlacedCanaries) < s.DesiredCanaries || s.HealthyAllocs < s.DesiredCanaries {
			return false
		}
		waiting = true
	}
	return waiting
}

type progressLine struct{ group, text string }

// deploymentProgressLines is one plain line per group.
func deploymentProgressLines(d *api.Deployment) []progressLine {
	var out []progressLine
	for _, name := range sortedGroups(d) {
		s := d.TaskGroups[name]
		text := fmt.Sprintf("group %q: desired %d, placed %d, healthy %d, unhealthy %d", name, s.DesiredTotal, s.PlacedAllocs, s.HealthyAllocs, s.UnhealthyAllocs)
		if s.DesiredCanaries > 0 {
			text += fmt.Sprintf(", canaries %d/%d", len(s.PlacedCanaries), s.DesiredCanaries)
			if s.Promoted {
				text += " (promoted)"
			}
		}
		if s.RequireProgressBy > 0 && d.Status == "running" {
			text += ", progress deadline " + formatUnixNano(s.RequireProgressBy)
		}
		out = append(out, progressLine{group: name, text: text})
	}
	return out
}

// deploymentProgressTable renders the live table: group, desired,
// placed, healthy, unhealthy and the time left to the progress deadline.
func deploymentProgressTable(d *api.Deployment) string {
	rows := [][]string{{"Task Group", "Desired", "Placed", "Healthy", "Unhealthy", "Deadline"}}
	if hasCanaries(d) {
		rows[0] = append(rows[0], "Canaries")
	}
	for _, name := range sortedGroups(d) {
		s := d.TaskGroups[name]
		deadline := "-"
		if s.RequireProgressBy > 0 && d.Status == "running" {
			if left := time.Until(time.Unix(0, s.RequireProgressBy)); left > 0 {
				deadline = formatDuration(left)
			} else {
				deadline = "passed"
			}
		}
		row := []string{name, fmt.Sprint(s.DesiredTotal), fmt.Sprint(s.PlacedAllocs), fmt.Sprint(s.HealthyAllocs), fmt.Sprint(s.UnhealthyAllocs), deadline}
		if hasCanaries(d) {
			c := fmt.Sprintf("%d/%d", len(s.PlacedCanaries), s.DesiredCanaries)
			if s.Promoted {
				c += " promoted"
			}
			row = append(row, c)
		}
		rows = append(rows, row)
	}
	var b bytes.Buffer
	printTable(&ui{out: &b}, rows)
	return b.String()
}

func hasCanaries(d *api.Deployment) bool {
	for _, s := range d.TaskGroups {
		if s.DesiredCanaries > 0 {
			return true
		}
	}
	return false
}

func sortedGroups(d *api.Deployment) []string {
	names := make([]string, 0, len(d.TaskGroups))
	for n := range d.TaskGroups {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
