package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hullproject/hull/agent"
	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/vm"
)

// VMTraceEnv names a file to which the vm mode appends, per container, one
// JSON line (VMTrace) saying where its start and stop time went. Unset (the
// normal case), tracing costs nothing. The vm benchmark (bench/) sets it
// for hulld, whose environment the shims inherit.
const VMTraceEnv = "HULL_VM_TRACE"

// VMTraceGuestEnv, set (to anything) beside VMTraceEnv, adds the agent's own
// steps (VMTrace.Guest) to each line. They are asked for when the process
// exits, and Delete waits for them (at most a second), so a traced `run
// --rm` pays the Trace RPC on its path: the benchmark of the guest's steps
// sets it, the benchmark of the cold run does not.
const VMTraceGuestEnv = "HULL_VM_TRACE_GUEST"

// VMTrace is one container's trace line. Events maps an event name to its
// wall-clock time in Unix nanoseconds:
//
//	create       the shim's Create began
//	boot         vm.Boot began (QEMU and virtiofsd about to start)
//	vmm_up       QEMU runs and its QMP socket answers
//	agent_ready  hull-agent in the guest first answered
//	network      the guest's network was configured (ConfigureNetwork)
//	created      the container was created in the guest
//	start        StartContainer sent; started: it returned
//	exited       the init process's exit reached the shim
//	delete       Delete began; torndown: the VM is gone and unmounted
type VMTrace struct {
	ID     string           `json:"id"`
	Events map[string]int64 `json:"events"`
	// GuestBootNs is the guest's CLOCK_BOOTTIME when the agent began to
	// serve: kernel boot plus the agent's PID-1 setup.
	GuestBootNs int64 `json:"guest_boot_ns,omitempty"`
	// InitPrintkNs is the kernel's printk time of "Run /init as init
	// process" on the console (0 when the console does not show it, as with
	// "quiet").
	InitPrintkNs int64 `json:"init_printk_ns,omitempty"`
	// Guest lists the agent's own steps (its Trace RPC, asked once the
	// container's process exited) on the guest's CLOCK_MONOTONIC:
	// the kernel's boot markers, the agent's start and PID-1 setup, each
	// RPC and the steps of CreateContainer and StartContainer.
	Guest []GuestEvent `json:"guest,omitempty"`
}

// GuestEvent is one step of the guest's trace.
type GuestEvent struct {
	Name string `json:"name"`
	// MonoNs is the guest's CLOCK_MONOTONIC (the printk clock for the
	// kernel's markers).
	MonoNs int64 `json:"mono_ns"`
}

var vmTraces = struct {
	sync.Mutex
	m         map[string]*VMTrace
	clients   map[string]*agent.Client
	guestDone map[string]chan struct{}
}{m: map[string]*VMTrace{}, clients: map[string]*agent.Client{}, guestDone: map[string]chan struct{}{}}

func vmTraceOn() bool { return os.Getenv(VMTraceEnv) != "" }

func vmTraceGet(id string) *VMTrace {
	t := vmTraces.m[id]
	if t == nil {
		t = &VMTrace{ID: id, Events: map[string]int64{}}
		vmTraces.m[id] = t
	}
	return t
}

// vmTraceMark records now as event of container id. With VMTraceGuestEnv,
// at "exited" it also asks the agent for the guest's trace, in the
// background (while hulld turns the exit into a Delete), and Delete
// ("delete") waits for the answer (at most a second) before the container
// and the VM go.
func vmTraceMark(id, event string) {
	if !vmTraceOn() {
		return
	}
	now := time.Now().UnixNano()
	vmTraces.Lock()
	vmTraceGet(id).Events[event] = now
	c := vmTraces.clients[id]
	done := vmTraces.guestDone[id]
	if event == "exited" && c != nil && done == nil && os.Getenv(VMTraceGuestEnv) != "" {
		done = make(chan struct{})
		vmTraces.guestDone[id] = done
		go func() {
			defer close(done)
			vmTraceGuest(id, c)
		}()
	}
	vmTraces.Unlock()
	if event == "delete" && done != nil {
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
}

// vmTraceGuest records the agent's Trace (skipped when the agent does not
// answer within a second: an older agent, a dying guest).
func vmTraceGuest(id string, c *agent.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	tr, err := c.Trace(ctx, &agentapi.Empty{})
	if err != nil {
		return
	}
	var ev []GuestEvent
	for _, e := range append(tr.Kernel, tr.Events...) {
		ev = append(ev, GuestEvent{Name: e.Name, MonoNs: e.MonoNs})
	}
	vmTraces.Lock()
	vmTraceGet(id).Guest = ev
	vmTraces.Unlock()
}

// vmTraceBoot records the times vm.Boot measured.
func vmTraceBoot(id string, sb *vm.Sandbox) {
	if !vmTraceOn() || sb == nil {
		return
	}
	vmTraces.Lock()
	defer vmTraces.Unlock()
	t := vmTraceGet(id)
	t.Events["boot"] = sb.StartedAt.UnixNano()
	if !sb.VMMUp.IsZero() {
		t.Events["vmm_up"] = sb.VMMUp.UnixNano()
	}
	t.Events["agent_ready"] = sb.Ready.UnixNano()
	if sb.Agent != nil {
		vmTraces.clients[id] = sb.Agent
	}
	if sb.Version != nil {
		t.GuestBootNs = sb.Version.BootNs
	}
}

// vmTraceFlush appends id's trace to $HULL_VM_TRACE, with the init time
// read from the guest console log, and forgets it.
func vmTraceFlush(id, console string) {
	if !vmTraceOn() {
		return
	}
	vmTraces.Lock()
	t := vmTraces.m[id]
	delete(vmTraces.m, id)
	delete(vmTraces.clients, id)
	delete(vmTraces.guestDone, id)
	vmTraces.Unlock()
	if t == nil {
		return
	}
	t.InitPrintkNs = initPrintkNs(console)
	b, err := json.Marshal(t)
	if err != nil {
		return
	}
	f, err := os.OpenFile(os.Getenv(VMTraceEnv), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	// Several shims append to the same file.
	if unix.Flock(int(f.Fd()), unix.LOCK_EX) == nil {
		defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
	}
	_, _ = f.Write(append(b, '\n'))
}

// initPrintkNs finds "[   0.712345] Run /init as init process" in the
// console log and returns its timestamp.
func initPrintkNs(console string) int64 {
	f, err := os.Open(console)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, "] Run /") || !strings.Contains(l, "as init process") {
			continue
		}
		i, j := strings.IndexByte(l, '['), strings.IndexByte(l, ']')
		if i < 0 || j < i {
			continue
		}
		sec, err := strconv.ParseFloat(strings.TrimSpace(l[i+1:j]), 64)
		if err != nil {
			continue
		}
		return int64(sec * 1e9)
	}
	return 0
}
