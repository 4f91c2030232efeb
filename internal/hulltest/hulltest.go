// Package hulltest runs real hulld daemons for end-to-end tests and
// benchmarks: it builds hulld, hull and containerd-shim-hull-v2 from this
// checkout (with -race when the test binary has it), starts daemons with
// private --root/--state/--address, runs hull commands against them, and
// pushes the busybox test image to the local registry.
package hulltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hullproject/hull/internal/testimages"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// Binaries builds hulld, hull and the shim into a directory (once per
// process) and links hull-runtime next to them. The directory is left for
// the OS to clean (it lives under os.TempDir, named per process).
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir = filepath.Join(os.TempDir(), fmt.Sprintf("hulltest-bin-%d", os.Getpid()))
		if err := os.MkdirAll(binDir, 0o755); err != nil {
			buildErr = err
			return
		}
		for _, c := range []struct {
			name string
			race bool
		}{{"hulld", raceEnabled}, {"hull", false}, {"containerd-shim-hull-v2", false}} {
			args := []string{"build", "-o", filepath.Join(binDir, c.name)}
			if c.race {
				args = append(args, "-race")
			}
			cmd := exec.Command("go", append(args, "./cmd/"+c.name)...)
			cmd.Dir = root
			if c.name == "containerd-shim-hull-v2" {
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", c.name, err, out)
				return
			}
		}
		rt := os.Getenv("HULL_RUNTIME")
		if rt == "" {
			d := os.Getenv("HULL_BIN")
			if d == "" {
				d = filepath.Join(root, "bin")
			}
			rt = filepath.Join(d, "hull-runtime")
		}
		if _, err := os.Stat(rt); err != nil {
			buildErr = fmt.Errorf("hull-runtime not built (%v): run make build", err)
			return
		}
		_ = os.Remove(filepath.Join(binDir, "hull-runtime"))
		buildErr = os.Symlink(rt, filepath.Join(binDir, "hull-runtime"))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// RequireRoot skips unless running as root (hulld and containers need it).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: hulld runs containers")
	}
}

var (
	pushOnce sync.Once
	pushed   string
	pushErr  error
)

