package cli

import (
	"slices"
	"testing"
)

func TestVerbOf(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-b", "x", "id"}, "run"},
		{[]string{"--root", "/r", "run", "id"}, "run"},
		{[]string{"--root=/r", "--log", "run", "create", "id"}, "create"}, // "run" is --log's value
		{[]string{"--log-format", "json", "--debug", "--systemd-cgroup", "state", "id"}, "state"},
		{[]string{"--debug=true", "--rootless=false", "ls"}, "ls"},
		{[]string{"--root"}, ""},
		{[]string{"--version"}, ""},
		{[]string{"-h", "run"}, ""},
		{[]string{"--bundle", "x", "run"}, ""}, // not a global flag: cobra decides
		{nil, ""},
	} {
		if got := verbOf(tc.args); got != tc.want {
			t.Errorf("verbOf(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// TestRootVerbs: the verbs table names every command as cobra does, and a
// tree built for one verb finds it as the full tree does.
func TestRootVerbs(t *testing.T) {
	g := &globals{}
	full := newRoot(g, "")
	if n := len(full.Commands()); n != len(verbs) {
		t.Fatalf("full tree has %d commands, verbs %d", n, len(verbs))
	}
	for _, v := range verbs {
		c := v.build(g)
		names := append([]string{c.Name()}, c.Aliases...)
		if !slices.Equal(names, v.names) {
			t.Errorf("verbs names %q, command names %q", v.names, names)
		}
		for _, name := range v.names {
			root := newRoot(g, name)
			if len(root.Commands()) != 1 {
				t.Errorf("tree for %q has %d commands, want 1", name, len(root.Commands()))
			}
			found, _, err := root.Find([]string{name, "x"})
			if err != nil || found.Name() != c.Name() {
				t.Errorf("tree for %q finds %v (%v)", name, found, err)
			}
		}
	}
	if root := newRoot(g, "nosuchverb"); len(root.Commands()) != len(verbs) {
		t.Errorf("tree for an unknown verb has %d commands, want all %d", len(root.Commands()), len(verbs))
	}
}
