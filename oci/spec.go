package oci

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/caps"
	"github.com/hullproject/hull/runtime/seccomp"
)

// ErrInvalidOpt marks a spec option given bad input.
var ErrInvalidOpt = errors.New("invalid spec option")

// SpecOpt changes a spec; options are applied in order.
type SpecOpt func(*specs.Spec) error

// DefaultPath is the PATH a container gets when its image sets none.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultCaps is the capability set every container gets by default, the
// same as containerd's and Docker's: enough for a root process to manage
// files, ids and its own children, nothing that reaches the host.
func DefaultCaps() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// DefaultSpec is the spec the daemon starts every container from, in the
// shape of containerd's default: rootfs at "rootfs", root user, the
// default capabilities (bounding, effective, permitted), no_new_privs,
// RLIMIT_NOFILE 1024, new pid, ipc, uts, mount and network namespaces,
// the default mounts, masked and read-only paths, all devices denied in
// the device cgroup (the runtime adds the default ones), the cgroup
// /<ns>/<id>, and the default seccomp profile for those capabilities.
func DefaultSpec(ns, id string) *specs.Spec {
	c := DefaultCaps()
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Cwd:             "/",
			Env:             []string{DefaultPath},
			NoNewPrivileges: true,
			User:            specs.User{UID: 0, GID: 0},
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  slices.Clone(c),
				Permitted: slices.Clone(c),
				Effective: slices.Clone(c),
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Mounts: DefaultMounts(),
		Linux: &specs.Linux{
			MaskedPaths:   slices.Clone(DefaultMaskedPaths),
			ReadonlyPaths: slices.Clone(DefaultReadonlyPaths),
			CgroupsPath:   "/" + ns + "/" + id,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace},
			},
			Seccomp: seccomp.DefaultFor(c),
		},
	}
	return s
}

// NewSpec is DefaultSpec with opts applied.
func NewSpec(ns, id string, opts ...SpecOpt) (*specs.Spec, error) {
	s := DefaultSpec(ns, id)
	if err := ApplyOpts(s, opts...); err != nil {
		return nil, err
	}
	return s, nil
}

// ApplyOpts applies opts to s in order and stops at the first error.
func ApplyOpts(s *specs.Spec, opts ...SpecOpt) error {
	for _, o := range opts {
		if err := o(s); err != nil {
			return err
		}
	}
	return nil
}

func optErr(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrInvalidOpt)
}

func ensureProcess(s *specs.Spec) *specs.Process {
	if s.Process == nil {
		s.Process = &specs.Process{Cwd: "/"}
	}
	return s.Process
}

func ensureLinux(s *specs.Spec) *specs.Linux {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	return s.Linux
}

func ensureResources(s *specs.Spec) *specs.LinuxResources {
	l := ensureLinux(s)
	if l.Resources == nil {
		l.Resources = &specs.LinuxResources{}
	}
	return l.Resources
}

// WithProcessArgs sets the command and its arguments.
func WithProcessArgs(args ...string) SpecOpt {
	return func(s *specs.Spec) error {
		if len(args) == 0 || args[0] == "" {
			return optErr("process args: empty command")
		}
		ensureProcess(s).Args = slices.Clone(args)
		return nil
	}
}

// WithEnv merges env ("KEY=value") into the process environment: a key
// already present is replaced, a new one appended; "KEY" alone removes KEY.
func WithEnv(env []string) SpecOpt {
	return func(s *specs.Spec) error {
		p := ensureProcess(s)
		for _, e := range env {
			key, _, hasValue := strings.Cut(e, "=")
			if key == "" {
				return optErr("env %q: empty name", e)
			}
			p.Env = slices.DeleteFunc(p.Env, func(old string) bool {
				k, _, _ := strings.Cut(old, "=")
				return k == key
			})
			if hasValue {
				p.Env = append(p.Env, e)
			}
		}
		return nil
	}
}

