package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hullproject/hull/config"
)

func TestRuntimeOptions(t *testing.T) {
	a, err := runtimeOptions(config.Runtime{Type: "io.containerd.runc.v2", Options: map[string]any{"BinaryName": "crun", "SystemdCgroup": true, "root": "/r"}})
	if err != nil {
		t.Fatal(err)
	}
	if a.TypeUrl != "containerd.runc.v1.Options" {
		t.Fatalf("type url %q", a.TypeUrl)
	}
	var ro runcoptions.Options
	if err := proto.Unmarshal(a.Value, &ro); err != nil || ro.BinaryName != "crun" || !ro.SystemdCgroup || ro.Root != "/r" {
		t.Fatalf("runc options %+v, %v", &ro, err)
	}
	if _, err := runtimeOptions(config.Runtime{Type: "io.containerd.runc.v2", Options: map[string]any{"Nope": 1}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("unknown runc option: %v", err)
	}
	a, err = runtimeOptions(config.Runtime{Type: "io.containerd.hull.v2", Options: map[string]any{"binary_name": "runc", "mode": "native"}})
	if err != nil {
		t.Fatal(err)
	}
	var rto runtimeoptions.Options
	if err := proto.Unmarshal(a.Value, &rto); err != nil || !strings.Contains(string(rto.ConfigBody), "binary_name = 'runc'") {
		t.Fatalf("hull options %q, %v", rto.ConfigBody, err)
	}
	if a, err := runtimeOptions(config.Runtime{Type: "io.containerd.hull.v2"}); a != nil || err != nil {
		t.Fatalf("no options: %v %v", a, err)
	}
	for in, want := range map[string]string{"BinaryName": "binary_name", "IoUid": "io_uid", "root": "root"} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q", in, got)
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "web-1", "x.y_z", strings.Repeat("a", 76)} {
		if err := validateID("container", id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", "-a", "a/b", "a b", "..", strings.Repeat("a", 77)} {
		if err := validateID("container", id); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v", id, err)
		}
	}
}

func TestFromEnvelope(t *testing.T) {
	a, _ := anypb.New(&eventstypes.TaskExit{ContainerID: "c", ID: "e1", Pid: 7, ExitStatus: 3})
	ev := fromEnvelope("ns", "/tasks/exit", time.Now(), a)
	if ev.ContainerId != "c" || ev.ExecId != "e1" || ev.Pid != 7 || ev.ExitStatus != 3 || ev.Namespace != "ns" {
		t.Fatalf("%+v", ev)
	}
	// containerd 1.6 style type URLs (no prefix) decode too.
	a.TypeUrl = strings.TrimPrefix(a.TypeUrl, "type.googleapis.com/")
	if ev := fromEnvelope("ns", "/tasks/exit", time.Now(), a); ev.ContainerId != "c" {
		t.Fatalf("bare type url: %+v", ev)
	}
}

func TestStore(t *testing.T) {
	s, err := openStore(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	c := Container{ID: "a", Image: "img", Runtime: "native", Spec: []byte(`{}`), CreatedAt: time.Now()}
	if err := s.create("ns1", c); err != nil {
		t.Fatal(err)
	}
	if err := s.create("ns1", c); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := s.create("ns2", c); err != nil {
		t.Fatalf("same id in another namespace: %v", err)
	}
	if got, err := s.get("ns1", "a"); err != nil || got.Image != "img" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := s.get("ns3", "a"); !errdefs.IsNotFound(err) {
		t.Fatalf("get from another ns: %v", err)
	}
	if n := s.count("ns1"); n != 1 {
		t.Fatalf("count %d", n)
	}
	if err := s.delete("ns1", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.delete("ns1", "a"); !errdefs.IsNotFound(err) {
		t.Fatalf("delete twice: %v", err)
	}
	if l, _ := s.list("ns2"); len(l) != 1 {
		t.Fatalf("list ns2: %v", l)
	}
}

// TestPump: output reaches subscribers and the log in order; drain after
// the writer is done gets what is left; stdin reaches the fifo.
func TestPump(t *testing.T) {
	dir := t.TempDir()
	out, errp, in := stdioPaths(dir, "", false, true)
	if err := makeFifos(out, errp, in); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "log")
	logw, _ := os.Create(logPath)
	p, err := openPump(out, errp, in, logw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := p.subscribe(ctx)
	// The "process": writes to stdout and stderr, reads stdin.
	w1, _ := os.OpenFile(out, os.O_WRONLY, 0)
	w2, _ := os.OpenFile(errp, os.O_WRONLY, 0)
	r, _ := os.OpenFile(in, os.O_RDONLY, 0)
	w1.WriteString("one\n")
	w2.WriteString("err\n")
	w1.WriteString("two\n")
	w1.Close()
	w2.Close()
	if err := p.writeStdin([]byte("input")); err != nil {
		t.Fatal(err)
	}
	p.closeStdin()
	buf := make([]byte, 16)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "input" {
		t.Fatalf("stdin: %q", buf[:n])
	}
	p.drain(10 * time.Millisecond)
	var stdout, stderr string
	timeout := time.After(5 * time.Second)
loop:
	for {
		select {
		case c := <-sub.ch:
			if c.stream == streamStdout {
				stdout += string(c.data)
			} else {
				stderr += string(c.data)
			}
		case <-p.done:
			for {
				select {
				case c := <-sub.ch:
					if c.stream == streamStdout {
						stdout += string(c.data)
					} else {
						stderr += string(c.data)
					}
					continue
				default:
				}
				break loop
			}
		case <-timeout:
			t.Fatal("pump did not finish after drain")
		}
	}
	if stdout != "one\ntwo\n" || stderr != "err\n" {
		t.Fatalf("stdout %q stderr %q", stdout, stderr)
	}
	p.close()
	data, _ := os.ReadFile(logPath)
	if !strings.Contains(string(data), "one\n") || !strings.Contains(string(data), "err\n") || len(data) != 12 {
		t.Fatalf("log %q", data)
	}
}
