// Package caps applies the five capability sets of process.capabilities
// (bounding, effective, permitted, inheritable, ambient) to the calling
// thread, and knows which capability names exist.
//
// It uses github.com/moby/sys/capability for names and capset, and does the
// bounding-set drop and the ambient raise itself with prctl, because the
// library skips the bounding drop silently when CAP_SETPCAP is not
// effective and reads the bounding set of the main thread, not of the
// calling one.
//
// # Threads and order
//
// Capabilities are per thread. The caller locks the OS thread
// (runtime.LockOSThread) and calls everything below, and finally execve,
// on that thread. The order that works for a process that starts as root
// and ends as process.user, as runc does it:
//
//  1. DropBounding(spec bounding set) while still root (needs CAP_SETPCAP).
//  2. prctl(PR_SET_KEEPCAPS, 1), so that setuid to a non-zero uid keeps the
//     permitted set.
//  3. setgroups/setgid/setuid to process.user, on this thread only (raw
//     syscalls, not Go's syscall.Setuid, which changes every thread).
//  4. prctl(PR_SET_KEEPCAPS, 0).
//  5. Apply(spec capabilities): it sets effective, permitted and
//     inheritable with capset, then the ambient set. (Apply drops the
//     bounding set too; that is a no-op after step 1.)
//  6. execve.
//
// For a process that stays root, Apply alone is enough. After execve the
// kernel recomputes the sets: a root process gets its bounding set as
// permitted and effective; a non-root process keeps only its ambient set.
//
// # Decisions
//
//   - Names are "CAP_" + upper case, as the runtime spec writes them.
//     The runtime spec (1.2 and later) says a capability that cannot be
//     mapped or granted MUST be logged as a warning and SHOULD NOT fail the
//     container; runc 1.1 ignores "CAP_TEST" with a warning. So Apply skips
//     unknown names and names newer than the running kernel (above
//     /proc/sys/kernel/cap_last_cap), and Warnings (or Unknown) lists them
//     for the caller to log. Apply itself logs nothing: it runs in the
//     container init, whose stderr is the container's. Validate is the
//     strict check, for callers that build specs (the daemon's options) and
//     want typos refused.
//   - An ambient capability that is not both permitted and inheritable
//     cannot be raised; Apply skips it (runc does the same). runc's own
//     `spec` output lists ambient capabilities without an inheritable set,
//     so refusing them would break configs written for runc.
//   - An effective capability outside the permitted set cannot be granted;
//     Apply skips it instead of failing in capset.
//   - A capability the runtime itself does not hold (this host's sandbox
//     withholds CAP_SYS_RESOURCE, for one) cannot be granted either; Apply
//     leaves it out instead of failing in capset, as runc 1.1 does. Use
//     Current for "every capability" (a privileged container).
//   - Warnings lists every capability Apply will leave out, and why.
//   - A nil *specs.LinuxCapabilities changes nothing.
package caps

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Errors of this package; test with errors.Is.
var (
	// ErrUnknown marks a capability name that does not exist.
	ErrUnknown = errors.New("unknown capability")
	// ErrNoSetpcap is returned when the bounding set must shrink but the
	// thread has no CAP_SETPCAP to do it.
	ErrNoSetpcap = errors.New("dropping from the bounding set needs CAP_SETPCAP")
)

var (
	byName  map[string]capability.Cap
	allCaps []capability.Cap
	once    sync.Once
)

func load() {
	once.Do(func() {
		byName = map[string]capability.Cap{}
		allCaps = capability.ListKnown()
		for _, c := range allCaps {
			byName[Name(c)] = c
		}
	})
}

// Name is the runtime-spec name of c ("CAP_SYS_ADMIN").
func Name(c capability.Cap) string {
	return "CAP_" + strings.ToUpper(c.String())
}

// Parse returns the capability called name ("CAP_SYS_ADMIN"; case and the
// CAP_ prefix are optional).
func Parse(name string) (capability.Cap, error) {
	load()
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	c, ok := byName[n]
	if !ok {
		return 0, fmt.Errorf("%q: %w", name, ErrUnknown)
	}
	return c, nil
}

// Known lists the capabilities this host supports (known to the library
// and not above the running kernel's last capability), by runtime-spec
// name, for the features document.
func Known() []string {
	list, err := capability.ListSupported()
	if err != nil {
		load()
		list = allCaps
	}
	out := make([]string, 0, len(list))
	for _, c := range list {
		out = append(out, Name(c))
	}
	return out
}

