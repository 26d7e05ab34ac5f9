package main

import (
	"os"

	"github.com/droverhq/drover/command"
	ctrdriver "github.com/droverhq/drover/driver/containerd"
)

func main() {
	// containerd's shim starts this binary as the log writer of every
	// task (see driver/containerd); that invocation is not a CLI call.
	if ctrdriver.IsLoggerInvocation(os.Args[1:]) {
		os.Exit(ctrdriver.RunLogger(os.Args[1:]))
	}
	command.Main()
}
