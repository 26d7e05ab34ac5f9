package template

import (
	"fmt"
	"regexp"
	"strings"
)

// envKeyPattern is what an env template's keys must look like.
var envKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// MaxEnvEntries bounds the variables one env template may set.
const MaxEnvEntries = 1000

// ParseEnv parses an env template's rendering: one KEY=VALUE per line.
// Blank lines and lines starting with # are skipped, and a leading
// "export " is allowed. A value may be:
//
//   - unquoted: the rest of the line, trimmed; a # after a space starts
//     a comment;
//   - in double quotes: with the escapes \n, \t, \r, \", \\ and \$;
//   - in single quotes: taken literally.
//
// Nothing may follow a closing quote but spaces and a comment. Keys
// are letters, digits and '_', not starting with a digit, and may not
// start with DROVER_ (the client's own variables). A malformed line is
// an error naming its number.
func ParseEnv(data string) (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(data, "\n") {
		n := i + 1
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, rest, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok {
			return nil, fmt.Errorf("line %d: want KEY=VALUE, got %q", n, clip(line))
		}
		if !envKeyPattern.MatchString(key) {
			return nil, fmt.Errorf("line %d: %q is not a valid environment variable name (letters, digits and '_', not starting with a digit)", n, clip(key))
		}
		if strings.HasPrefix(key, "DROVER_") {
			return nil, fmt.Errorf("line %d: %s: DROVER_ variables are the client's and cannot be set by a template", n, key)
		}
		val, err := envValue(strings.TrimLeft(rest, " \t"))
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", n, key, err)
		}
		out[key] = val
		if len(out) > MaxEnvEntries {
			return nil, fmt.Errorf("more than %d variables", MaxEnvEntries)
		}
	}
	return out, nil
}

// envValue parses the value part of a line.
func envValue(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	switch s[0] {
	case '"':
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+1 < len(s):
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				case '"', '\\', '$':
					b.WriteByte(s[i])
				default:
					return "", fmt.Errorf("unknown escape \\%c in a double-quoted value", s[i])
				}
			case c == '"':
				return b.String(), trailing(s[i+1:])
			default:
				b.WriteByte(c)
			}
		}
		return "", fmt.Errorf("double-quoted value without its closing quote")
	case '\'':
		end := strings.IndexByte(s[1:], '\'')
		if end < 0 {
			return "", fmt.Errorf("single-quoted value without its closing quote")
		}
		return s[1 : 1+end], trailing(s[2+end:])
	}
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "\t#"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s), nil
}

// trailing checks what follows a closing quote.
func trailing(s string) error {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "#") {
		return nil
	}
	return fmt.Errorf("unexpected %q after the closing quote", clip(s))
}

// clip shortens s for a message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