// All lists every capability name the library knows, supported by this
// kernel or not.
func All() []string {
	load()
	out := make([]string, 0, len(allCaps))
	for _, c := range allCaps {
		out = append(out, Name(c))
	}
	return out
}

// sets names the five sets of c in a fixed order, for errors and loops.
func sets(c *specs.LinuxCapabilities) []struct {
	name string
	list []string
} {
	return []struct {
		name string
		list []string
	}{
		{"bounding", c.Bounding}, {"effective", c.Effective}, {"permitted", c.Permitted},
		{"inheritable", c.Inheritable}, {"ambient", c.Ambient},
	}
}

// Validate checks that every name in every set of c is a capability. The
// error names the set and the capability. A nil c is valid. A runtime
// applying a spec must not fail on this (see the package doc); it logs
// Unknown(c) instead.
func Validate(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	for _, s := range sets(c) {
		for i, n := range s.list {
			if _, err := Parse(n); err != nil {
				return fmt.Errorf("process.capabilities.%s[%d]: %w", s.name, i, err)
			}
		}
	}
	return nil
}

// Unknown lists, as "set: name", the names in c that are not capabilities
// of this host (unknown, or newer than the running kernel).
func Unknown(c *specs.LinuxCapabilities) []string {
	if c == nil {
		return nil
	}
	last, err := lastCap()
	if err != nil {
		last = capability.CAP_CHECKPOINT_RESTORE
	}
	var out []string
	for _, s := range sets(c) {
		for _, n := range s.list {
			if cp, err := Parse(n); err != nil || cp > last {
				out = append(out, s.name+": "+n)
			}
		}
	}
	return out
}

// Warnings describes what Apply will leave out of c on this host: unknown
// or unsupported names, effective capabilities that are not permitted, and
// ambient ones that are not both permitted and inheritable. The runtime
// logs them (the runtime spec asks for warnings, not errors).
func Warnings(c *specs.LinuxCapabilities) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, u := range Unknown(c) {
		out = append(out, "ignoring unknown or unavailable capability in "+u)
	}
	// Capabilities the calling process does not hold cannot be passed on.
	if last, err := lastCap(); err == nil {
		if cur, err := threadSets(last); err == nil {
			seen := map[string]bool{}
			for _, list := range [][]string{c.Bounding, c.Permitted, c.Effective, c.Inheritable, c.Ambient} {
				for _, n := range list {
					cp, err := Parse(n)
					if err != nil || cp > last || cp >= 64 || seen[Name(cp)] || cur.permitted[cp] {
						continue
					}
					seen[Name(cp)] = true
					out = append(out, "capability "+Name(cp)+" is not held by the runtime: left out")
				}
			}
		}
	}
	in := func(list []string, name string) bool {
		want, err := Parse(name)
		if err != nil {
			return false
		}
		for _, n := range list {
			if c, err := Parse(n); err == nil && c == want {
				return true
			}
		}
		return false
	}
	for _, n := range c.Effective {
		if _, err := Parse(n); err == nil && !in(c.Permitted, n) {
			out = append(out, "effective capability "+n+" is not permitted: left out")
		}
	}
	for _, n := range c.Ambient {
		if _, err := Parse(n); err == nil && (!in(c.Permitted, n) || !in(c.Inheritable, n)) {
			out = append(out, "ambient capability "+n+" is not both permitted and inheritable: left out")
		}
	}
	return out
}

// sets are the capability sets of a thread, indexed by capability.
type sets3 struct {
	effective, permitted, inheritable, bounding [64]bool
}

// threadSets reads the calling thread's sets.
func threadSets(last capability.Cap) (*sets3, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("capget: %w", err)
	}
	out := &sets3{}
	for c := capability.Cap(0); c <= last && c < 64; c++ {
		word, bit := c/32, uint32(1)<<(uint(c)%32)
		out.effective[c] = data[word].Effective&bit != 0
		out.permitted[c] = data[word].Permitted&bit != 0
		out.inheritable[c] = data[word].Inheritable&bit != 0
		in, err := capability.GetBound(c)
		if err != nil {
			return nil, fmt.Errorf("read bounding set: %w", err)
		}
		out.bounding[c] = in
	}
	return out, nil
}

// Current lists the capabilities the calling thread has in its effective
// set: "every capability" for a privileged container, which cannot get
// what its runtime lacks (this host's sandbox, for one, withholds
// CAP_SYS_RESOURCE).
func Current() []string {
	last, err := lastCap()
	if err != nil {
		return nil
	}
	cur, err := threadSets(last)
	if err != nil {
		return nil
	}
	var out []string
	for c := capability.Cap(0); c <= last && c < 64; c++ {
		if cur.effective[c] {
			out = append(out, Name(c))
		}
	}
	return out
}