// Busybox pushes the busybox test image to the local registry (once) and
// returns its reference. It skips the test without a registry.
func Busybox(t testing.TB) string {
	t.Helper()
	reg := testimages.Registry(t)
	pushOnce.Do(func() {
		img, err := testimages.Busybox(testimages.Options{})
		if err != nil {
			pushErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pushed, pushErr = testimages.Push(ctx, reg, fmt.Sprintf("hulltest%d/busybox:latest", os.Getpid()), img)
	})
	if pushErr != nil {
		t.Fatal(pushErr)
	}
	return pushed
}

// Daemon is a hulld started by a test.
type Daemon struct {
	t                    testing.TB
	Bin                  string
	Dir                  string // holds root/, state/, the socket and the log
	Root, State, Address string
	Config               string // extra TOML, written to Dir/hulld.toml
	*running                    // shared by the copies For makes
}

type running struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// NewDaemon prepares (does not start) a daemon with private directories.
func NewDaemon(t testing.TB) *Daemon {
	t.Helper()
	bin := Binaries(t)
	// Short paths: unix socket names are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "hd")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{running: &running{}, t: t, Bin: bin, Dir: dir, Root: filepath.Join(dir, "root"), State: filepath.Join(dir, "state"), Address: filepath.Join(dir, "hulld.sock")}
	t.Cleanup(d.cleanup)
	return d
}

// Start starts hulld and waits for its socket.
func (d *Daemon) Start() {
	d.t.Helper()
	args := []string{"--root", d.Root, "--state", d.State, "--address", d.Address}
	cfg := d.Config
	if !strings.Contains(cfg, "[network]") {
		cfg += d.privateNetwork()
	}
	p := filepath.Join(d.Dir, "hulld.toml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		d.t.Fatal(err)
	}
	args = append(args, "--config", p)
	var err error
	if d.log, err = os.OpenFile(filepath.Join(d.Dir, "hulld.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
		d.t.Fatal(err)
	}
	d.cmd = exec.Command(filepath.Join(d.Bin, "hulld"), args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.Env = append(os.Environ(), "PATH="+d.Bin+":"+os.Getenv("PATH"))
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, code := d.Hull("info"); code == 0 {
			return
		}
		select {
		case <-d.done:
			d.t.Fatalf("hulld exited at start:\n%s", d.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
	d.t.Fatalf("hulld did not answer within 60s:\n%s", d.Log())
}

// privateNetwork is the [network] table a test daemon gets unless its
// Config has one: its own conflist directory, bridge and subnet, so test
// daemons running side by side never share a bridge while each keeps its
// own IPAM state (which would hand out the same addresses twice).
func (d *Daemon) privateNetwork() string {
	h := fnv.New32a()
	h.Write([]byte(d.Dir))
	n := h.Sum32()
	return fmt.Sprintf("\n[network]\nconf_dir = %q\nbridge = %q\nsubnet = \"10.%d.%d.0/24\"\n",
		filepath.Join(d.Dir, "net.d"), d.Bridge(), 128+n%64, (n/64)%256)
}

// Bridge is the name of the private bridge of a test daemon (see
// privateNetwork); the bridge plugin creates it, cleanup deletes it.
func (d *Daemon) Bridge() string {
	h := fnv.New32a()
	h.Write([]byte(d.Dir))
	return fmt.Sprintf("hb%08x", h.Sum32())
}

// Log returns the daemon's log so far.
func (d *Daemon) Log() string {
	data, _ := os.ReadFile(filepath.Join(d.Dir, "hulld.log"))
	return string(data)
}

// Stop stops hulld with SIGTERM (containers keep running).
func (d *Daemon) Stop() { d.signal(syscall.SIGTERM) }

// Kill kills hulld with SIGKILL, as a crash would.
func (d *Daemon) Kill() { d.signal(syscall.SIGKILL) }

func (d *Daemon) signal(sig syscall.Signal) {
	d.t.Helper()
	if d.cmd == nil || d.done == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("hulld did not stop on %v", sig)
	}
	if d.log != nil {
		d.log.Close()
	}
}

// For returns the daemon with its helpers reporting to t (a subtest).
func (d *Daemon) For(t testing.TB) *Daemon {
	c := *d
	c.t = t
	return &c
}

// Pid is hulld's pid.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Hull runs the CLI against this daemon: stdout, stderr, exit code.
func (d *Daemon) Hull(args ...string) (string, string, int) {
	return d.HullIn(nil, args...)
}

// HullIn is Hull with stdin.
func (d *Daemon) HullIn(stdin []byte, args ...string) (string, string, int) {
	cmd := d.Command(args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

// Command is the exec.Cmd of a hull invocation against this daemon.
func (d *Daemon) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(d.Bin, "hull"), append([]string{"--address", d.Address}, args...)...)
	cmd.Env = append(os.Environ(), "HULL_NAMESPACE=", "HULL_ADDRESS=")
	return cmd
}

// MustHull runs hull and fails the test unless it exits 0.
func (d *Daemon) MustHull(args ...string) string {
	d.t.Helper()
	out, errs, code := d.Hull(args...)
	if code != 0 {
		d.t.Fatalf("hull %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// cleanup force-removes every container of every namespace, stops the
// daemon and removes its directories.
func (d *Daemon) cleanup() {
	if d.cmd != nil {
		select {
		case <-d.done:
			// Restart it to clean up what it left.
			if d.t.Failed() {
				d.t.Logf("hulld log:\n%s", d.Log())
			}
			d.Start()
		default:
		}
		if d.t.Failed() {
			d.t.Logf("hulld log:\n%s", d.Log())
		}
		nss, _, _ := d.Hull("ns", "ls")
		for _, ns := range strings.Fields(nss) {
			out, _, _ := d.Hull("-n", ns, "c", "ls", "--format", "json")
			for _, id := range jsonIDs(out) {
				_, _, _ = d.Hull("-n", ns, "c", "rm", "-f", id)
			}
		}
		d.Stop()
		if strings.Contains(d.Log(), "WARNING: DATA RACE") {
			d.t.Errorf("hulld (built with -race) found a data race:\n%s", d.Log())
		}
	}
	// The private bridge (CNI's bridge plugin never removes bridges).
	if !strings.Contains(d.Config, "[network]") {
		_ = exec.Command("ip", "link", "del", d.Bridge()).Run()
	}
	// Mounts a shim may have left, then the directories.
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && strings.HasPrefix(f[4], d.Dir+"/") {
				_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	}
	_ = os.RemoveAll(d.Dir)
}

func jsonIDs(s string) []string {
	var ids []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, `"id":`) {
			v := strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, `"id":`)), `",`)
			ids = append(ids, v)
		}
	}
	return ids
}

// Cleanup removes the binaries Binaries built (call it from TestMain, or
// b.Cleanup, once the daemons are gone).
// A later Binaries builds them again.
func Cleanup() {
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	buildOnce, binDir, buildErr = sync.Once{}, "", nil
}
