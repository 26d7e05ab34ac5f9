package jobspec

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/droverhq/drover/structs"
	"github.com/hashicorp/hcl/v2"
)

// The template block, in a task:
//
//	template {
//	  data          = <<EOT
//	  {{ with var "app/config" }}GREETING={{ .greeting }}{{ end }}
//	  EOT
//	  # or: source = "app.env.tpl" (read next to the job file, by the CLI)
//	  destination   = "secrets/app.env"  # under local/, secrets/ or alloc/
//	  env           = true               # KEY=VALUE lines for the task's environment
//	  change_mode   = "restart"          # "signal" or "noop"
//	  change_signal = "SIGHUP"           # with change_mode = "signal"
//	  splay         = "5s"               # default 5s
//	  perms         = "0644"             # default 0644
//	  wait_missing  = "30s"              # default 30s
//	}
//
// The text is a Go text/template (structs.TemplateFuncNames lists its
// functions); it is parsed, and everything else judged, by
// structs.(*Job).Validate.

var templateSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "data"}, {Name: "source"}, {Name: "destination"}, {Name: "env"},
		{Name: "change_mode"}, {Name: "change_signal"}, {Name: "splay"}, {Name: "perms"},
		{Name: "wait_missing"},
	},
}

// Option changes how a job file is parsed.
type Option func(*options)

type options struct {
	// sourceDir is where template sources are read from; only with
	// sources set.
	sourceDir string
	sources   bool
}

// SourceDir lets a template block name a source file, read when the job
// is parsed, relative to dir (the job file's directory) unless it is
// absolute. Without this option a source is refused: a server parsing a
// job file for an HTTP client must not read files of its own.
func SourceDir(dir string) Option {
	return func(o *options) {
		o.sourceDir, o.sources = dir, true
	}
}

func buildOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// templates converts a task's template blocks; prefix is the task's
// structs path plus ".".
func (c *converter) templates(blocks hcl.Blocks, prefix string) []*structs.Template {
	var out []*structs.Template
	for i, b := range blocks.OfType("template") {
		if i == 0 {
			c.record(prefix+"Templates", b.DefRange)
		}
		out = append(out, c.template(b, fmt.Sprintf("%sTemplates[%d]", prefix, i)))
	}
	return out
}

// template converts one `template { ... }` block found at path.
func (c *converter) template(b *hcl.Block, path string) *structs.Template {
	t := &structs.Template{Splay: structs.DefaultTemplateSplay}
	c.record(path, b.DefRange)
	attrs := c.content(b.Body, templateSchema).Attributes
	c.setString(attrs, "destination", path+".DestPath", &t.DestPath)
	c.setBool(attrs, "env", path+".Envvars", &t.Envvars)
	c.setString(attrs, "change_mode", path+".ChangeMode", &t.ChangeMode)
	c.setString(attrs, "change_signal", path+".ChangeSignal", &t.ChangeSignal)
	c.setDuration(attrs, "splay", path+".Splay", &t.Splay)
	c.setString(attrs, "perms", path+".Perms", &t.Perms)
	c.setDuration(attrs, "wait_missing", path+".WaitMissing", &t.WaitMissing)

	data := c.present(attrs, "data", path+".EmbeddedTmpl")
	source := attrs["source"]
	if source != nil && isNullLiteral(source.Expr) {
		source = nil
	}
	switch {
	case data != nil && source != nil:
		c.errorf(source.Expr.Range(), "Both data and source",
			fmt.Sprintf("A template takes its text from data or from a source file, not both; data is set at %s.", posString(data.Expr.Range())))
	case data != nil:
		c.setString(attrs, "data", path+".EmbeddedTmpl", &t.EmbeddedTmpl)
	case source != nil:
		c.setString(attrs, "source", path+".SourcePath", &t.SourcePath)
		// Problems with the text (it does not parse, it is too long)
		// are the source's.
		c.record(path+".EmbeddedTmpl", source.Expr.Range())
		if t.SourcePath != "" {
			if text, ok := c.readSource(source.Expr.Range(), t.SourcePath); ok {
				t.EmbeddedTmpl = text
			}
		}
	}
	return t
}

// readSource reads a template's source file, at most
// structs.MaxTemplateSize bytes of it, reporting problems at r.
func (c *converter) readSource(r hcl.Range, name string) (string, bool) {
	if !c.opts.sources {
		c.errorf(r, "Template source not read here",
			"A template's source file is read by the drover CLI next to the job file; a job file parsed elsewhere (the HTTP API) must carry the text in data.")
		return "", false
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(c.opts.sourceDir, path)
	}
	f, err := os.Open(path)
	if err != nil {
		detail := fmt.Sprintf("Cannot read the template source %q: %v.", name, unwrapPath(err))
		if errors.Is(err, os.ErrNotExist) {
			detail = fmt.Sprintf("The template source %q does not exist (looked for %s; a relative source is read from the job file's directory).", name, path)
		}
		c.errorf(r, "Template source not found", detail)
		return "", false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		c.errorf(r, "Template source not a file", fmt.Sprintf("The template source %q (%s) is not a regular file.", name, path))
		return "", false
	}
	b, err := io.ReadAll(io.LimitReader(f, structs.MaxTemplateSize+1))
	if err != nil {
		c.errorf(r, "Template source not read", fmt.Sprintf("Cannot read the template source %q: %v.", name, unwrapPath(err)))
		return "", false
	}
	if len(b) > structs.MaxTemplateSize {
		c.errorf(r, "Template source too large",
			fmt.Sprintf("The template source %q is larger than %d bytes (64 KiB), the limit of a template.", name, structs.MaxTemplateSize))
		return "", false
	}
	if len(b) == 0 {
		c.errorf(r, "Template source empty", fmt.Sprintf("The template source %q is empty.", name))
		return "", false
	}
	return string(b), true
}

// unwrapPath drops the path an *os.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
