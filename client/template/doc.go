// Package template renders a task's template blocks into its
// directories and keeps them current.
//
// A Manager owns the templates of one task. Each template is a Go
// text/template (parsed with structs.ParseTemplateText, so the client
// refuses what validation refuses) with four functions: var (a
// variable's items), service (a service's passing instances), env (the
// task's environment) and node (the node's identity, attributes and
// meta). What var and service read comes from a Source — the client's
// Variable.Read and Service.Instances RPCs as the node, blocking
// queries that return when the value changes — and is found while
// rendering: the first render of a template starts a watch for every
// variable and service it reads, and every change renders all the
// task's templates again.
//
// Before the task starts, Prestart renders every template, waiting for
// a variable that does not exist at most the template's WaitMissing
// (and reporting "Missing: variable PATH" meanwhile), then writes the
// files. Afterwards a changed rendering is written again and, after a
// random delay up to the template's splay, reported through
// Config.OnChange for the task runner to restart or signal the task
// (change_mode). A template that cannot be rendered after the start
// keeps its last file.
//
// Files are written atomically (a temporary file in the same directory,
// renamed over the destination) with the template's permissions,
// through an os.Root of the destination's directory: a task that
// replaces part of the path with a symlink cannot make the client (root
// on the node) write outside the task's directories. An env template's
// file is KEY=VALUE lines (ParseEnv) added to the task's environment at
// its next start.
//
// template imports only structs; the client wires it to its RPCs and
// task runners.
package template
