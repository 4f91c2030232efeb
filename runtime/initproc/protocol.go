package initproc

import (
	"encoding/json"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/seccomp/bpf"
)

// Environment variables the runtime sets for `hull-runtime init`.
const (
	EnvSyncFD  = "_HULL_SYNCFD" // the sync socket
	EnvNsEnter = "_HULL_NSENTER"
	EnvSetsid  = "_HULL_SETSID"
	// EnvExeFD is the fd of the init's own binary, which it was exec'd
	// through (/proc/self/fd/N); the init closes it at once.
	EnvExeFD = "_HULL_EXEFD"
	// EnvProtocol carries the runtime's ProtocolVersion: an init of
	// another build (a stale hull-runtime-init beside hull-runtime)
	// refuses to run rather than misread the config.
	EnvProtocol = "_HULL_PROTOCOL"
)

// ProtocolVersion names the sync-socket protocol of this build: change
// it whenever Message, Config or the order of the exchange changes.
const ProtocolVersion = "3"

// Message types on the sync socket (newline-delimited JSON).
const (
	MsgConfig    = "config"     // runtime -> init: Config
	MsgPid       = "pid"        // nsenter -> runtime: the pid after a fork into a pid namespace
	MsgHooks     = "hooks"      // init -> runtime: run prestart/createRuntime hooks now
	MsgHooksDone = "hooks-done" // runtime -> init
	MsgReady     = "ready"      // init -> runtime: created, now waiting on the exec fifo
	// MsgCgroupDone: runtime -> init: the init is in its cgroup (sent
	// after the config, so that the init builds the rootfs meanwhile).
	MsgCgroupDone = "cgroup-done"
	MsgError      = "error" // init -> runtime: Msg says what failed
	// MsgSeccomp: init -> runtime: a listener fd follows (after the
	// runtime's MsgSeccompAck) as one byte with SCM_RIGHTS; the runtime
	// answers MsgSeccompDone once it has handed it to listenerPath.
	MsgSeccomp     = "seccomp"
	MsgSeccompAck  = "seccomp-ack"
	MsgSeccompDone = "seccomp-done"
)

// Message is one line on the sync socket.
type Message struct {
	Type   string  `json:"type"`
	Msg    string  `json:"msg,omitempty"`
	Pid    int     `json:"pid,omitempty"`
	Config *Config `json:"config,omitempty"`
	// CgroupTasks (MsgCgroupDone) are the "tasks" files of the
	// container's cgroup v1 hierarchies, which the init writes "0" to
	// (itself) on receipt; empty: the runtime has moved it.
	CgroupTasks []string `json:"cgroupTasks,omitempty"`
}

// Config tells init what to set up.
type Config struct {
	// Exec: join a running container (namespaces were joined by nsenter)
	// and run Process there; no rootfs setup and no exec fifo.
	Exec bool `json:"exec,omitempty"`
	// Spec travels as SpecJSON: the bundle's config.json bytes when the
	// runtime has them, so that nothing re-encodes the whole spec (cold
	// encoders cost a short-lived process more than the bytes); the
	// init decodes it (DecodeSpec).
	Spec     *specs.Spec     `json:"-"`
	SpecJSON json.RawMessage `json:"spec,omitempty"`
	// Process defaults to Spec.Process when nil. It travels as
	// ProcessJSON: a *specs.Process field would make encoding/json build
	// encoders for the whole process type tree in every process that
	// encodes a Message, even when nil.
	Process     *specs.Process  `json:"-"`
	ProcessJSON json.RawMessage `json:"process,omitempty"`
	Rootfs      string          `json:"rootfs"`
	Bundle      string          `json:"bundle"`
	// State is given to createContainer and startContainer hooks.
	State        *specs.State `json:"state,omitempty"`
	NoPivot      bool         `json:"noPivot,omitempty"`
	NoNewKeyring bool         `json:"noNewKeyring,omitempty"`
	// RuntimeHooks: ask the runtime to run prestart/createRuntime hooks
	// once the mounts are made.
	RuntimeHooks bool `json:"runtimeHooks,omitempty"`
	NewMountNS   bool `json:"newMountNS,omitempty"`
	NewUserNS    bool `json:"newUserNS,omitempty"`
	NewCgroupNS  bool `json:"newCgroupNS,omitempty"`
	NewUTSNS     bool `json:"newUTSNS,omitempty"`
	// Fds (init's numbering): the exec fifo (O_PATH), the console socket.
	FifoFD          int `json:"fifoFD,omitempty"`
	ConsoleSocketFD int `json:"consoleSocketFD,omitempty"`
	// Seccomp is the compiled filter of linux.seccomp (nil: none).
	Seccomp *bpf.Program `json:"seccomp,omitempty"`
	// PreserveFDs extra fds (3..3+N-1) are passed on to the process.
	PreserveFDs int `json:"preserveFDs,omitempty"`
}

