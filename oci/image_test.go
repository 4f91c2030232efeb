package oci

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestWithImageConfig(t *testing.T) {
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\nnginx:x:101:101::/var/cache/nginx:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc/group"), []byte("root:x:0:\nnginx:x:101:\n"), 0o644)
	tests := []struct {
		name string
		cfg  ocispec.ImageConfig
		more []SpecOpt
		args []string
		env  []string
		cwd  string
		uid  uint32
		err  string
	}{
		{name: "entrypoint and cmd", cfg: ocispec.ImageConfig{
			Entrypoint: []string{"/docker-entrypoint.sh"}, Cmd: []string{"nginx", "-g", "daemon off;"},
			Env: []string{"PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.25"}, WorkingDir: "/srv", User: "nginx",
		}, args: []string{"/docker-entrypoint.sh", "nginx", "-g", "daemon off;"},
			env: []string{"PATH=/usr/sbin:/usr/bin", "NGINX_VERSION=1.25"}, cwd: "/srv", uid: 101},
		{name: "default path and cwd", cfg: ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"A=1"}},
			args: []string{"sh"}, env: []string{DefaultPath, "A=1"}, cwd: "/"},
		{name: "later options win", cfg: ocispec.ImageConfig{Cmd: []string{"sh"}, User: "nginx"},
			more: []SpecOpt{WithProcessArgs("true"), WithUser("0"), WithEnv([]string{"A=2"})},
			args: []string{"true"}, env: []string{DefaultPath, "A=2"}, cwd: "/"},
		{name: "no command", cfg: ocispec.ImageConfig{Env: []string{"A=1"}}, err: "neither Entrypoint nor Cmd"},
		{name: "relative workdir", cfg: ocispec.ImageConfig{Cmd: []string{"sh"}, WorkingDir: "srv"}, err: `cwd "srv"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]SpecOpt{WithRootFSPath(rootfs), WithImageConfig(tt.cfg)}, tt.more...)
			s, err := NewSpec("ns", "id", opts...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := s.Process
			if !reflect.DeepEqual(p.Args, tt.args) || !reflect.DeepEqual(p.Env, tt.env) || p.Cwd != tt.cwd || p.User.UID != tt.uid {
				t.Errorf("process: args %q env %q cwd %q uid %d", p.Args, p.Env, p.Cwd, p.User.UID)
			}
		})
	}
}

func TestWithDevices(t *testing.T) {
	s, err := NewSpec("ns", "id", WithDevices("rw", "/dev/null"))
	if err != nil {
		t.Fatal(err)
	}
	d := s.Linux.Devices[0]
	if d.Path != "/dev/null" || d.Type != "c" || d.Major != 1 || d.Minor != 3 {
		t.Errorf("device %+v", d)
	}
	r := s.Linux.Resources.Devices
	last := r[len(r)-1]
	if !last.Allow || last.Type != "c" || *last.Major != 1 || *last.Minor != 3 || last.Access != "rw" || r[0].Allow {
		t.Errorf("cgroup rules %+v", r)
	}
	for _, bad := range []struct{ access, path, want string }{
		{"", "/etc/passwd", "not a device node"},
		{"", "dev/null", "not an absolute path"},
		{"", "/dev/no-such-device", "no such file"},
		{"rwx", "/dev/null", `device access "rwx"`},
	} {
		if _, err := NewSpec("ns", "id", WithDevices(bad.access, bad.path)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("WithDevices(%q, %q): %v, want %q", bad.access, bad.path, err, bad.want)
		}
	}
}
