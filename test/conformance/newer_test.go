package conformance

// Properties added by runtime-spec 1.2 and 1.3.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
)

// statField returns field n (1-based, as proc(5) numbers them) of
// /proc/<pid>/stat.
func statField(t *testing.T, pid, n int) string {
	t.Helper()
	s := readFile(fmt.Sprintf("/proc/%d/stat", pid))
	// The command name may hold spaces: fields count from after ")".
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if n-3 < 0 || n-3 >= len(f) {
		t.Fatalf("/proc/%d/stat has no field %d: %q", pid, n, s)
	}
	return f[n-3]
}

// TestNewerProcess checks the process properties of runtime-spec 1.2:
// scheduler, ioPriority, and linux.personality, from inside and outside.
func TestNewerProcess(t *testing.T) {
	for _, tc := range newerProcessCases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRT(t)
			b := testutil.NewBundle(t, tc.args...)
			tc.edit(b.Spec)
			res := r.runToEnd(b)
			if got := strings.TrimSpace(res.stdout); got != tc.want || res.code != 0 {
				t.Errorf("inside: %q (exit %d, stderr %s), want %q", got, res.code, res.stderr, tc.want)
			}
			b = testutil.NewBundle(t)
			tc.edit(b.Spec)
			s := r.startSleeper(b, false)
			tc.outside(t, s.pid)
			r.stop(s.id)
		})
	}
}

// newerCase is a spec edit, the program whose output is checked and a
// check of the running process from the host.
type newerCase struct {
	name    string
	edit    func(s *specs.Spec)
	args    []string
	want    string
	outside func(t *testing.T, pid int)
}

var newerProcessCases = []newerCase{
	{
		// config.md scheduler: "policy (string, REQUIRED) represents the
		// scheduling policy"; "nice (int32, OPTIONAL) is the nice value
		// for the process".
		name: "scheduler",
		edit: func(s *specs.Spec) {
			s.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 7}
		},
		// proc(5) stat: field 19 is nice, field 41 the policy
		// (SCHED_BATCH is 3).
		args: []string{"sh", "-c", "cut -d ' ' -f 19,41 /proc/self/stat"}, want: "7 3",
		outside: func(t *testing.T, pid int) {
			if n, p := statField(t, pid, 19), statField(t, pid, 41); n != "7" || p != "3" {
				t.Errorf("nice %s policy %s, want 7 and 3 (SCHED_BATCH)", n, p)
			}
		},
	},
	{
		// config.md ioPriority: "class (string, REQUIRED) specifies the
		// I/O scheduling class"; "priority (int, REQUIRED) specifies the
		// priority level within the class".
		name: "io-priority",
		edit: func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6}
		},
		args: []string{"ionice"}, want: "best-effort: prio 6",
		outside: func(t *testing.T, pid int) {
			const whoProcess = 1 // IOPRIO_WHO_PROCESS
			v, _, errno := syscall.Syscall(syscall.SYS_IOPRIO_GET, whoProcess, uintptr(pid), 0)
			if errno != 0 {
				t.Fatalf("ioprio_get: %v", errno)
			}
			if class, prio := v>>13, v&0x1fff; class != 2 || prio != 6 {
				t.Errorf("io priority class %d prio %d, want 2 (best effort) and 6", class, prio)
			}
		},
	},
	{
		// config-linux.md personality: "LINUX32 will set the uname
		// system call to show a 32 bit CPU type, such as i686."
		name: "personality-linux32",
		edit: func(s *specs.Spec) {
			s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
		},
		args: []string{"uname", "-m"}, want: "i686",
		outside: func(t *testing.T, pid int) {
			if p := strings.TrimSpace(readFile(fmt.Sprintf("/proc/%d/personality", pid))); p != "00000008" {
				t.Errorf("personality %s, want 00000008 (PER_LINUX32)", p)
			}
		},
	},
	{
		// config-linux.md timeOffsets: "sets the offset for Time
		// Namespace"; "secs (int64, OPTIONAL) - is the offset of clock
		// (in seconds) in the container."
		name: "time-namespace-offsets",
		edit: func(s *specs.Spec) {
			setNS(s, specs.LinuxNamespace{Type: specs.TimeNamespace})
			s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1000000}, "boottime": {Secs: 2000000}}
		},
		args: []string{"sh", "-c", "tr -s ' ' </proc/self/timens_offsets"}, want: "monotonic 1000000 0\nboottime 2000000 0",
		outside: func(t *testing.T, pid int) {
			if nsInode(t, pid, "time") == nsInode(t, os.Getpid(), "time") {
				t.Error("time namespace is the host's")
			}
		},
	},
}

// TestExecCPUAffinity: config.md execCPUAffinity: "final (string,
// OPTIONAL) is a list of CPUs the process will be run on after the
// transition to container's cgroup" — for processes exec'd into the
// container ("This setting is not applicable to the container's init
// process").
func TestExecCPUAffinity(t *testing.T) {
	r := newRT(t)
	b := testutil.NewBundle(t)
	s := r.startSleeper(b, false)
	p := *b.Spec.Process
	p.Args = []string{"grep", "Cpus_allowed_list", "/proc/self/status"}
	p.ExecCPUAffinity = &specs.CPUAffinity{Final: "0"}
	data, _ := json.Marshal(p)
	pf := filepath.Join(t.TempDir(), "process.json")
	if err := os.WriteFile(pf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := r.ok("exec", "--process", pf, s.id)
	if got := strings.Join(strings.Fields(out), " "); got != "Cpus_allowed_list: 0" {
		t.Errorf("exec'd process: %q, want Cpus_allowed_list: 0", got)
	}
	r.stop(s.id)
}

// TestNetDevices checks config-linux.md netDevices (runtime-spec 1.3): "A
// set of network devices that MUST be made available in the container";
// "name ... the name of the network device inside the container
// namespace"; "The runtime MUST preserve existing network interface
// attributes, including all permanent IP addresses"; "The runtime MUST set
// the network device state to up after moving it".
func TestNetDevices(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2) to make a veth pair")
	}
	r := newRT(t)
	// One end of a veth pair moves into the container; deleting the end
	// left on the host deletes both.
	dev := fmt.Sprintf("hc%da", os.Getpid()%100000)
	peer := strings.TrimSuffix(dev, "a") + "b"
	if out, err := exec.Command("ip", "link", "add", dev, "type", "veth", "peer", "name", peer).CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", peer).Run() })
	if out, err := exec.Command("ip", "addr", "add", "10.251.7.1/24", "dev", dev).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add: %v: %s", err, out)
	}
	b := testutil.NewBundle(t)
	b.Spec.Linux.NetDevices = map[string]specs.LinuxNetDevice{dev: {Name: "ctr0"}}
	s := r.startSleeper(b, false)
	if _, err := os.Stat("/sys/class/net/" + dev); err == nil {
		t.Errorf("%s is still in the host's namespace", dev)
	}
	out, _, err := r.exec(nil, "exec", s.id, "sh", "-c", "cat /sys/class/net/ctr0/flags; ip -4 addr show ctr0")
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	lines := strings.SplitN(out, "\n", 2)
	var flags int
	fmt.Sscanf(lines[0], "0x%x", &flags)
	if flags&1 == 0 {
		t.Errorf("ctr0 is not up: flags %q", lines[0])
	}
	if !strings.Contains(out, "10.251.7.1/24") {
		t.Errorf("ctr0 lost its address: %q", out)
	}
	r.stop(s.id)
}