// WithCwd sets the working directory (absolute, inside the container).
func WithCwd(cwd string) SpecOpt {
	return func(s *specs.Spec) error {
		if !filepath.IsAbs(cwd) {
			return optErr("cwd %q is not absolute", cwd)
		}
		ensureProcess(s).Cwd = cwd
		return nil
	}
}

// WithTTY gives the process a terminal or not.
func WithTTY(tty bool) SpecOpt {
	return func(s *specs.Spec) error {
		ensureProcess(s).Terminal = tty
		return nil
	}
}

// WithUIDGID sets the numeric user and group of the process.
func WithUIDGID(uid, gid uint32) SpecOpt {
	return func(s *specs.Spec) error {
		p := ensureProcess(s)
		p.User.UID, p.User.GID = uid, gid
		p.User.Username = ""
		return nil
	}
}

// WithUser sets the process user from "uid", "uid:gid", "name",
// "name:group" or "uid:group". Names are looked up in the rootfs's
// /etc/passwd and /etc/group, which needs s.Root.Path to be an absolute
// directory (resolved without leaving it). The user's supplementary groups
// from /etc/group become additionalGids when names are used.
func WithUser(u string) SpecOpt {
	return func(s *specs.Spec) error {
		if u == "" {
			return optErr("user is empty")
		}
		name, group, _ := strings.Cut(u, ":")
		uid, uerr := strconv.ParseUint(name, 10, 32)
		gid, gerr := strconv.ParseUint(group, 10, 32)
		if uerr == nil && (group == "" || gerr == nil) {
			p := ensureProcess(s)
			p.User.UID = uint32(uid)
			p.User.GID = uint32(gid) // 0 when no group is given, as containerd does
			return nil
		}
		if s.Root == nil || !filepath.IsAbs(s.Root.Path) {
			return optErr("user %q: names need an absolute root.path to read /etc/passwd from", u)
		}
		passwd, err := securejoin.SecureJoin(s.Root.Path, "/etc/passwd")
		if err != nil {
			return optErr("user %q: %v", u, err)
		}
		groupf, err := securejoin.SecureJoin(s.Root.Path, "/etc/group")
		if err != nil {
			return optErr("user %q: %v", u, err)
		}
		eu, err := user.GetExecUserPath(u, &user.ExecUser{}, passwd, groupf)
		if err != nil {
			return optErr("user %q: %v", u, err)
		}
		p := ensureProcess(s)
		p.User.UID, p.User.GID = uint32(eu.Uid), uint32(eu.Gid)
		p.User.AdditionalGids = nil
		for _, g := range eu.Sgids {
			if uint32(g) != p.User.GID {
				p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(g))
			}
		}
		return nil
	}
}

// WithAdditionalGIDs sets the supplementary groups of the process.
func WithAdditionalGIDs(gids ...uint32) SpecOpt {
	return func(s *specs.Spec) error {
		ensureProcess(s).User.AdditionalGids = slices.Clone(gids)
		return nil
	}
}

