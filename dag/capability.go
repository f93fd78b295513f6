package dag

import (
	"fmt"
	"slices"
	"strings"
)

// The kinds of capability a step can declare with its allow option, and a
// run grant: without them, a step computes and prints, and nothing more.
const (
	CapExec  = "exec"  // run programs
	CapFiles = "files" // read and write files in the task's directory
	CapNet   = "net"   // make HTTP requests, to any host or to the one named
	CapEnv   = "env"   // read environment variables, any or the one named
)

// CapabilityKinds are the kinds of capability, in the order dagger lists
// them.
func CapabilityKinds() []string { return []string{CapExec, CapFiles, CapNet, CapEnv} }

// A Capability is a power over the world outside the flow: "exec",
// "files", "net" or "net=HOST", "env" or "env=NAME". Arg narrows net to a
// host and env to a variable; "" means any.
type Capability struct {
	Kind string
	Arg  string
}

// ParseCapability reads a capability as a step's allow option and the
// --allow flag write it.
func ParseCapability(s string) (Capability, error) {
	kind, arg, hasArg := strings.Cut(s, "=")
	if kind == CapNet {
		arg = strings.ToLower(arg) // host names are
	}
	c := Capability{Kind: kind, Arg: arg}
	switch {
	case !slices.Contains(CapabilityKinds(), kind):
		return Capability{}, fmt.Errorf("unknown capability %q: the capabilities are exec, files, net, net=HOST, env and env=NAME", s)
	case hasArg && (kind == CapExec || kind == CapFiles):
		return Capability{}, fmt.Errorf("capability %s takes no argument, as %q has", kind, s)
	case hasArg && arg == "":
		return Capability{}, fmt.Errorf("capability %q names no %s: write %s alone for any", s, argName(kind), kind)
	case kind == CapNet && hasArg && strings.ContainsAny(arg, "/:@ "):
		return Capability{}, fmt.Errorf("capability %q: name a host, such as net=api.example.com, without scheme, port or path", s)
	case kind == CapEnv && hasArg && !isEnvName(arg):
		return Capability{}, fmt.Errorf("capability %q: %q is not an environment variable's name", s, arg)
	}
	return c, nil
}

// argName names what the argument of a capability of kind narrows it to.
func argName(kind string) string {
	if kind == CapNet {
		return "host"
	}
	return "variable"
}

func (c Capability) String() string {
	if c.Arg == "" {
		return c.Kind
	}
	return c.Kind + "=" + c.Arg
}

// Covers reports whether c, granted or declared, allows what need asks
// for: the same kind, and any argument or the same one.
func (c Capability) Covers(need Capability) bool {
	return c.Kind == need.Kind && (c.Arg == "" || c.Arg == need.Arg)
}

// Capabilities returns the capabilities the step declares with its allow
// option, in the order written.
func (s *Step) Capabilities() []Capability { return s.Allow }

// allowed returns the capabilities of an allow option, o, if it is one.
func allowed(o *Option) []Capability {
	if o == nil {
		return nil
	}
	list, _ := o.Value.([]any)
	caps := make([]Capability, 0, len(list))
	for _, v := range list {
		str, _ := v.(string)
		if c, err := ParseCapability(str); err == nil {
			caps = append(caps, c)
		}
	}
	return caps
}

// MarshalText writes c as ParseCapability reads it, so that JSON shows
// "net=api.example.com".
func (c Capability) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads c as ParseCapability does.
func (c *Capability) UnmarshalText(text []byte) error {
	v, err := ParseCapability(string(text))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Ungranted returns, for each step of g that declares a capability that
// none of granted covers, the first such capability, by step name.
func (g *Graph) Ungranted(granted []Capability) map[string]Capability {
	out := make(map[string]Capability)
	for _, s := range g.Steps {
		for _, need := range s.Capabilities() {
			if !slices.ContainsFunc(granted, func(c Capability) bool { return c.Covers(need) }) {
				out[s.Name] = need
				break
			}
		}
	}
	return out
}

// DeclaredKinds returns the kinds of capability some step of g declares.
func (g *Graph) DeclaredKinds() map[string]bool {
	kinds := make(map[string]bool)
	for _, s := range g.Steps {
		for _, c := range s.Capabilities() {
			kinds[c.Kind] = true
		}
	}
	return kinds
}
