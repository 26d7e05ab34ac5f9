// Package poll waits for a condition with a deadline: it calls a
// function at an interval until it reports success, the context ends or
// the timeout passes, and then says what the function last reported.
//
// It is the non-test home of the polling that the bench harness and
// testutil.WaitFor share, so the drover binary can poll without linking
// package testing. It imports only the standard library (never
// testing) and no Drover package.
package poll
