package template

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	in := `
# a comment
GREETING=hello
export PORT = 8080
EMPTY=
SPACED =  two words   # trailing comment
HASH=a#b
DQ="line1\nline2 \"quoted\" \\ \$HOME"   # comment
SQ='literal \n $x "q"'
URL=https://example.com/?a=b&c=d
WINDOWS=crlf` + "\r" + `
`
	got, err := ParseEnv(in)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"GREETING": "hello",
		"PORT":     "8080",
		"EMPTY":    "",
		"SPACED":   "two words",
		"HASH":     "a#b",
		"DQ":       "line1\nline2 \"quoted\" \\ $HOME",
		"SQ":       `literal \n $x "q"`,
		"URL":      "https://example.com/?a=b&c=d",
		"WINDOWS":  "crlf",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseEnv:\n got %q\nwant %q", got, want)
	}
}

func TestParseEnv_Refuses(t *testing.T) {
	cases := map[string]string{
		"no equals":         "JUSTAKEY",
		"bad key":           "1ABC=x",
		"key with dash":     "A-B=x",
		"empty key":         "=x",
		"client variable":   "DROVER_ALLOC_ID=forged",
		"unclosed double":   `A="open`,
		"unclosed single":   `A='open`,
		"junk after quote":  `A="x" y`,
		"unknown escape":    `A="\q"`,
		"second line wrong": "A=1\nB",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if env, err := ParseEnv(in); err == nil {
				t.Fatalf("accepted %q as %q", in, env)
			} else if !strings.HasPrefix(err.Error(), "line ") {
				t.Fatalf("error %q does not name the line", err)
			}
		})
	}
	if _, err := ParseEnv(strings.Repeat("A=1\n", 2) + func() string {
		var b strings.Builder
		for i := 0; i <= MaxEnvEntries; i++ {
			b.WriteString("K")
			b.WriteString(strings.Repeat("x", i%7))
			b.WriteString("_")
			b.WriteString(strings.Repeat("y", i/7))
			b.WriteString("=v\n")
		}
		return b.String()
	}()); err == nil {
		t.Fatal("more than MaxEnvEntries variables accepted")
	}
}
