package command

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// short shortens a UUID to its first 8 characters, as tables show them.
func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// printTable prints rows (the first is the header) aligned in columns.
func printTable(u *ui, rows [][]string) {
	tw := tabwriter.NewWriter(u.out, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// printKV prints "key = value" lines aligned on the "=".
func printKV(u *ui, kv [][2]string) {
	tw := tabwriter.NewWriter(u.out, 0, 4, 1, ' ', 0)
	for _, p := range kv {
		fmt.Fprintf(tw, "%s\t= %s\n", p[0], p[1])
	}
	tw.Flush()
}

// formatUnixNano formats Unix nanoseconds as a local date and time.
func formatUnixNano(ns int64) string {
	if ns == 0 {
		return "<none>"
	}
	return time.Unix(0, ns).Local().Format("2006-01-02T15:04:05Z07:00")
}

// formatAge formats Unix nanoseconds as an age like "3m12s ago".
func formatAge(ns int64) string {
	if ns == 0 {
		return "<none>"
	}
	return formatDuration(time.Since(time.Unix(0, ns))) + " ago"
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}

// formatTime formats a time, or "<none>".
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "<none>"
	}
	return t.Local().Format("2006-01-02T15:04:05Z07:00")
}
