package vmm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/hullproject/hull/vm"
)

func TestClient(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	f := &FakeAPI{Respond: func(r Request) (int, string) {
		switch r.Key() {
		case "GET /api/v1/vm.info":
			return 200, `{"state":"Running","config":{"cpus":{"boot_vcpus":2}}}`
		case "PUT /api/v1/drives/rootfs":
			return 400, `{"fault_message":"The drive path is invalid: No such file or directory"}`
		case "PUT /api/v1/vm.boot":
			return 500, `["Error booting VM","VM is not created"]`
		case "PUT /api/v1/vm.pause":
			return 405, "VM is not running\n"
		case "PUT /api/v1/vm.resume":
			return 404, `"VM not created"`
		}
		return 0, ""
	}}
	if err := ServeFakeAPI(sock, f); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &Client{Socket: sock, Prefix: "/api/v1"}
	ctx := context.Background()

	var info struct {
		State string `json:"state"`
	}
	if err := c.Do(ctx, "GET", "/vm.info", nil, &info); err != nil || info.State != "Running" {
		t.Fatalf("vm.info: %+v, %v", info, err)
	}
	// Two descriptors ride with the request.
	r1, w1, _ := os.Pipe()
	defer r1.Close()
	defer w1.Close()
	if err := c.Do(ctx, "PUT", "/vm.add-net", map[string]any{"mac": "02:00:00:00:00:01"}, nil, r1, w1); err != nil {
		t.Fatal(err)
	}
	reqs := f.Requests()
	if got := reqs[len(reqs)-1]; got.Key() != "PUT /api/v1/vm.add-net" || got.FDs != 2 || !strings.Contains(string(got.Body), `"mac":"02:00:00:00:00:01"`) {
		t.Errorf("add-net recorded as %+v (body %s)", got, got.Body)
	}

	for _, tc := range []struct {
		method, endpoint string
		kind             error
		want             string
	}{
		{"PUT", "/drives/rootfs", errdefs.ErrInvalidArgument, "PUT /drives/rootfs: 400 Bad Request: The drive path is invalid: No such file or directory"},
		{"PUT", "/vm.boot", errdefs.ErrUnknown, "PUT /vm.boot: 500 Internal Server Error: Error booting VM: VM is not created"},
		{"PUT", "/vm.pause", errdefs.ErrFailedPrecondition, "PUT /vm.pause: 405 Method Not Allowed: VM is not running"},
		{"PUT", "/vm.resume", errdefs.ErrNotFound, "PUT /vm.resume: 404 Not Found: VM not created"},
	} {
		err := c.Do(ctx, tc.method, tc.endpoint, struct{}{}, nil)
		var ae *APIError
		if !errors.As(err, &ae) || !errors.Is(err, ErrAPI) || !errors.Is(err, tc.kind) || err.Error() != tc.want {
			t.Errorf("%s %s: err = %v, want %q (ErrAPI, %v)", tc.method, tc.endpoint, err, tc.want, tc.kind)
		}
	}

	// No VMM on the socket: the error names the endpoint and the socket.
	bad := &Client{Socket: filepath.Join(dir, "none.sock")}
	if err := bad.Do(ctx, "PUT", "/actions", nil, nil); err == nil || !strings.Contains(err.Error(), "PUT /actions") || !strings.Contains(err.Error(), "none.sock") {
		t.Errorf("err = %v, want one naming the endpoint and the socket", err)
	}
}

