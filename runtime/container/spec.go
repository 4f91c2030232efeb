package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/runtime/caps"
	"github.com/hullproject/hull/runtime/initproc"
	"github.com/hullproject/hull/runtime/label"
)

// startSpec is the part of config.json needed to start the init (see
// Create): decoded first, with codecs for a handful of types only.
type startSpec struct {
	Process *struct {
		Terminal bool `json:"terminal"`
	} `json:"process"`
	Linux *struct {
		Namespaces  []specs.LinuxNamespace           `json:"namespaces"`
		UIDMappings []specs.LinuxIDMapping           `json:"uidMappings"`
		GIDMappings []specs.LinuxIDMapping           `json:"gidMappings"`
		TimeOffsets map[string]specs.LinuxTimeOffset `json:"timeOffsets"`
		CgroupsPath string                           `json:"cgroupsPath"`
	} `json:"linux"`
}

// readStartSpec reads path (config.json) and decodes its startSpec.
func readStartSpec(path string) ([]byte, *startSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %s: no config.json in the bundle", ErrInvalidSpec, path)
		}
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	var s startSpec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrInvalidSpec, path, err)
	}
	return data, &s, nil
}

// linuxSpec is specs.Spec without the sections of other platforms
// (solaris, windows, vm, zos, freebsd), which a Linux runtime ignores: a
// cold encoding/json builds codecs for every field type of what it
// decodes into, used or not (a quarter of the decode of a whole spec).
type linuxSpec struct {
	Version     string            `json:"ociVersion"`
	Process     *specs.Process    `json:"process,omitempty"`
	Root        *specs.Root       `json:"root,omitempty"`
	Hostname    string            `json:"hostname,omitempty"`
	Domainname  string            `json:"domainname,omitempty"`
	Mounts      []specs.Mount     `json:"mounts,omitempty"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Linux       *specs.Linux      `json:"linux,omitempty"`
}

// decodeSpec decodes config.json's bytes read from path (its Linux
// sections; see linuxSpec).
func decodeSpec(path string, data []byte) (*specs.Spec, error) {
	var s linuxSpec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidSpec, path, err)
	}
	return &specs.Spec{
		Version: s.Version, Process: s.Process, Root: s.Root, Hostname: s.Hostname, Domainname: s.Domainname,
		Mounts: s.Mounts, Hooks: s.Hooks, Annotations: s.Annotations, Linux: s.Linux,
	}, nil
}

// LoadSpec reads bundle/config.json.
func LoadSpec(bundle string) (*specs.Spec, error) {
	s, _, err := loadSpec(bundle)
	return s, err
}

// loadSpec is LoadSpec that also returns the file's bytes, which the
// state and the init get as they are instead of re-encoded.
func loadSpec(bundle string) (*specs.Spec, []byte, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %s: no config.json in the bundle", ErrInvalidSpec, path)
		}
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrInvalidSpec, path, err)
	}
	return &s, data, nil
}

var nsTypes = map[specs.LinuxNamespaceType]struct {
	flag  int
	proc  string
	nstyp int
}{
	specs.PIDNamespace:     {unix.CLONE_NEWPID, "pid", unix.CLONE_NEWPID},
	specs.NetworkNamespace: {unix.CLONE_NEWNET, "net", unix.CLONE_NEWNET},
	specs.MountNamespace:   {unix.CLONE_NEWNS, "mnt", unix.CLONE_NEWNS},
	specs.IPCNamespace:     {unix.CLONE_NEWIPC, "ipc", unix.CLONE_NEWIPC},
	specs.UTSNamespace:     {unix.CLONE_NEWUTS, "uts", unix.CLONE_NEWUTS},
	specs.UserNamespace:    {unix.CLONE_NEWUSER, "user", unix.CLONE_NEWUSER},
	specs.CgroupNamespace:  {unix.CLONE_NEWCGROUP, "cgroup", unix.CLONE_NEWCGROUP},
	specs.TimeNamespace:    {unix.CLONE_NEWTIME, "time", unix.CLONE_NEWTIME},
}

// nsPlan is how the init gets its namespaces.
type nsPlan struct {
	clone   uintptr // new namespaces made by clone(2) (os/exec)
	unshare int     // new namespaces made by nsenter after the joins
	joins   []string
	joinPid bool
	has     map[specs.LinuxNamespaceType]bool // in the spec (new or joined)
	newNS   map[specs.LinuxNamespaceType]bool
}

func planNamespaces(namespaces []specs.LinuxNamespace) (*nsPlan, error) {
	p := &nsPlan{has: map[specs.LinuxNamespaceType]bool{}, newNS: map[specs.LinuxNamespaceType]bool{}}
	if len(namespaces) == 0 {
		return p, nil
	}
	var newFlags int
	var joinUser string
	var joins []string
	for i, ns := range namespaces {
		t, ok := nsTypes[ns.Type]
		if !ok {
			return nil, fmt.Errorf("%w: linux.namespaces[%d].type %q is unknown", ErrInvalidSpec, i, ns.Type)
		}
		if p.has[ns.Type] {
			return nil, fmt.Errorf("%w: linux.namespaces[%d]: %s namespace listed twice", ErrInvalidSpec, i, ns.Type)
		}
		p.has[ns.Type] = true
		if ns.Path == "" {
			p.newNS[ns.Type] = true
			newFlags |= t.flag
			continue
		}
		if err := checkNSPath(ns.Path, t.nstyp); err != nil {
			return nil, fmt.Errorf("%w: linux.namespaces[%d].path (%s) %s: %w", ErrInvalidSpec, i, ns.Type, ns.Path, err)
		}
		if ns.Type == specs.UserNamespace {
			joinUser = "user:" + ns.Path
		} else {
			joins = append(joins, t.proc+":"+ns.Path)
		}
		if ns.Type == specs.PIDNamespace || ns.Type == specs.TimeNamespace {
			p.joinPid = true
		}
	}
	if joinUser != "" {
		joins = append([]string{joinUser}, joins...)
	}
	p.joins = joins
	// The cgroup namespace is unshared by init itself, once the runtime
	// has moved it into its cgroup.
	newFlags &^= unix.CLONE_NEWCGROUP
	if len(joins) == 0 {
		if newFlags&unix.CLONE_NEWTIME != 0 {
			// clone(2) cannot make a time namespace: nsenter unshares
			// it (and forks, so the init is inside).
			// The pid namespace goes with it: the fork's pid must be
			// read in the host's pid namespace.
			p.unshare = newFlags & (unix.CLONE_NEWTIME | unix.CLONE_NEWPID)
			newFlags &^= unix.CLONE_NEWTIME | unix.CLONE_NEWPID
			p.joinPid = true
		}
		p.clone = uintptr(newFlags)
		return p, nil
	}
	if newFlags&unix.CLONE_NEWUSER != 0 {
		return nil, fmt.Errorf("%w: linux.namespaces: joining a namespace by path while making a new user namespace is not supported", ErrNotSupported)
	}
	p.unshare = newFlags
	if newFlags&(unix.CLONE_NEWPID|unix.CLONE_NEWTIME) != 0 {
		p.joinPid = true
	}
	return p, nil
}

// checkNSPath opens path and checks it is a namespace of the given type.
func checkNSPath(path string, typ int) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	got, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return fmt.Errorf("not a namespace file: %w", err)
	}
	if got != typ {
		return fmt.Errorf("is a namespace of another type")
	}
	return nil
}

// validate checks what can be checked before any process exists.
func validate(s *specs.Spec, bundle string) (rootfs string, plan *nsPlan, err error) {
	if s.Version == "" {
		return "", nil, fmt.Errorf("%w: ociVersion is missing", ErrInvalidSpec)
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(s.Version, "v"), ".")
	if n, err := strconv.Atoi(major); err != nil || n != specs.VersionMajor {
		return "", nil, fmt.Errorf("%w: ociVersion %q: hull-runtime supports %d.x", ErrInvalidSpec, s.Version, specs.VersionMajor)
	}
	if s.Root == nil || s.Root.Path == "" {
		return "", nil, fmt.Errorf("%w: root.path is missing", ErrInvalidSpec)
	}
	rootfs = s.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	fi, err := os.Stat(rootfs)
	if err != nil {
		return "", nil, fmt.Errorf("%w: root.path %s: %w", ErrInvalidSpec, rootfs, err)
	}
	if !fi.IsDir() {
		return "", nil, fmt.Errorf("%w: root.path %s: not a directory", ErrInvalidSpec, rootfs)
	}
	if rootfs, err = filepath.EvalSymlinks(rootfs); err != nil {
		return "", nil, fmt.Errorf("%w: root.path: %w", ErrInvalidSpec, err)
	}
	if s.Process == nil {
		return "", nil, fmt.Errorf("%w: process is missing", ErrInvalidSpec)
	}
	if err := validateProcess(s.Process); err != nil {
		return "", nil, err
	}
	if err := label.ValidateSpec(s); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	var namespaces []specs.LinuxNamespace
	if s.Linux != nil {
		namespaces = s.Linux.Namespaces
	}
	if plan, err = planNamespaces(namespaces); err != nil {
		return "", nil, err
	}
	if !plan.has[specs.MountNamespace] {
		return "", nil, fmt.Errorf("%w: linux.namespaces: a mount namespace is required", ErrInvalidSpec)
	}
	if s.Hostname != "" && !plan.has[specs.UTSNamespace] {
		return "", nil, fmt.Errorf("%w: hostname: needs a UTS namespace", ErrInvalidSpec)
	}
	if s.Domainname != "" && !plan.has[specs.UTSNamespace] {
		return "", nil, fmt.Errorf("%w: domainname: needs a UTS namespace", ErrInvalidSpec)
	}
	for i, m := range s.Mounts {
		if m.Destination == "" {
			return "", nil, fmt.Errorf("%w: mounts[%d].destination is missing", ErrInvalidSpec, i)
		}
	}
	if l := s.Linux; l != nil {
		for k := range l.Sysctl {
			if err := checkSysctl(k, plan); err != nil {
				return "", nil, fmt.Errorf("%w: linux.sysctl %q: %w", ErrInvalidSpec, k, err)
			}
		}

		if (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) && !plan.newNS[specs.UserNamespace] {
			return "", nil, fmt.Errorf("%w: linux.uidMappings: needs a new user namespace", ErrInvalidSpec)
		}
		if plan.newNS[specs.UserNamespace] && (len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0) {
			return "", nil, fmt.Errorf("%w: linux.uidMappings and gidMappings: a new user namespace needs both", ErrInvalidSpec)
		}
		for clock := range l.TimeOffsets {
			if clock != "monotonic" && clock != "boottime" {
				return "", nil, fmt.Errorf("%w: linux.timeOffsets: unknown clock %q", ErrInvalidSpec, clock)
			}
			if !plan.newNS[specs.TimeNamespace] {
				return "", nil, fmt.Errorf("%w: linux.timeOffsets: needs a new time namespace", ErrInvalidSpec)
			}
		}
		if len(l.NetDevices) > 0 && !plan.newNS[specs.NetworkNamespace] && !plan.has[specs.NetworkNamespace] {
			return "", nil, fmt.Errorf("%w: linux.netDevices: needs a network namespace", ErrInvalidSpec)
		}
		for name := range l.NetDevices {
			if _, err := os.Stat("/sys/class/net/" + name); err != nil {
				return "", nil, fmt.Errorf("%w: linux.netDevices[%q]: no such device on the host", ErrInvalidSpec, name)
			}
		}
		if l.IntelRdt != nil {
			// config-linux.md: without a mounted resctrl the runtime
			// MUST fail; with one, hull-runtime does not drive it yet.
			mi, _ := os.ReadFile("/proc/self/mountinfo")
			if !strings.Contains(string(mi), " - resctrl ") {
				return "", nil, fmt.Errorf("%w: linux.intelRdt: no resctrl filesystem is mounted", ErrInvalidSpec)
			}
			return "", nil, fmt.Errorf("%w: linux.intelRdt: %w", ErrInvalidSpec, ErrNotSupported)
		}
		if err := initproc.ValidatePersonality(l.Personality); err != nil {
			return "", nil, fmt.Errorf("%w: %w", ErrInvalidSpec, err)
		}
		if p := l.RootfsPropagation; p != "" {
			switch p {
			case "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable":
			default:
				return "", nil, fmt.Errorf("%w: linux.rootfsPropagation %q is unknown", ErrInvalidSpec, p)
			}
		}
	}
	return rootfs, plan, nil
}

func validateProcess(p *specs.Process) error {
	if len(p.Args) == 0 && p.CommandLine == "" {
		return fmt.Errorf("%w: process.args must not be empty", ErrInvalidSpec)
	}
	if p.Cwd != "" && !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("%w: process.cwd %q must be absolute", ErrInvalidSpec, p.Cwd)
	}
	if err := caps.Validate(p.Capabilities); err != nil {
		return fmt.Errorf("%w: process.capabilities: %w", ErrInvalidSpec, err)
	}
	if err := initproc.ValidateScheduler(p.Scheduler); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if err := initproc.ValidateIOPriority(p.IOPriority); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidSpec, err)
	}
	if a := p.ExecCPUAffinity; a != nil {
		for f, v := range map[string]string{"initial": a.Initial, "final": a.Final} {
			if v == "" {
				continue
			}
			if _, err := initproc.ParseCPUList(v); err != nil {
				return fmt.Errorf("%w: process.execCPUAffinity.%s: %w", ErrInvalidSpec, f, err)
			}
		}
	}
	seen := map[string]bool{}
	for i, r := range p.Rlimits {
		if !initproc.RlimitKnown(r.Type) {
			return fmt.Errorf("%w: process.rlimits[%d].type %q is unknown", ErrInvalidSpec, i, r.Type)
		}
		if seen[r.Type] {
			return fmt.Errorf("%w: process.rlimits[%d]: %s given twice", ErrInvalidSpec, i, r.Type)
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			return fmt.Errorf("%w: process.rlimits[%d] %s: soft %d above hard %d", ErrInvalidSpec, i, r.Type, r.Soft, r.Hard)
		}
	}
	return nil
}

// checkSysctl allows only sysctls that belong to a namespace the
// container has (as runc does).
func checkSysctl(k string, plan *nsPlan) error {
	switch {
	case strings.HasPrefix(k, "fs.mqueue."), k == "kernel.msgmax", k == "kernel.msgmnb", k == "kernel.msgmni",
		k == "kernel.sem", k == "kernel.shmall", k == "kernel.shmmax", k == "kernel.shmmni", k == "kernel.shm_rmid_forced":
		if !plan.has[specs.IPCNamespace] {
			return errors.New("needs an IPC namespace")
		}
	case strings.HasPrefix(k, "net."):
		if !plan.has[specs.NetworkNamespace] {
			return errors.New("needs a network namespace")
		}
	case k == "kernel.hostname", k == "kernel.domainname":
		if !plan.has[specs.UTSNamespace] {
			return errors.New("needs a UTS namespace")
		}
	default:
		return errors.New("not in a namespace the container has: would change the host")
	}
	return nil
}
