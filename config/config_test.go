package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	c := Default()
	if c.Address != "/run/hull/hulld.sock" || c.DefaultRuntime != "native" {
		t.Fatalf("defaults: %+v", c)
	}
	for _, n := range []string{"native", "runc", "crun"} {
		if _, ok := c.Runtimes[n]; !ok {
			t.Errorf("runtime %q missing from defaults", n)
		}
	}
	if n := c.Network; n.ConfDir != "/etc/hull/net.d" || n.DefaultNetwork != "hull0" || n.Bridge != "hull0" || n.Subnet != "10.88.0.0/16" ||
		strings.Join(n.PluginDirs, ",") != "/usr/lib/cni,/opt/cni/bin" || c.NetworkStateDir() != "/run/hull/net" {
		t.Errorf("network defaults: %+v", n)
	}
	if c.Runtimes["runc"].Type != "io.containerd.runc.v2" {
		t.Errorf("runc type %q", c.Runtimes["runc"].Type)
	}
	// The printed config reads back to the same thing.
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := parse(nil, out, "printed")
	if err != nil {
		t.Fatalf("printed config does not parse: %v\n%s", err, out)
	}
	if c2.Root != c.Root || len(c2.Runtimes) != len(c.Runtimes) || c2.Runtimes["crun"].Options["binary_name"] != "crun" {
		t.Fatalf("round trip: %+v\n%s", c2, out)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.toml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, body string
		wantErr    string
		check      func(*Config) string
	}{
		{name: "override root and add a runtime", body: "root = \"/tmp/x\"\n[runtimes.mine]\ntype = \"io.containerd.hull.v2\"\noptions = { binary_name = \"runc\" }\n",
			check: func(c *Config) string {
				if c.Root != "/tmp/x" || c.State != "/run/hull" {
					return "root/state"
				}
				if _, ok := c.Runtimes["native"]; !ok {
					return "defaults' runtimes lost"
				}
				if c.Runtimes["mine"].Options["binary_name"] != "runc" {
					return "new runtime"
				}
				return ""
			}},
		{name: "registry", body: "[registry]\ninsecure = [\"reg:5000\"]\n[registry.mirrors]\n\"docker.io\" = [\"http://127.0.0.1:5000\"]\n",
			check: func(c *Config) string {
				if len(c.Registry.Insecure) != 1 || c.Registry.Mirrors["docker.io"][0] != "http://127.0.0.1:5000" {
					return "registry"
				}
				return ""
			}},
		{name: "network", body: "[network]\nbridge = \"hbtest0\"\nsubnet = \"10.210.3.0/24\"\nplugin_dirs = [\"/x/cni\"]\n",
			check: func(c *Config) string {
				n := c.Network
				if n.Bridge != "hbtest0" || n.Subnet != "10.210.3.0/24" || n.ConfDir != "/etc/hull/net.d" || n.DefaultNetwork != "hull0" {
					return "network keys"
				}
				if len(n.PluginDirs) != 1 || n.PluginDirs[0] != "/x/cni" {
					return "plugin_dirs must replace the default list"
				}
				return ""
			}},
		{name: "network default none", body: "[network]\ndefault_network = \"none\"\n", wantErr: "network.default_network = \"none\""},
		{name: "network bad subnet", body: "[network]\nsubnet = \"10.88.0.0\"\n", wantErr: "network.subnet"},
		{name: "network ipv6 subnet", body: "[network]\nsubnet = \"fd00::/64\"\n", wantErr: "network.subnet"},
		{name: "network long bridge", body: "[network]\nbridge = \"abcdefghijklmnop\"\n", wantErr: "network.bridge"},
		{name: "network relative conf_dir", body: "[network]\nconf_dir = \"net.d\"\n", wantErr: "network.conf_dir"},
		{name: "network unknown key", body: "[network]\nsubnets = \"10.1.0.0/16\"\n", wantErr: "network.subnets"},
		{name: "unknown key", body: "rooot = \"/x\"\n", wantErr: "unknown keys rooot"},
		{name: "unknown runtime key", body: "[runtimes.x]\ntype = \"io.containerd.hull.v2\"\nbinary = \"y\"\n", wantErr: "runtimes.x.binary"},
		{name: "bad type", body: "[runtimes.x]\ntype = \"hull\"\n", wantErr: "runtimes.x.type"},
		{name: "unknown default", body: "default_runtime = \"nope\"\n", wantErr: "default_runtime = \"nope\""},
		{name: "relative root", body: "root = \"var/lib\"\n", wantErr: "root = \"var/lib\": must be an absolute path"},
		{name: "syntax", body: "root = \n", wantErr: "c.toml:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(tt.body), false)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want one containing %q wrapping ErrInvalid", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(c); msg != "" {
				t.Fatalf("%s: %+v", msg, c)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "missing.toml"), true); err != nil {
		t.Fatalf("optional missing file: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml"), false); err == nil {
		t.Fatal("missing file given explicitly: no error")
	}
}

func TestShimBinary(t *testing.T) {
	for typ, want := range map[string]string{"io.containerd.runc.v2": "containerd-shim-runc-v2", "io.containerd.hull.v2": "containerd-shim-hull-v2"} {
		if got, err := ShimBinary(typ); err != nil || got != want {
			t.Errorf("ShimBinary(%q) = %q, %v", typ, got, err)
		}
	}
	if _, err := ShimBinary("runc"); err == nil {
		t.Error("ShimBinary(runc): no error")
	}
}
