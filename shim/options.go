package shim

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// DefaultRuntime is the OCI runtime binary the native backend drives when
// the options name none. It is looked up next to the shim binary, then on
// PATH.
const DefaultRuntime = "hull-runtime"

// DefaultRoot is the runtime state root (its --root) when none is given;
// the namespace is appended, as containerd's runc shim does.
const DefaultRoot = "/run/hull/runtime"

// Options are the runtime settings of one container, from the options
// containerd sends with CreateTaskRequest.
type Options struct {
	// Mode selects the backend: "native" (default), or one registered
	// with RegisterBackend (the vm mode).
	Mode string `toml:"mode"`
	// BinaryName is the runc-compatible runtime CLI (a path or a name on
	// PATH); empty means DefaultRuntime.
	BinaryName string `toml:"binary_name"`
	// Root is the runtime's --root; empty means DefaultRoot.
	Root          string `toml:"root"`
	SystemdCgroup bool   `toml:"systemd_cgroup"`
	NoPivotRoot   bool   `toml:"no_pivot_root"`
	NoNewKeyring  bool   `toml:"no_new_keyring"`
	IoUID         uint32 `toml:"io_uid"`
	IoGID         uint32 `toml:"io_gid"`
	// Backend holds the [backend] table of a runtime config file as
	// decoded, for a registered backend to read its own keys from (the vm
	// mode's kernel, initrd, hypervisor ...).
	Backend map[string]any `toml:"backend"`
}

// The type URLs of the options messages the shim accepts.
const (
	runcOptionsURL    = "containerd.runc.v1.Options"
	runtimeOptionsURL = "runtimeoptions.v1.Options"
)

// ParseOptions reads the options Any containerd sends:
//   - containerd.runc.v1.Options (the runc shim's; BinaryName, Root,
//     SystemdCgroup ...), so configs written for io.containerd.runc.v2 work;
//   - runtimeoptions.v1.Options (ctr --runtime-config-path, CRI's
//     ConfigPath/ConfigBody): a TOML file with the keys of Options.
//
// nil gives the defaults.
func ParseOptions(a *anypb.Any) (*Options, error) {
	o := &Options{}
	if a == nil || a.GetTypeUrl() == "" {
		return o, nil
	}
	url := a.GetTypeUrl()
	switch url[strings.LastIndex(url, "/")+1:] {
	case runcOptionsURL:
		var ro runcoptions.Options
		if err := proto.Unmarshal(a.GetValue(), &ro); err != nil {
			return nil, fmt.Errorf("runtime options %s: %v: %w", url, err, errdefs.ErrInvalidArgument)
		}
		o.BinaryName, o.Root, o.SystemdCgroup = ro.BinaryName, ro.Root, ro.SystemdCgroup
		o.NoPivotRoot, o.NoNewKeyring, o.IoUID, o.IoGID = ro.NoPivotRoot, ro.NoNewKeyring, ro.IoUid, ro.IoGid
	case runtimeOptionsURL:
		var ro runtimeoptions.Options
		if err := proto.Unmarshal(a.GetValue(), &ro); err != nil {
			return nil, fmt.Errorf("runtime options %s: %v: %w", url, err, errdefs.ErrInvalidArgument)
		}
		body, name := ro.ConfigBody, "config_body"
		if len(body) == 0 && ro.ConfigPath != "" {
			data, err := os.ReadFile(ro.ConfigPath)
			if err != nil {
				return nil, fmt.Errorf("runtime config %s: %v: %w", ro.ConfigPath, err, errdefs.ErrInvalidArgument)
			}
			body, name = data, ro.ConfigPath
		}
		if err := toml.NewDecoder(strings.NewReader(string(body))).DisallowUnknownFields().Decode(o); err != nil {
			var strict *toml.StrictMissingError
			if errors.As(err, &strict) {
				var keys []string
				for _, e := range strict.Errors {
					keys = append(keys, strings.Join(e.Key(), "."))
				}
				return nil, fmt.Errorf("runtime config %s: unknown keys %s: %w", name, strings.Join(keys, ", "), errdefs.ErrInvalidArgument)
			}
			return nil, fmt.Errorf("runtime config %s: %v: %w", name, err, errdefs.ErrInvalidArgument)
		}
	default:
		return nil, fmt.Errorf("runtime options of type %q (want %s or %s): %w", url, runcOptionsURL, runtimeOptionsURL, errdefs.ErrInvalidArgument)
	}
	if _, ok := backends[o.Mode]; !ok && o.Mode != "" {
		return nil, fmt.Errorf("runtime mode %q (this shim has %s): %w", o.Mode, strings.Join(modes(), ", "), errdefs.ErrNotImplemented)
	}
	return o, nil
}

// RuntimeBinary resolves the OCI runtime CLI to run: BinaryName as a path
// or a name on PATH, or DefaultRuntime next to the shim, then on PATH.
func (o *Options) RuntimeBinary() (string, error) {
	name := o.BinaryName
	if name == "" {
		if self, err := os.Executable(); err == nil {
			p := filepath.Join(filepath.Dir(self), DefaultRuntime)
			if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
		name = DefaultRuntime
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("OCI runtime %q: %v: %w", name, err, errdefs.ErrNotFound)
	}
	return p, nil
}

// RuntimeRoot is the runtime's --root for namespace ns.
func (o *Options) RuntimeRoot(ns string) string {
	root := o.Root
	if root == "" {
		root = DefaultRoot
	}
	return filepath.Join(root, ns)
}

// modes lists the registered backend modes.
func modes() []string {
	var m []string
	for k := range backends {
		m = append(m, k)
	}
	sort.Strings(m)
	return m
}