// normalizeCaps turns "sys_admin" or "SYS_ADMIN" into "CAP_SYS_ADMIN" and
// checks the name; "ALL" expands to all.
func normalizeCaps(list, all []string) ([]string, error) {
	var out []string
	for _, c := range list {
		if strings.EqualFold(c, "ALL") {
			out = append(out, all...)
			continue
		}
		n := strings.ToUpper(strings.TrimSpace(c))
		if !strings.HasPrefix(n, "CAP_") {
			n = "CAP_" + n
		}
		if _, err := caps.Parse(n); err != nil {
			return nil, optErr("capability %q: %v", c, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// changeCaps edits the capability sets and, when the seccomp profile is
// still the default one for the old bounding set, regenerates it for the
// new one, so that e.g. adding CAP_SYS_ADMIN also allows mount(2).
func changeCaps(s *specs.Spec, edit func(c *specs.LinuxCapabilities)) {
	p := ensureProcess(s)
	if p.Capabilities == nil {
		p.Capabilities = &specs.LinuxCapabilities{}
	}
	old := slices.Clone(p.Capabilities.Bounding)
	edit(p.Capabilities)
	if s.Linux != nil && s.Linux.Seccomp != nil && reflect.DeepEqual(s.Linux.Seccomp, seccomp.DefaultFor(old)) {
		s.Linux.Seccomp = seccomp.DefaultFor(p.Capabilities.Bounding)
	}
}

func addUnique(list []string, add ...string) []string {
	for _, a := range add {
		if !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	return list
}

// WithCapAdd adds capabilities ("CAP_NET_ADMIN", "net_admin", or "ALL":
// every capability the caller holds, caps.Current) to the bounding,
// effective and permitted sets (and to the inheritable and ambient sets
// when those are in use).
func WithCapAdd(add ...string) SpecOpt {
	return func(s *specs.Spec) error {
		list, err := normalizeCaps(add, caps.Current())
		if err != nil {
			return err
		}
		changeCaps(s, func(c *specs.LinuxCapabilities) {
			c.Bounding = addUnique(c.Bounding, list...)
			c.Effective = addUnique(c.Effective, list...)
			c.Permitted = addUnique(c.Permitted, list...)
			if len(c.Inheritable) > 0 {
				c.Inheritable = addUnique(c.Inheritable, list...)
			}
			if len(c.Ambient) > 0 {
				c.Ambient = addUnique(c.Ambient, list...)
			}
		})
		return nil
	}
}

// WithCapDrop removes capabilities ("ALL" removes every one) from all five
// sets.
func WithCapDrop(drop ...string) SpecOpt {
	return func(s *specs.Spec) error {
		list, err := normalizeCaps(drop, caps.All())
		if err != nil {
			return err
		}
		del := func(set []string) []string {
			return slices.DeleteFunc(set, func(c string) bool { return slices.Contains(list, c) })
		}
		changeCaps(s, func(c *specs.LinuxCapabilities) {
			c.Bounding, c.Effective, c.Permitted = del(c.Bounding), del(c.Effective), del(c.Permitted)
			c.Inheritable, c.Ambient = del(c.Inheritable), del(c.Ambient)
		})
		return nil
	}
}

// WithPrivileged gives the container what `--privileged` means for
// containerd and Docker: every capability the calling process holds
// (caps.Current, as containerd's WithAllCurrentCapabilities), no seccomp
// profile, no masked or read-only paths, no AppArmor/SELinux label,
// writable /sys and /sys/fs/cgroup, and every device allowed in the device
// cgroup. Host device nodes are not added to /dev.
func WithPrivileged(s *specs.Spec) error {
	all := caps.Current()
	changeCaps(s, func(c *specs.LinuxCapabilities) {
		c.Bounding, c.Effective, c.Permitted = slices.Clone(all), slices.Clone(all), slices.Clone(all)
	})
	p := ensureProcess(s)
	p.ApparmorProfile, p.SelinuxLabel = "", ""
	l := ensureLinux(s)
	l.Seccomp = nil
	l.MaskedPaths, l.ReadonlyPaths = nil, nil
	l.MountLabel = ""
	for i, m := range s.Mounts {
		if m.Type == "sysfs" || m.Type == "cgroup" || m.Type == "cgroup2" ||
			(m.Destination == "/sys" && slices.Contains(m.Options, "rbind")) {
			s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
		}
	}
	ensureResources(s).Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	return nil
}

// WithReadonlyRootfs makes the root filesystem read-only or writable.
func WithReadonlyRootfs(ro bool) SpecOpt {
	return func(s *specs.Spec) error {
		if s.Root == nil {
			s.Root = &specs.Root{Path: "rootfs"}
		}
		s.Root.Readonly = ro
		return nil
	}
}

// WithRootFSPath sets root.path (relative to the bundle, or absolute).
func WithRootFSPath(path string) SpecOpt {
	return func(s *specs.Spec) error {
		if path == "" {
			return optErr("root path is empty")
		}
		if s.Root == nil {
			s.Root = &specs.Root{}
		}
		s.Root.Path = path
		return nil
	}
}

// WithHostname sets the hostname (which needs a UTS namespace).
func WithHostname(name string) SpecOpt {
	return func(s *specs.Spec) error {
		if len(name) > 64 || strings.ContainsAny(name, "\x00/ ") {
			return optErr("hostname %q is not valid", name)
		}
		s.Hostname = name
		return nil
	}
}

// WithMemoryLimit limits the container's memory to bytes (> 0).
func WithMemoryLimit(bytes int64) SpecOpt {
	return func(s *specs.Spec) error {
		if bytes <= 0 {
			return optErr("memory limit %d is not positive", bytes)
		}
		r := ensureResources(s)
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		r.Memory.Limit = &bytes
		return nil
	}
}

// WithCPUs limits the container to cpus CPUs of time (1.5 = one and a
// half), as a CFS quota over a 100 ms period.
func WithCPUs(cpus float64) SpecOpt {
	return func(s *specs.Spec) error {
		if cpus <= 0 {
			return optErr("cpus %v is not positive", cpus)
		}
		period := uint64(100000)
		quota := int64(cpus * float64(period))
		if quota < 1000 {
			return optErr("cpus %v is below the 1 ms quota the kernel accepts", cpus)
		}
		r := ensureResources(s)
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		r.CPU.Period, r.CPU.Quota = &period, &quota
		return nil
	}
}

// WithCPUSet pins the container to the CPUs in list ("0-1,3").
func WithCPUSet(list string) SpecOpt {
	return func(s *specs.Spec) error {
		if list == "" || strings.Trim(list, "0123456789,-") != "" {
			return optErr("cpuset %q is not a CPU list", list)
		}
		r := ensureResources(s)
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		r.CPU.Cpus = list
		return nil
	}
}

// WithPidsLimit caps the number of tasks in the container (> 0).
func WithPidsLimit(n int64) SpecOpt {
	return func(s *specs.Spec) error {
		if n <= 0 {
			return optErr("pids limit %d is not positive", n)
		}
		ensureResources(s).Pids = &specs.LinuxPids{Limit: &n}
		return nil
	}
}

// WithMounts adds mounts; one with the destination of an existing mount
// replaces it.
func WithMounts(mounts []specs.Mount) SpecOpt {
	return func(s *specs.Spec) error {
		for _, m := range mounts {
			if !filepath.IsAbs(m.Destination) {
				return optErr("mount destination %q is not absolute", m.Destination)
			}
			dst := filepath.Clean(m.Destination)
			s.Mounts = slices.DeleteFunc(s.Mounts, func(old specs.Mount) bool {
				return filepath.Clean(old.Destination) == dst
			})
			m.Options = slices.Clone(m.Options)
			s.Mounts = append(s.Mounts, m)
		}
		return nil
	}
}

// WithNamespacePath joins the namespace of type t at path (a new one when
// path is empty), replacing any entry of that type.
func WithNamespacePath(t specs.LinuxNamespaceType, path string) SpecOpt {
	return func(s *specs.Spec) error {
		if path != "" && !filepath.IsAbs(path) {
			return optErr("namespace %s path %q is not absolute", t, path)
		}
		l := ensureLinux(s)
		l.Namespaces = slices.DeleteFunc(l.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t })
		l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
		return nil
	}
}

// WithHostNamespace shares the host's namespace of type t (removes it
// from the list).
func WithHostNamespace(t specs.LinuxNamespaceType) SpecOpt {
	return func(s *specs.Spec) error {
		l := ensureLinux(s)
		l.Namespaces = slices.DeleteFunc(l.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t })
		return nil
	}
}

// WithNoNewPrivileges sets process.noNewPrivileges.
func WithNoNewPrivileges(on bool) SpecOpt {
	return func(s *specs.Spec) error {
		ensureProcess(s).NoNewPrivileges = on
		return nil
	}
}

// WithSeccompProfile replaces the seccomp profile (nil: unconfined). It is
// checked with seccomp.Validate.
func WithSeccompProfile(p *specs.LinuxSeccomp) SpecOpt {
	return func(s *specs.Spec) error {
		if err := seccomp.Validate(p); err != nil {
			return err
		}
		ensureLinux(s).Seccomp = p
		return nil
	}
}

// WithDefaultSeccomp sets the default seccomp profile for the process's
// current bounding set (seccomp.DefaultFor), e.g. after a custom profile
// or WithPrivileged.
func WithDefaultSeccomp(s *specs.Spec) error {
	var bounding []string
	if s.Process != nil && s.Process.Capabilities != nil {
		bounding = s.Process.Capabilities.Bounding
	}
	ensureLinux(s).Seccomp = seccomp.DefaultFor(bounding)
	return nil
}

// WithSeccompUnconfined removes the seccomp profile.
func WithSeccompUnconfined(s *specs.Spec) error {
	ensureLinux(s).Seccomp = nil
	return nil
}

// WithApparmorProfile sets process.apparmorProfile.
func WithApparmorProfile(profile string) SpecOpt {
	return func(s *specs.Spec) error {
		ensureProcess(s).ApparmorProfile = profile
		return nil
	}
}

// WithSelinuxLabel sets process.selinuxLabel.
func WithSelinuxLabel(label string) SpecOpt {
	return func(s *specs.Spec) error {
		ensureProcess(s).SelinuxLabel = label
		return nil
	}
}

// WithRlimit sets one rlimit ("RLIMIT_NOFILE" or "nofile"), replacing
// any entry of that type.
func WithRlimit(kind string, hard, soft uint64) SpecOpt {
	return func(s *specs.Spec) error {
		k := strings.ToUpper(kind)
		if !strings.HasPrefix(k, "RLIMIT_") {
			k = "RLIMIT_" + k
		}
		if soft > hard {
			return optErr("rlimit %s: soft %d above hard %d", k, soft, hard)
		}
		p := ensureProcess(s)
		p.Rlimits = slices.DeleteFunc(p.Rlimits, func(r specs.POSIXRlimit) bool { return r.Type == k })
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: k, Hard: hard, Soft: soft})
		return nil
	}
}

// WithSysctl sets kernel parameters of the container's namespaces.
func WithSysctl(kv map[string]string) SpecOpt {
	return func(s *specs.Spec) error {
		l := ensureLinux(s)
		if l.Sysctl == nil {
			l.Sysctl = map[string]string{}
		}
		for k, v := range kv {
			if k == "" {
				return optErr("sysctl with an empty name")
			}
			l.Sysctl[k] = v
		}
		return nil
	}
}

// WithAnnotations merges annotations into the spec.
func WithAnnotations(a map[string]string) SpecOpt {
	return func(s *specs.Spec) error {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		for k, v := range a {
			s.Annotations[k] = v
		}
		return nil
	}
}

// WithCgroupsPath sets linux.cgroupsPath.
func WithCgroupsPath(p string) SpecOpt {
	return func(s *specs.Spec) error {
		ensureLinux(s).CgroupsPath = p
		return nil
	}
}

// WithUserNamespace runs the container in a new user namespace with the
// given mappings.
func WithUserNamespace(uidMap, gidMap []specs.LinuxIDMapping) SpecOpt {
	return func(s *specs.Spec) error {
		if len(uidMap) == 0 || len(gidMap) == 0 {
			return optErr("user namespace needs uid and gid mappings")
		}
		l := ensureLinux(s)
		l.UIDMappings, l.GIDMappings = slices.Clone(uidMap), slices.Clone(gidMap)
		return WithNamespacePath(specs.UserNamespace, "")(s)
	}
}