// EncodeSpec fills SpecJSON from Spec when the sender has no bytes yet,
// and ProcessJSON from Process.
func (c *Config) EncodeSpec() error {
	if c.Process != nil && c.ProcessJSON == nil {
		b, err := json.Marshal(c.Process)
		if err != nil {
			return err
		}
		c.ProcessJSON = b
	}
	if c.SpecJSON != nil || c.Spec == nil {
		return nil
	}
	b, err := json.Marshal(c.Spec)
	c.SpecJSON = b
	return err
}

// initSpec is the part of config.json the init reads. Decoding into it
// rather than specs.Spec skips linux.resources, linux.seccomp (compiled by
// the runtime), linux.intelRdt and the rest the runtime handles: a cold
// encoding/json builds codecs for every type it meets, about half the
// init's decode time for the whole spec.
type initSpec struct {
	Version    string         `json:"ociVersion"`
	Process    *specs.Process `json:"process,omitempty"`
	Root       *specs.Root    `json:"root,omitempty"`
	Hostname   string         `json:"hostname,omitempty"`
	Domainname string         `json:"domainname,omitempty"`
	Mounts     []specs.Mount  `json:"mounts,omitempty"`
	Hooks      *specs.Hooks   `json:"hooks,omitempty"`
	Linux      *initLinux     `json:"linux,omitempty"`
}

type initLinux struct {
	Devices           []specs.LinuxDevice     `json:"devices,omitempty"`
	RootfsPropagation string                  `json:"rootfsPropagation,omitempty"`
	MaskedPaths       []string                `json:"maskedPaths,omitempty"`
	ReadonlyPaths     []string                `json:"readonlyPaths,omitempty"`
	Sysctl            map[string]string       `json:"sysctl,omitempty"`
	MountLabel        string                  `json:"mountLabel,omitempty"`
	Personality       *specs.LinuxPersonality `json:"personality,omitempty"`
}

// DecodeSpec fills Spec from SpecJSON (the fields the init uses, see
// initSpec), and Process from Spec when unset.
func (c *Config) DecodeSpec() error {
	if c.Spec == nil && len(c.SpecJSON) > 0 {
		var is initSpec
		if err := json.Unmarshal(c.SpecJSON, &is); err != nil {
			return err
		}
		c.Spec = &specs.Spec{
			Version: is.Version, Process: is.Process, Root: is.Root, Hostname: is.Hostname, Domainname: is.Domainname,
			Mounts: is.Mounts, Hooks: is.Hooks,
		}
		if l := is.Linux; l != nil {
			c.Spec.Linux = &specs.Linux{
				Devices: l.Devices, RootfsPropagation: l.RootfsPropagation, MaskedPaths: l.MaskedPaths,
				ReadonlyPaths: l.ReadonlyPaths, Sysctl: l.Sysctl, MountLabel: l.MountLabel, Personality: l.Personality,
			}
		}
	}
	if c.Process == nil && len(c.ProcessJSON) > 0 {
		c.Process = new(specs.Process)
		if err := json.Unmarshal(c.ProcessJSON, c.Process); err != nil {
			return err
		}
	}
	if c.Process == nil && c.Spec != nil {
		c.Process = c.Spec.Process
	}
	return nil
}

// NsenterLinked is set by runtime/nsenter's init when the program holds
// its C constructor: only then can `<program> init` join namespaces by
// path. A program without it (the pure Go hull-runtime) starts the inits
// that join namespaces from hull-runtime-helper.
var NsenterLinked bool
