// Package config is hulld's configuration: one TOML file (read with
// go-toml/v2) laid over the defaults embedded in defaults.toml, so the
// daemon runs with no file at all. Runtimes are containerd-style
// [runtimes.<name>] tables with a shim type and options.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/pelletier/go-toml/v2"

	"github.com/hullproject/hull/image"
)

//go:embed defaults.toml
var defaults []byte

// DefaultPath is the file hulld reads when --config is not given (it may
// be missing).
const DefaultPath = "/etc/hull/hulld.toml"

// ErrInvalid is a configuration error; it names the key.
var ErrInvalid = fmt.Errorf("invalid configuration: %w", errdefs.ErrInvalidArgument)

// Config is hulld's configuration.
type Config struct {
	Root           string               `toml:"root"`
	State          string               `toml:"state"`
	Address        string               `toml:"address"`
	DefaultRuntime string               `toml:"default_runtime"`
	Snapshotter    string               `toml:"snapshotter"`
	LogLevel       string               `toml:"log_level"`
	Registry       image.RegistryConfig `toml:"registry"`
	Network        Network              `toml:"network"`
	Runtimes       map[string]Runtime   `toml:"runtimes"`
}

// Network is the [network] table: where CNI network configurations and
// plugins are, and the default network hulld writes when it has none.
// Attachment state (network namespaces, IPAM, libcni's cache) lives under
// <state>/net.
type Network struct {
	// ConfDir holds one <name>.conflist per network.
	ConfDir string `toml:"conf_dir"`
	// PluginDirs are searched for CNI plugin binaries, in order.
	PluginDirs []string `toml:"plugin_dirs"`
	// DefaultNetwork is the network containers join when they name none.
	DefaultNetwork string `toml:"default_network"`
	// Subnet and Bridge are those of the default network, used when its
	// conflist is first written.
	Subnet string `toml:"subnet"`
	Bridge string `toml:"bridge"`
}

// NetworkStateDir is where hulld keeps network attachment state.
func (c *Config) NetworkStateDir() string { return filepath.Join(c.State, "net") }

// Runtime is one [runtimes.<name>] table.
type Runtime struct {
	// Type is the runtime-v2 shim type, io.containerd.<name>.v<N>.
	Type string `toml:"type"`
	// Options are sent to the shim on create: for io.containerd.runc.v2 the
	// fields of containerd.runc.v1.Options (BinaryName, Root,
	// SystemdCgroup, ...); for others a TOML body (runtimeoptions.v1).
	Options map[string]any `toml:"options,omitempty"`
}

// Default returns the embedded defaults.
func Default() *Config {
	c, err := parse(nil, defaults, "defaults")
	if err != nil {
		panic(err) // the embedded file is tested
	}
	return c
}

// Load reads path over the defaults. A missing file is an error unless
// optional is set.
func Load(path string, optional bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if optional && errors.Is(err, os.ErrNotExist) {
			return Default(), nil
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return parse(Default(), data, path)
}

func parse(base *Config, data []byte, name string) (*Config, error) {
	c := base
	if c == nil {
		c = &Config{}
	}
	// Runtimes merge table by table: a file that sets [runtimes.x] replaces
	// x only.
	old := c.Runtimes
	c.Runtimes = nil
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			var keys []string
			for _, e := range strict.Errors {
				keys = append(keys, strings.Join(e.Key(), "."))
			}
			return nil, fmt.Errorf("config %s: unknown keys %s: %w", name, strings.Join(keys, ", "), ErrInvalid)
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("config %s:%d:%d: %s: %w", name, row, col, de.Error(), ErrInvalid)
		}
		return nil, fmt.Errorf("config %s: %v: %w", name, err, ErrInvalid)
	}
	merged := map[string]Runtime{}
	for k, v := range old {
		merged[k] = v
	}
	for k, v := range c.Runtimes {
		merged[k] = v
	}
	c.Runtimes = merged
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return c, nil
}

var (
	typeRE = regexp.MustCompile(`^io\.containerd\.([a-z0-9_]+)\.(v[0-9]+)$`)
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
)