// lastCap is the highest capability of the running kernel.
func lastCap() (capability.Cap, error) {
	return capability.LastCap()
}

// parseSet turns names into capabilities the kernel supports; the others
// are skipped with a warning (see the package doc).
func parseSet(set string, names []string, last capability.Cap) ([]capability.Cap, error) {
	var out []capability.Cap
	for _, n := range names {
		c, err := Parse(n)
		if err != nil || c > last || c >= 64 {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// DropBounding removes from the calling thread's bounding set every
// capability not in keep. It needs CAP_SETPCAP; when that is permitted
// but not effective, it is made effective first.
func DropBounding(keep []string) error {
	last, err := lastCap()
	if err != nil {
		return fmt.Errorf("read the last capability: %w", err)
	}
	want, err := parseSet("bounding", keep, last)
	if err != nil {
		return err
	}
	var keepSet [64]bool
	for _, c := range want {
		keepSet[c] = true
	}
	var drop []capability.Cap
	for c := capability.Cap(0); c <= last; c++ {
		if keepSet[c] {
			continue
		}
		in, err := capability.GetBound(c)
		if err != nil {
			return fmt.Errorf("read bounding set: %w", err)
		}
		if in {
			drop = append(drop, c)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	if err := raiseSetpcap(); err != nil {
		return err
	}
	for _, c := range drop {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop %s from the bounding set: %w", Name(c), err)
		}
	}
	return nil
}

// raiseSetpcap makes CAP_SETPCAP effective on the calling thread when it
// is permitted.
func raiseSetpcap() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	const bit = uint32(1) << uint(capability.CAP_SETPCAP)
	if data[0].Effective&bit != 0 {
		return nil
	}
	if data[0].Permitted&bit == 0 {
		return ErrNoSetpcap
	}
	data[0].Effective |= bit
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("raise CAP_SETPCAP: %w", err)
	}
	return nil
}

// Apply sets the calling thread's capabilities to c: the bounding set is
// reduced to c.Bounding, then effective, permitted and inheritable are set
// with capset, then the ambient set is cleared and c.Ambient raised. See
// the package doc for the thread and setuid order. A nil c changes nothing.
func Apply(c *specs.LinuxCapabilities) error {
	if c == nil {
		return nil
	}
	last, err := lastCap()
	if err != nil {
		return fmt.Errorf("read the last capability: %w", err)
	}
	if err := DropBounding(c.Bounding); err != nil {
		return err
	}
	p, err := capability.NewPid2(0)
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	eff, err := parseSet("effective", c.Effective, last)
	if err != nil {
		return err
	}
	perm, err := parseSet("permitted", c.Permitted, last)
	if err != nil {
		return err
	}
	inh, err := parseSet("inheritable", c.Inheritable, last)
	if err != nil {
		return err
	}
	// What this thread can hand out: a permitted capability must be in
	// its permitted set, an inheritable one in its inheritable set or in
	// both its permitted and bounding sets; others cannot be granted and
	// are skipped (see the package doc).
	cur, err := threadSets(last)
	if err != nil {
		return err
	}
	var inP, inI [64]bool
	var permOK, inhOK []capability.Cap
	for _, cp := range perm {
		if cur.permitted[cp] {
			inP[cp] = true
			permOK = append(permOK, cp)
		}
	}
	for _, cp := range inh {
		if cur.inheritable[cp] || (cur.permitted[cp] && cur.bounding[cp]) {
			inI[cp] = true
			inhOK = append(inhOK, cp)
		}
	}
	perm, inh = permOK, inhOK
	// An effective capability must be permitted.
	var effOK []capability.Cap
	for _, cp := range eff {
		if inP[cp] {
			effOK = append(effOK, cp)
		}
	}
	p.Set(capability.EFFECTIVE, effOK...)
	p.Set(capability.PERMITTED, perm...)
	p.Set(capability.INHERITABLE, inh...)
	if err := p.Apply(capability.CAPS); err != nil {
		return fmt.Errorf("set effective, permitted and inheritable capabilities: %w", err)
	}
	amb, err := parseSet("ambient", c.Ambient, last)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear the ambient set: %w", err)
	}
	for _, cp := range amb {
		if !inP[cp] || !inI[cp] {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(cp), 0, 0); err != nil {
			return fmt.Errorf("raise ambient %s: %w", Name(cp), err)
		}
	}
	return nil
}
