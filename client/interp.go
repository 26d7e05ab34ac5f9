package client

import (
	"regexp"
	"strings"

	"github.com/droverhq/drover/structs"
)

// interpolator replaces ${...} references in task command, args and env
// values with their runtime values: task environment variables
// (${DROVER_PORT_http}) and node properties (${node.unique.id},
// ${node.datacenter}, ${node.unique.name}, ${node.class},
// ${attr.<name>}, ${meta.<name>}). Unknown references are left as
// written. A bare $NAME is never touched: it is the task shell's.
type interpolator struct {
	env  map[string]string
	node *structs.Node
}

var refPattern = regexp.MustCompile(`\$\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}`)

func newInterpolator(env map[string]string, node *structs.Node) *interpolator {
	return &interpolator{env: env, node: node}
}

func (in *interpolator) replace(s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return refPattern.ReplaceAllStringFunc(s, func(m string) string {
		name := refPattern.FindStringSubmatch(m)[1]
		if v, ok := in.lookup(name); ok {
			return v
		}
		return m
	})
}

func (in *interpolator) lookup(name string) (string, bool) {
	if v, ok := in.env[name]; ok {
		return v, true
	}
	n := in.node
	if n == nil {
		return "", false
	}
	switch name {
	case "node.unique.id":
		return n.ID, true
	case "node.unique.name":
		return n.Name, true
	case "node.datacenter":
		return n.Datacenter, true
	case "node.class":
		return n.NodeClass, true
	}
	if k, ok := strings.CutPrefix(name, "attr."); ok {
		v, found := n.Attributes[k]
		return v, found
	}
	if k, ok := strings.CutPrefix(name, "meta."); ok {
		v, found := n.Meta[k]
		return v, found
	}
	return "", false
}
