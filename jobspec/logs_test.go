package jobspec

import (
	"reflect"
	"testing"

	"github.com/droverhq/drover/structs"
)

// logsJob is a one-task job whose task body ends with logsBlock.
func logsJob(logsBlock string) string {
	return `job "web" {
  group "web" {
    task "server" {
      driver = "containerd"
      config { image = "busybox" }
` + logsBlock + `
    }
  }
}
`
}

func TestParse_TaskLogsBlock(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block string
		want  *structs.LogConfig
	}{
		{"absent: the task gets the defaults later", "", nil},
		{"both set", "      logs {\n        max_files     = 3\n        max_file_size = 5\n      }", &structs.LogConfig{MaxFiles: 3, MaxFileSizeMB: 5}},
		{"one left out takes its default", "      logs { max_files = 2 }", &structs.LogConfig{MaxFiles: 2, MaxFileSizeMB: structs.DefaultLogMaxFileSizeMB}},
		{"empty block", "      logs {}", structs.DefaultLogConfig()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job, err := ParseAndValidate("case.hcl", []byte(logsJob(tc.block)))
			if err != nil {
				t.Fatal(err)
			}
			if got := job.TaskGroups[0].Tasks[0].LogConfig; !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("LogConfig = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseAndValidate_TaskLogsOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		name      string
		block     string
		path      string
		line, col int
		summary   string
		phrase    string
	}{
		{"no files", "      logs { max_files = 0 }", "TaskGroups[0].Tasks[0].LogConfig.MaxFiles", 6, 26,
			`group "web" task "server": logs.max_files`, "max_files must be between 1 and 100"},
		{"too many files", "      logs { max_files = 101 }", "TaskGroups[0].Tasks[0].LogConfig.MaxFiles", 6, 26,
			`group "web" task "server": logs.max_files`, "101 files is not allowed"},
		{"file too big", "      logs {\n        max_file_size = 20000\n      }", "TaskGroups[0].Tasks[0].LogConfig.MaxFileSizeMB", 7, 25,
			`group "web" task "server": logs.max_file_size`, "max_file_size must be between 1 and 10240 MB"},
		{"negative size", "      logs { max_file_size = -1 }", "TaskGroups[0].Tasks[0].LogConfig.MaxFileSizeMB", 6, 30,
			`group "web" task "server": logs.max_file_size`, "-1 MB is not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkValidationDiag(t, logsJob(tc.block), tc.path, tc.line, tc.col, tc.summary, tc.phrase)
		})
	}
}

func TestParse_TaskLogsBlockUnknownAttribute(t *testing.T) {
	_, err := Parse("case.hcl", []byte(logsJob("      logs { max_size = 3 }")))
	if err == nil {
		t.Fatal("an unknown attribute in logs was accepted")
	}
}
