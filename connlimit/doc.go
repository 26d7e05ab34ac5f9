// Package connlimit bounds the connections a listener keeps open: per
// remote IP address, so that one client cannot take every descriptor of
// the process, and in total, so that a crowd of clients cannot either.
// The total is meant to be a share of the process's open-file limit
// (FDLimit), leaving descriptors for everything else the process keeps
// open: Raft's store and connections, containerd, log files.
//
// A connection over a limit is closed at once, before anything is read
// from it (a TLS handshake or protocol byte is the caller's business),
// or, when the listener is configured for it, handed to a separate
// overflow listener whose own number of open connections is bounded, so
// that the caller can still answer it briefly (an HTTP 429, a health
// check) under short deadlines. The overflow listener hands out the
// newest connection first, and when full sheds the oldest connection
// whose client has not sent anything, so a client that asks at once (a
// health checker) is answered promptly however far behind a flood has
// put the caller, and silent connections cannot hold the overflow.
//
// connlimit imports nothing internal.
package connlimit
