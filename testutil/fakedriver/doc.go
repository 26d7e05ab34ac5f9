// Package fakedriver is an in-memory driver.Driver for tests: tasks are
// records, not processes, and outlive the clients that started them (as
// containers outlive a client process). A task's command decides its
// fate: "exit:N" exits with N after 20ms; anything else runs until
// stopped or until the test ends it with Exit.
package fakedriver
