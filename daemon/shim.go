package daemon

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
)

// shimConn is a connection to one container's shim.
type shimConn struct {
	ns      string
	address string
	client  *ttrpc.Client
	task    taskapi.TaskService
}

// ctx adds the namespace header containerd's shims expect.
func (s *shimConn) ctx(ctx context.Context) context.Context {
	return ttrpc.WithMetadata(ctx, ttrpc.MD{"containerd-namespace": []string{s.ns}})
}

func (s *shimConn) close() {
	if s != nil && s.client != nil {
		s.client.Close()
	}
}

// shimLauncher starts shims with the binary protocol.
type shimLauncher struct {
	// address is hulld's gRPC address (the shims' -address), ttrpc the
	// events socket ($TTRPC_ADDRESS), publisher the -publish-binary.
	address, ttrpc, publisher string
}

// findBinary looks for name next to hulld, then on PATH.
func findBinary(name string) (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found next to hulld or on PATH: %w", name, errdefs.ErrNotFound)
	}
	return p, nil
}

func (l *shimLauncher) args(binary, ns, id string, action ...string) *exec.Cmd {
	args := []string{"-namespace", ns, "-id", id, "-address", l.address}
	if l.publisher != "" {
		args = append(args, "-publish-binary", l.publisher)
	}
	cmd := exec.Command(binary, append(args, action...)...)
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+l.ttrpc, "GRPC_ADDRESS="+l.address, "NAMESPACE="+ns, "GOMAXPROCS=2")
	return cmd
}

// start runs `shim start` in bundle and connects to the address it prints.
// Hull's own shim is started one exec shorter: hulld makes the listening
// socket and starts the long-lived shim with it, as its `start` would.
func (l *shimLauncher) start(ctx context.Context, typ, binary, ns, id, bundle string) (*shimConn, error) {
	if typ == hullShimType {
		return l.startHull(ctx, binary, ns, id, bundle)
	}
	cmd := l.args(binary, ns, id, "start")
	cmd.Dir = bundle
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdin = nil
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s start: %v: %s", filepath.Base(binary), err, bytes.TrimSpace(stderr.Bytes()))
	}
	address := strings.TrimSpace(string(out))
	if err := os.WriteFile(filepath.Join(bundle, "address"), []byte(address), 0o600); err != nil {
		return nil, err
	}
	return connectShim(ctx, ns, address)
}

// hullListenFdEnv is the variable with which Hull's shim `start` hands the
// long-lived shim its listening socket as fd 3 (shim/binary.go).
const hullListenFdEnv = "HULL_SHIM_LISTEN_FD"

func (l *shimLauncher) startHull(ctx context.Context, binary, ns, id, bundle string) (*shimConn, error) {
	h := fnv.New128a()
	h.Write([]byte(l.address + "\x00" + ns + "\x00" + id))
	dir := filepath.Join(filepath.Dir(l.ttrpc), "s")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, fmt.Sprintf("%x", h.Sum(nil)))
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("shim socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	lf, err := ln.File()
	ln.Close()
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	defer lf.Close()
	cmd := l.args(binary, ns, id)
	cmd.Dir = bundle
	cmd.Env = append(cmd.Env, hullListenFdEnv+"=3")
	cmd.ExtraFiles = []*os.File{lf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("start %s: %w", filepath.Base(binary), err)
	}
	address := "unix://" + path
	_ = os.WriteFile(filepath.Join(bundle, "shim.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	// The shim lives on after hulld; reap it while hulld runs.
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(filepath.Join(bundle, "address"), []byte(address), 0o600); err != nil {
		return nil, err
	}
	return connectShim(ctx, ns, address)
}

// connectShim dials a shim's ttrpc address.
func connectShim(ctx context.Context, ns, address string) (*shimConn, error) {
	path := strings.TrimPrefix(address, "unix://")
	if !strings.HasPrefix(path, "/") && !strings.HasPrefix(path, "@") {
		return nil, fmt.Errorf("shim address %q: not a unix socket: %w", address, errdefs.ErrInvalidArgument)
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	var conn net.Conn
	var err error
	for i := 0; i < 50; i++ {
		if conn, err = d.DialContext(ctx, "unix", path); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to shim at %s: %v: %w", address, err, errdefs.ErrUnavailable)
	}
	c := ttrpc.NewClient(conn)
	return &shimConn{ns: ns, address: address, client: c, task: taskapi.NewTaskClient(c)}, nil
}

// cleanup runs `shim delete` for a shim that is gone (or never answered):
// it removes what the container left (runtime state, rootfs mounts).
func (l *shimLauncher) cleanup(ctx context.Context, binary, ns, id, bundle string) (*taskapi.DeleteResponse, error) {
	cmd := l.args(binary, ns, id, "-bundle", bundle, "delete")
	cmd.Dir = bundle
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s delete: %v: %s", filepath.Base(binary), err, bytes.TrimSpace(stderr.Bytes()))
	}
	var r taskapi.DeleteResponse
	if err := proto.Unmarshal(out, &r); err != nil {
		return nil, fmt.Errorf("%s delete: bad response: %w", filepath.Base(binary), err)
	}
	return &r, nil
}

// killShim kills a shim by the pid it recorded in bundle (last resort when
// it does not answer Shutdown).
func killShim(bundle string) {
	data, err := os.ReadFile(filepath.Join(bundle, "shim.pid"))
	if err != nil {
		return
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(data)), &pid); err == nil && pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// removeSocket removes a shim socket hulld made (under <state>/s) once its
// shim is gone; shims remove their own on a clean exit.
func (l *shimLauncher) removeSocket(address string) {
	p := strings.TrimPrefix(address, "unix://")
	if filepath.Dir(p) == filepath.Join(filepath.Dir(l.ttrpc), "s") {
		_ = os.Remove(p)
	}
}
