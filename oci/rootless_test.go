package oci_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hullproject/hull/internal/testutil"
	"github.com/hullproject/hull/oci"
)

// rootlessUID is the unprivileged user the rootless tests run as.
const rootlessUID = 1000

func TestMain(m *testing.M) {
	// As a child under setpriv, print the rootless spec this user gets.
	if os.Getenv("HULL_OCI_TEST_ROOTLESS_SPEC") != "" {
		s := oci.Example()
		oci.Rootless(s)
		if err := json.NewEncoder(os.Stdout).Encode(s); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// asUser runs name with args as uid/gid rootlessUID, without groups.
func asUser(ctx context.Context, dir string, env []string, name string, args ...string) *exec.Cmd {
	all := append([]string{"--reuid", fmt.Sprint(rootlessUID), "--regid", fmt.Sprint(rootlessUID), "--clear-groups", name}, args...)
	cmd := exec.CommandContext(ctx, "setpriv", all...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// TestRootlessAsUnprivilegedUser builds the rootless spec as an
// unprivileged user (so that the mapping is that user's) and runs it with
// runc as that user: the container sees itself as root, mapped to the
// user.
func TestRootlessAsUnprivilegedUser(t *testing.T) {
	testutil.RequireRoot(t) // to switch to the unprivileged user
	runc, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("needs runc (Debian package runc)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The spec, made by the unprivileged user.
	cmd := asUser(ctx, "/", []string{"HULL_OCI_TEST_ROOTLESS_SPEC=1"}, os.Args[0])
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rootless spec as uid %d: %v", rootlessUID, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	if m := s.Linux.UIDMappings; len(m) != 1 || m[0].HostID != rootlessUID || m[0].ContainerID != 0 || m[0].Size != 1 {
		t.Fatalf("uid mappings %+v, want 0 -> %d", m, rootlessUID)
	}

	// A bundle and a state directory the user can use.
	b := testutil.NewBundle(t)
	s.Root = &specs.Root{Path: "rootfs"}
	s.Process.Terminal = false
	s.Process.Args = []string{"sh", "-c", "id -u; cat /proc/self/uid_map; echo done"}
	b.Spec = &s
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(b.Dir, "state")
	for _, d := range []string{filepath.Dir(b.Dir), b.Dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(state, rootlessUID, rootlessUID); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("hull-rootless-%d", time.Now().UnixNano())
	env := []string{"XDG_RUNTIME_DIR=" + state, "HOME=" + state}
	run := asUser(ctx, b.Dir, env, runc, "--root", state, "run", id)
	var res bytes.Buffer
	run.Stdout, run.Stderr = &res, &res
	err = run.Run()
	_ = asUser(ctx, b.Dir, env, runc, "--root", state, "delete", "--force", id).Run()
	if err != nil {
		t.Fatalf("rootless runc run as uid %d: %v\n%s", rootlessUID, err, res.String())
	}
	got := strings.Join(strings.Fields(res.String()), " ")
	if want := fmt.Sprintf("0 0 %d 1 done", rootlessUID); got != want {
		t.Errorf("container says %q, want %q", got, want)
	}
}