// Validate checks the configuration and names the first bad key.
func (c *Config) Validate() error {
	for _, kv := range []struct{ key, val string }{{"root", c.Root}, {"state", c.State}, {"address", c.Address}} {
		if kv.val == "" || !filepath.IsAbs(kv.val) {
			return fmt.Errorf("%s = %q: must be an absolute path: %w", kv.key, kv.val, ErrInvalid)
		}
	}
	if len(c.Runtimes) == 0 {
		return fmt.Errorf("runtimes: none configured: %w", ErrInvalid)
	}
	for _, name := range c.RuntimeNames() {
		if !nameRE.MatchString(name) {
			return fmt.Errorf("runtimes.%s: bad name: %w", name, ErrInvalid)
		}
		if _, err := ShimBinary(c.Runtimes[name].Type); err != nil {
			return fmt.Errorf("runtimes.%s.type: %w", name, err)
		}
	}
	if _, ok := c.Runtimes[c.DefaultRuntime]; !ok {
		return fmt.Errorf("default_runtime = %q: no such runtime (have %s): %w", c.DefaultRuntime, strings.Join(c.RuntimeNames(), ", "), ErrInvalid)
	}
	if err := c.Network.validate(); err != nil {
		return err
	}
	switch c.Snapshotter {
	case "", "overlayfs", "native":
	default:
		return fmt.Errorf("snapshotter = %q: want overlayfs, native or empty: %w", c.Snapshotter, ErrInvalid)
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level = %q: want debug, info, warn or error: %w", c.LogLevel, ErrInvalid)
	}
	return nil
}

func (n *Network) validate() error {
	if n.ConfDir == "" || !filepath.IsAbs(n.ConfDir) {
		return fmt.Errorf("network.conf_dir = %q: must be an absolute path: %w", n.ConfDir, ErrInvalid)
	}
	if len(n.PluginDirs) == 0 {
		return fmt.Errorf("network.plugin_dirs: empty (CNI plugins are looked up there): %w", ErrInvalid)
	}
	for _, d := range n.PluginDirs {
		if !filepath.IsAbs(d) {
			return fmt.Errorf("network.plugin_dirs: %q: must be an absolute path: %w", d, ErrInvalid)
		}
	}
	switch n.DefaultNetwork {
	case "", "none", "host":
		return fmt.Errorf("network.default_network = %q: must name a network (containers choose none or host with --net): %w", n.DefaultNetwork, ErrInvalid)
	}
	if !nameRE.MatchString(n.DefaultNetwork) {
		return fmt.Errorf("network.default_network = %q: bad name: %w", n.DefaultNetwork, ErrInvalid)
	}
	if pfx, err := netip.ParsePrefix(n.Subnet); err != nil || !pfx.Addr().Is4() || pfx.Bits() > 30 {
		return fmt.Errorf("network.subnet = %q: want an IPv4 CIDR such as 10.88.0.0/16 (at most /30): %w", n.Subnet, ErrInvalid)
	}
	// Linux interface names: at most 15 bytes, no '/', ':' or spaces.
	if n.Bridge == "" || len(n.Bridge) > 15 || strings.ContainsAny(n.Bridge, "/: \t\n") {
		return fmt.Errorf("network.bridge = %q: want an interface name of 1-15 characters: %w", n.Bridge, ErrInvalid)
	}
	return nil
}

// RuntimeNames lists the runtimes, sorted.
func (c *Config) RuntimeNames() []string {
	names := make([]string, 0, len(c.Runtimes))
	for n := range c.Runtimes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ShimBinary is the binary name of a shim type, as containerd derives it:
// io.containerd.runc.v2 → containerd-shim-runc-v2.
func ShimBinary(typ string) (string, error) {
	m := typeRE.FindStringSubmatch(typ)
	if m == nil {
		return "", fmt.Errorf("shim type %q: want io.containerd.<name>.v<N>: %w", typ, ErrInvalid)
	}
	return "containerd-shim-" + m[1] + "-" + m[2], nil
}

// Marshal renders the configuration as TOML (hulld --print-config).
func (c *Config) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := toml.NewEncoder(&b)
	enc.SetTablesInline(false)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
