package initproc

import (
	"fmt"

	"golang.org/x/sys/unix"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/runtime/caps"
	"github.com/hullproject/hull/runtime/label"
	"github.com/hullproject/hull/runtime/seccomp/bpf"
)

// loadSeccomp installs the program the runtime compiled (a single
// seccomp(2) call; no libseccomp in the init). For a SCMP_ACT_NOTIFY
// program it passes the listener fd to the runtime.
func (i *initp) loadSeccomp(p *bpf.Program) error {
	fd, err := p.Load()
	if err != nil {
		return err
	}
	if fd == nil {
		return nil
	}
	defer fd.Close()
	if err := i.send(Message{Type: MsgSeccomp}); err != nil {
		return err
	}
	if _, err := i.recv(MsgSeccompAck); err != nil {
		return err
	}
	if err := unix.Sendmsg(int(i.sync.Fd()), []byte{0}, unix.UnixRights(int(fd.Fd())), nil, 0); err != nil {
		return fmt.Errorf("linux.seccomp: send listener fd: %w", err)
	}
	_, err = i.recv(MsgSeccompDone)
	return err
}

// procCaps is the process's capabilities; none at all when the spec
// gives none (as runc).
func procCaps(p *specs.Process) *specs.LinuxCapabilities {
	if p.Capabilities == nil {
		return &specs.LinuxCapabilities{}
	}
	return p.Capabilities
}

// dropBounding runs while still root, before setuid.
func dropBounding(p *specs.Process) error {
	if err := caps.DropBounding(procCaps(p).Bounding); err != nil {
		return fmt.Errorf("process.capabilities.bounding: %w", err)
	}
	return nil
}

// applyCaps sets the five capability sets of this thread (after setuid).
func applyCaps(p *specs.Process) error {
	if err := caps.Apply(procCaps(p)); err != nil {
		return fmt.Errorf("process.capabilities: %w", err)
	}
	return nil
}

// applyLabels sets the AppArmor profile and SELinux label the process is
// exec'd with.
func applyLabels(p *specs.Process) error {
	if p.ApparmorProfile == "" && p.SelinuxLabel == "" {
		return nil
	}
	if err := label.ApplyExec(p.ApparmorProfile, p.SelinuxLabel); err != nil {
		return fmt.Errorf("process.apparmorProfile/selinuxLabel: %w", err)
	}
	return nil
}
