package initproc

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther: 0, specs.SchedFIFO: 1, specs.SchedRR: 2,
	specs.SchedBatch: unix.SCHED_BATCH, specs.SchedISO: 4, specs.SchedIdle: unix.SCHED_IDLE,
	specs.SchedDeadline: unix.SCHED_DEADLINE,
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork: unix.SCHED_FLAG_RESET_ON_FORK, specs.SchedFlagReclaim: unix.SCHED_FLAG_RECLAIM,
	specs.SchedFlagDLOverrun: unix.SCHED_FLAG_DL_OVERRUN, specs.SchedFlagKeepPolicy: unix.SCHED_FLAG_KEEP_POLICY,
	specs.SchedFlagKeepParams: unix.SCHED_FLAG_KEEP_PARAMS, specs.SchedFlagUtilClampMin: unix.SCHED_FLAG_UTIL_CLAMP_MIN,
	specs.SchedFlagUtilClampMax: unix.SCHED_FLAG_UTIL_CLAMP_MAX,
}

// ValidateScheduler checks process.scheduler before any process exists.
func ValidateScheduler(s *specs.Scheduler) error {
	if s == nil {
		return nil
	}
	if _, ok := schedPolicies[s.Policy]; !ok {
		return fmt.Errorf("process.scheduler.policy %q is unknown", s.Policy)
	}
	for _, f := range s.Flags {
		if _, ok := schedFlags[f]; !ok {
			return fmt.Errorf("process.scheduler.flags: %q is unknown", f)
		}
	}
	if s.Nice < -20 || s.Nice > 19 {
		return fmt.Errorf("process.scheduler.nice %d: want -20..19", s.Nice)
	}
	return nil
}

// setScheduler applies process.scheduler (sched_setattr).
func setScheduler(s *specs.Scheduler) error {
	if s == nil {
		return nil
	}
	attr := unix.SchedAttr{
		Size: unix.SizeofSchedAttr, Policy: schedPolicies[s.Policy], Nice: s.Nice,
		Priority: uint32(s.Priority), Runtime: s.Runtime, Deadline: s.Deadline, Period: s.Period,
	}
	for _, f := range s.Flags {
		attr.Flags |= schedFlags[f]
	}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		return fmt.Errorf("process.scheduler: %w", err)
	}
	return nil
}

var ioprioClasses = map[specs.IOPriorityClass]int{
	specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3,
}

// ValidateIOPriority checks process.ioPriority.
func ValidateIOPriority(p *specs.LinuxIOPriority) error {
	if p == nil {
		return nil
	}
	if _, ok := ioprioClasses[p.Class]; !ok {
		return fmt.Errorf("process.ioPriority.class %q is unknown", p.Class)
	}
	if p.Priority < 0 || p.Priority > 7 {
		return fmt.Errorf("process.ioPriority.priority %d: want 0..7", p.Priority)
	}
	return nil
}

// setIOPriority applies process.ioPriority (ioprio_set).
func setIOPriority(p *specs.LinuxIOPriority) error {
	if p == nil {
		return nil
	}
	const whoProcess = 1
	prio := ioprioClasses[p.Class]<<13 | p.Priority
	if _, _, e := unix.RawSyscall(unix.SYS_IOPRIO_SET, whoProcess, 0, uintptr(prio)); e != 0 {
		return fmt.Errorf("process.ioPriority: %w", e)
	}
	return nil
}

var personalities = map[specs.LinuxPersonalityDomain]uintptr{
	specs.PerLinux: 0x0000, specs.PerLinux32: 0x0008,
}

// ValidatePersonality checks linux.personality.
func ValidatePersonality(p *specs.LinuxPersonality) error {
	if p == nil {
		return nil
	}
	if _, ok := personalities[p.Domain]; !ok {
		return fmt.Errorf("linux.personality.domain %q is unknown", p.Domain)
	}
	if len(p.Flags) > 0 {
		return fmt.Errorf("linux.personality.flags: none is supported")
	}
	return nil
}

func setPersonality(p *specs.LinuxPersonality) error {
	if p == nil {
		return nil
	}
	if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, personalities[p.Domain], 0, 0); e != 0 {
		return fmt.Errorf("linux.personality: %w", e)
	}
	return nil
}

// ParseCPUList parses a cpu list such as "0-3,6".
func ParseCPUList(s string) (*unix.CPUSet, error) {
	var set unix.CPUSet
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("cpu list %q: %w", s, err)
			}
		}
		if a < 0 || b < a || b >= 1024 {
			return nil, fmt.Errorf("cpu list %q: bad range %q", s, part)
		}
		for c := a; c <= b; c++ {
			set.Set(c)
		}
	}
	return &set, nil
}

// setAffinity pins this thread (the one that execve's) to list.
func setAffinity(field, list string) error {
	if list == "" {
		return nil
	}
	set, err := ParseCPUList(list)
	if err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if err := unix.SchedSetaffinity(0, set); err != nil {
		return fmt.Errorf("%s %q: %w", field, list, err)
	}
	return nil
}
