package initproc

import (
	"encoding/json"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/seccomp"
)

// Environment variables the runtime sets for `hull-runtime init`.
const (
	EnvSyncFD  = "_HULL_SYNCFD" // the sync socket
	EnvNsEnter = "_HULL_NSENTER"
	EnvSetsid  = "_HULL_SETSID"
	// EnvCgroupJoin: nsenter's constructor waits for the cgroup files
	// and joins them itself (runtime/nsenter).
	EnvCgroupJoin = "_HULL_CGROUP_JOIN"
)

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
	// MsgCgroupJoined: nsenter -> runtime: the init moved itself into
	// its cgroups; Msg names the first file it could not write.
	MsgCgroupJoined = "cgroup-joined"
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
	Seccomp *seccomp.Program `json:"seccomp,omitempty"`
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

// DecodeSpec fills Spec from SpecJSON, and Process from Spec when unset.
func (c *Config) DecodeSpec() error {
	if c.Spec == nil && len(c.SpecJSON) > 0 {
		c.Spec = new(specs.Spec)
		if err := json.Unmarshal(c.SpecJSON, c.Spec); err != nil {
			return err
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
