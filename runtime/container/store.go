package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where container state lives unless --root says otherwise.
const DefaultRoot = "/run/hull-runtime"

const (
	stateFile = "state.json"
	fifoFile  = "exec.fifo"
)

// ValidateID checks that id is usable as a container id (and a directory
// name): ASCII letters, digits, and _ + - . only.
func ValidateID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 1024 || strings.IndexFunc(id, notIDRune) >= 0 {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	return nil
}

// notIDRune is true for a rune a container id may not hold (the id's
// pattern was ^[\w+\-.]+$; checked by hand, as a regexp compiled at every
// runtime start costs more than all the checks).
func notIDRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	case r == '_' || r == '+' || r == '-' || r == '.':
		return false
	}
	return true
}

// Record is what the runtime persists about one container, in
// <root>/<id>/state.json, written atomically (temp file + rename).
type Record struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Pid         int               `json:"pid"`
	PidStart    uint64            `json:"pidStart"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Creating    bool              `json:"creating,omitempty"`
	Paused      bool              `json:"paused,omitempty"`
	// CgroupPath is the cgroupsPath the container's manager was made with.
	CgroupPath string `json:"cgroupPath,omitempty"`
	// Cgroup is the cgroup manager's own saved state.
	Cgroup json.RawMessage `json:"cgroup,omitempty"`
	// Spec is saved as RawSpec ("spec"): the bundle's config.json bytes
	// at create, encoded once otherwise. Spec does not change after
	// create.
	Spec    *specs.Spec     `json:"-"`
	RawSpec json.RawMessage `json:"spec,omitempty"`
}

// Handle is one container's state directory, locked (flock) for as long
// as the handle is open, so concurrent CLI calls on one id serialise.
type Handle struct {
	Dir    string
	Record Record
	lock   *os.File
	// partialSpec: Record.Spec holds only the version and the hooks.
	partialSpec bool
}

// Close releases the lock.
func (h *Handle) Close() error {
	if h == nil || h.lock == nil {
		return nil
	}
	err := h.lock.Close()
	h.lock = nil
	return err
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}

// newHandle makes the state directory of a new container; it fails with
// ErrExist when the id is taken.
func newHandle(root, id string) (*Handle, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("create root %s: %w", root, err)
	}
	dir := filepath.Join(root, id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("container %q: %w", id, ErrExist)
		}
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	l, err := lockDir(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Handle{Dir: dir, lock: l, Record: Record{ID: id, Creating: true}}, nil
}

// Load opens and locks the state of container id under root.
func Load(root, id string) (*Handle, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	l, err := lockDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
		}
		return nil, err
	}
	h := &Handle{Dir: dir, lock: l}
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		l.Close()
		if errors.Is(err, fs.ErrNotExist) {
			// Removed while we waited for the lock, or still being
			// created by a process that died before saving.
			return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
		}
		return nil, err
	}
	if err := json.Unmarshal(data, &h.Record); err != nil {
		l.Close()
		return nil, fmt.Errorf("container %q: corrupt state: %w", id, err)
	}
	if len(h.Record.RawSpec) > 0 && string(h.Record.RawSpec) != "null" {
		// Only what the lifecycle operations read: decoding the whole
		// spec cold costs a short-lived CLI call about half a
		// millisecond. FullSpec has the rest.
		var part struct {
			Version string       `json:"ociVersion"`
			Hooks   *specs.Hooks `json:"hooks,omitempty"`
		}
		if err := json.Unmarshal(h.Record.RawSpec, &part); err != nil {
			l.Close()
			return nil, fmt.Errorf("container %q: corrupt state: spec: %w", id, err)
		}
		h.Record.Spec = &specs.Spec{Version: part.Version, Hooks: part.Hooks}
		h.partialSpec = true
	}
	return h, nil
}

// FullSpec is the container's whole spec (Load keeps only the version and
// the hooks in Record.Spec).
func (h *Handle) FullSpec() (*specs.Spec, error) {
	if !h.partialSpec {
		return h.Record.Spec, nil
	}
	s := new(specs.Spec)
	if err := json.Unmarshal(h.Record.RawSpec, s); err != nil {
		return nil, fmt.Errorf("container %q: corrupt state: spec: %w", h.Record.ID, err)
	}
	h.Record.Spec, h.partialSpec = s, false
	return s, nil
}

// Save writes the record atomically.
func (h *Handle) Save() error {
	if h.Record.RawSpec == nil && h.Record.Spec != nil {
		b, err := json.Marshal(h.Record.Spec)
		if err != nil {
			return err
		}
		h.Record.RawSpec = b
	}
	// The spec's bytes are appended as they are: as a RawMessage field
	// encoding/json would scan and compact them on every save (twice per
	// create). They are valid JSON: config.json's bytes, which create has
	// decoded whole (json.Unmarshal checks all of its input first), or
	// this package's own encoding above.
	rec := h.Record
	rec.RawSpec = nil
	data, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	if len(h.Record.RawSpec) > 0 {
		data = append(append(append(data[:len(data)-1], `,"spec":`...), h.Record.RawSpec...), '}')
	}
	tmp := filepath.Join(h.Dir, "."+stateFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := replaceState(tmp, filepath.Join(h.Dir, stateFile)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// replaceState puts the new state file tmp in place of dst, atomically for
// readers. A second save swaps the two (renameat2 RENAME_EXCHANGE) and
// unlinks the old one rather than renaming over it: on ext4 a rename over
// a file starts the new file's writeback at once (auto_da_alloc), and the
// delete's unlink of it then waits for that I/O, ~0.2-1.7 ms of every
// `run` with its root on disk (tmpfs, the default /run, has neither cost).
// A first save, or a filesystem without RENAME_EXCHANGE, renames.
func replaceState(tmp, dst string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if err == nil {
		// tmp holds the previous state now.
		if err := unix.Unlink(tmp); err != nil && err != unix.ENOENT {
			return err
		}
		return nil
	}
	if err != unix.ENOENT && err != unix.EINVAL && err != unix.ENOSYS {
		return err
	}
	return os.Rename(tmp, dst)
}

// remove deletes the state directory and releases the lock. The files a
// container directory holds are unlinked by name (three syscalls), and
// os.RemoveAll only cleans up what else is there.
func (h *Handle) remove() error {
	_ = unix.Unlink(filepath.Join(h.Dir, stateFile))
	err := unix.Rmdir(h.Dir)
	if err != nil && err != unix.ENOENT {
		err = os.RemoveAll(h.Dir)
	} else {
		err = nil
	}
	h.Close()
	return err
}

// List returns the ids of the containers under root, sorted.
func List(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && ValidateID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// procStart returns the start time (clock ticks since boot) of pid and
// whether it is a zombie.
func procStart(pid int) (start uint64, zombie bool, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, false, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z" || f[0] == "X", err
}

// alive reports whether the container's init process still runs (and is
// the same process: pids are reused).
func (r *Record) alive() bool {
	if r.Pid <= 0 {
		return false
	}
	start, zombie, err := procStart(r.Pid)
	return err == nil && !zombie && start == r.PidStart
}

// Status derives the container's state from the record and the host.
func (h *Handle) Status() Status {
	r := &h.Record
	if r.Creating {
		if r.alive() {
			return Creating
		}
		return Stopped
	}
	if !r.alive() {
		return Stopped
	}
	if _, err := os.Lstat(filepath.Join(h.Dir, fifoFile)); err == nil {
		return Created
	}
	if r.Paused {
		return Paused
	}
	return Running
}

// State is the runtime-spec state document as `runc state` prints it
// (runc's field order, plus its owner field).
type State struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      Status            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// State returns the container's state document.
func (h *Handle) State() State {
	st := h.Status()
	pid := h.Record.Pid
	if st == Stopped {
		pid = 0
	}
	v := specs.Version
	if h.Record.Spec != nil && h.Record.Spec.Version != "" {
		v = h.Record.Spec.Version
	}
	return State{
		OCIVersion:  v,
		ID:          h.Record.ID,
		Pid:         pid,
		Status:      st,
		Bundle:      h.Record.Bundle,
		Rootfs:      h.Record.Rootfs,
		Created:     h.Record.Created,
		Annotations: h.Record.Annotations,
	}
}

// SpecState is the state given to hooks on stdin (runtime-spec State).
func (h *Handle) SpecState(status Status) specs.State {
	pid := h.Record.Pid
	if status == Stopped {
		pid = 0
	}
	return specs.State{
		Version:     specs.Version,
		ID:          h.Record.ID,
		Status:      specs.ContainerState(status),
		Pid:         pid,
		Bundle:      h.Record.Bundle,
		Annotations: h.Record.Annotations,
	}
}