func TestFaultMessage(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"fault_message":"bad"}`, "bad"},
		{`"text"`, "text"},
		{`["a","b"]`, "a: b"},
		{"plain words\n", "plain words"},
		{"", ""},
	} {
		if got := faultMessage([]byte(tc.body)); got != tc.want {
			t.Errorf("faultMessage(%q) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

func startSh(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start(Spec{Path: "/bin/sh", Args: []string{"-c", script}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMachineEnds(t *testing.T) {
	for _, tc := range []struct {
		name, script, console string
		stop                  bool
		want                  error
	}{
		{"power off", "exit 0", "", false, nil},
		{"crash", "echo boom >&2; exit 3", "", false, vm.ErrVMExited},
		{"panic seen by the watch", "sleep 30", "Kernel panic - not syncing: Attempted to kill init!\n", false, vm.ErrGuestPanic},
		{"stopped", "sleep 30", "", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			con := filepath.Join(dir, "console.log")
			if err := os.WriteFile(con, []byte("boot\n"+tc.console), 0o644); err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(dir, "x.sock")
			os.WriteFile(sock, nil, 0o644)
			m := NewMachine(con, nil)
			m.RemoveAtEnd(sock)
			if err := m.Wait(); !errors.Is(err, vm.ErrNotStarted) {
				t.Fatalf("Wait before Run: %v", err)
			}
			m.Run(startSh(t, tc.script))
			if m.Pid() == 0 {
				t.Error("no pid")
			}
			if tc.stop {
				m.Kill()
			}
			err := m.Wait()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Wait = %v, want %v", err, tc.want)
			}
			if tc.name == "crash" && !strings.Contains(err.Error(), "boom") {
				t.Errorf("error %q lacks the VMM's stderr", err)
			}
			if _, err := os.Stat(sock); !os.IsNotExist(err) {
				t.Errorf("%s left behind", sock)
			}
		})
	}
}

func TestMachineKillOnDone(t *testing.T) {
	m := NewMachine(filepath.Join(t.TempDir(), "console.log"), nil)
	helper := startSh(t, "sleep 30")
	m.AddHelper(helper)
	m.Run(startSh(t, "sleep 30"))
	ctx, cancel := context.WithCancel(context.Background())
	m.KillOnDone(ctx)
	cancel()
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the VM outlived its context")
	}
	if err := m.Wait(); err != nil {
		t.Errorf("Wait after the context ended: %v", err)
	}
	if syscall.Kill(helper.Pid(), 0) == nil {
		t.Error("helper still running")
	}
}

func TestStartVirtiofsd(t *testing.T) {
	if _, err := os.Stat(DefaultVirtiofsd); err != nil {
		t.Skipf("virtiofsd not installed (%s): %v", DefaultVirtiofsd, err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	sock := filepath.Join(dir, "fs.sock")
	p, err := StartVirtiofsd(context.Background(), DefaultVirtiofsd, vm.Share{Tag: "t", Source: src}, sock)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMachine(filepath.Join(dir, "console.log"), nil)
	m.AddHelper(p)
	m.RemoveAtEnd(sock)
	m.Cleanup()
	if syscall.Kill(-p.Pid(), 0) == nil {
		t.Error("virtiofsd group still there")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Error("socket left")
	}
	// Bad input: a missing binary, a missing source.
	if _, err := StartVirtiofsd(context.Background(), filepath.Join(dir, "nope"), vm.Share{Tag: "t", Source: src}, sock); !errors.Is(err, vm.ErrHypervisorMissing) {
		t.Errorf("missing virtiofsd: %v", err)
	}
	if _, err := StartVirtiofsd(context.Background(), DefaultVirtiofsd, vm.Share{Tag: "t", Source: filepath.Join(dir, "gone")}, sock); err == nil || !strings.Contains(err.Error(), "virtiofsd for \"t\"") {
		t.Errorf("missing source: %v", err)
	}
}

func TestStartInNetNS(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	name := "hull-vmmtest-" + filepath.Base(t.TempDir())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	out := filepath.Join(t.TempDir(), "out")
	f, _ := os.Create(out)
	p, err := Start(Spec{Path: "/bin/sh", Args: []string{"-c", "readlink /proc/self/ns/net"}, Stdout: f, NetNS: "/run/netns/" + name})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	st, err := os.Stat("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("net:[%d]", st.Sys().(*syscall.Stat_t).Ino)
	got, _ := os.ReadFile(out)
	self, _ := os.Readlink("/proc/self/ns/net")
	if strings.TrimSpace(string(got)) != want {
		t.Errorf("child in netns %s, want %s", got, want)
	}
	// This goroutine's thread is back in its own namespace.
	if now, _ := os.Readlink("/proc/thread-self/ns/net"); now != self {
		t.Errorf("thread left in netns %s", now)
	}
}

// TestStartVirtiofsdBinds: a share's binds are mounted in virtiofsd's own
// mount namespace, not on the host, and go with it.
func TestStartVirtiofsdBinds(t *testing.T) {
	if _, err := os.Stat(DefaultVirtiofsd); err != nil {
		t.Skipf("virtiofsd not installed (%s): %v", DefaultVirtiofsd, err)
	}
	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := t.TempDir()
	src, vol := filepath.Join(dir, "src"), filepath.Join(dir, "vol")
	os.MkdirAll(filepath.Join(src, "data"), 0o755)
	os.Mkdir(vol, 0o755)
	os.WriteFile(filepath.Join(vol, "f"), []byte("x"), 0o644)
	sock := filepath.Join(dir, "fs.sock")
	p, err := StartVirtiofsd(context.Background(), DefaultVirtiofsd,
		vm.Share{Tag: "t", Source: src, Binds: []vm.Bind{{Source: vol, Target: "data", ReadOnly: true}}}, sock)
	if err != nil {
		t.Fatal(err)
	}
	mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", p.Pid()))
	target := filepath.Join(src, "data")
	if !strings.Contains(string(mi), " "+target+" ") {
		t.Errorf("bind %s not in virtiofsd's mount table", target)
	}
	host, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(host), " "+target+" ") {
		t.Errorf("bind %s leaked into the host's mount table", target)
	}
	p.Kill()
	p.waitGroupGone()
	// A bad bind fails the start, naming it.
	_, err = StartVirtiofsd(context.Background(), DefaultVirtiofsd,
		vm.Share{Tag: "t", Source: src, Binds: []vm.Bind{{Source: filepath.Join(dir, "missing"), Target: "data"}}}, sock)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("bad bind: %v", err)
	}
}
