package oci

import (
	"os"
	"path/filepath"
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// WithImageConfig applies an image's config the way containerd and Docker
// do: the environment (with the default PATH when the image sets none),
// Entrypoint followed by Cmd as the process, WorkingDir (default "/") and
// User (names are looked up in the rootfs, so set an absolute root.path
// first). Options applied after it (WithProcessArgs, WithEnv, WithUser)
// override what the image says.
func WithImageConfig(cfg ocispec.ImageConfig) SpecOpt {
	return func(s *specs.Spec) error {
		p := ensureProcess(s)
		env := slices.Clone(cfg.Env)
		hasPath := false
		for _, e := range env {
			if len(e) >= 5 && e[:5] == "PATH=" {
				hasPath = true
			}
		}
		if !hasPath {
			env = append([]string{DefaultPath}, env...)
		}
		p.Env = nil
		if err := WithEnv(env)(s); err != nil {
			return err
		}
		args := append(slices.Clone(cfg.Entrypoint), cfg.Cmd...)
		if len(args) == 0 {
			return optErr("image config has neither Entrypoint nor Cmd: give the command explicitly")
		}
		p.Args = args
		p.Cwd = "/"
		if cfg.WorkingDir != "" {
			if err := WithCwd(cfg.WorkingDir)(s); err != nil {
				return err
			}
		}
		if cfg.User != "" {
			return WithUser(cfg.User)(s)
		}
		return nil
	}
}

// WithDevices makes the host device nodes at paths (such as /dev/fuse)
// available in the container at the same path, and allows them in the
// device cgroup with the given access ("rwm" when empty).
func WithDevices(access string, paths ...string) SpecOpt {
	return func(s *specs.Spec) error {
		if access == "" {
			access = "rwm"
		}
		if access != "" && len(slices.DeleteFunc([]byte(access), func(c byte) bool { return c == 'r' || c == 'w' || c == 'm' })) != 0 {
			return optErr("device access %q is not a combination of r, w and m", access)
		}
		for _, path := range paths {
			if !filepath.IsAbs(path) {
				return optErr("device %q is not an absolute path", path)
			}
			var st unix.Stat_t
			if err := unix.Stat(path, &st); err != nil {
				return optErr("device %s: %v", path, err)
			}
			var typ string
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFCHR:
				typ = "c"
			case unix.S_IFBLK:
				typ = "b"
			default:
				return optErr("%s is not a device node", path)
			}
			major, minor := int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
			mode := os.FileMode(st.Mode & 0o777)
			uid, gid := st.Uid, st.Gid
			l := ensureLinux(s)
			l.Devices = slices.DeleteFunc(l.Devices, func(d specs.LinuxDevice) bool { return d.Path == path })
			l.Devices = append(l.Devices, specs.LinuxDevice{
				Path: path, Type: typ, Major: major, Minor: minor, FileMode: &mode, UID: &uid, GID: &gid,
			})
			r := ensureResources(s)
			r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: typ, Major: &major, Minor: &minor, Access: access,
			})
		}
		return nil
	}
}
