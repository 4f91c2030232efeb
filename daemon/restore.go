package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasktypes "github.com/containerd/containerd/api/types/task"
)

// restore finds the tasks of a previous hulld in <state>/tasks and
// reconnects to their shims. Processes that exited while hulld was down
// are reported now, with their codes.
func (ts *tasks) restore(ctx context.Context) {
	root := filepath.Join(ts.d.cfg.State, "tasks")
	nss, _ := os.ReadDir(root)
	for _, nsd := range nss {
		ids, _ := os.ReadDir(filepath.Join(root, nsd.Name()))
		for _, idd := range ids {
			ns, id := nsd.Name(), idd.Name()
			if err := ts.restoreOne(ctx, ns, id); err != nil {
				slog.Warn("restore task", "ns", ns, "id", id, "err", err)
			}
		}
	}
}

func (ts *tasks) restoreOne(ctx context.Context, ns, id string) error {
	bundle := ts.bundle(ns, id)
	data, err := os.ReadFile(filepath.Join(bundle, "task.json"))
	if err != nil {
		// A create that never finished: nothing to reconnect to.
		ts.removeBundle(bundle)
		return err
	}
	t := &task{ns: ns, id: id, bundle: bundle, execs: map[string]*proc{}}
	if err := json.Unmarshal(data, &t.file); err != nil {
		return err
	}
	t.grace = graceFor(t.file.Type)
	st := StatusCreated
	if t.file.Started {
		st = StatusRunning
	}
	t.init = &proc{terminal: t.file.Terminal, pid: t.file.Pid, exited: make(chan struct{}), status: st}
	out, errp, in := stdioPaths(bundle, "", t.file.Terminal, t.file.Stdin)
	logw, err := ts.openLog(ns, id)
	if err != nil {
		return err
	}
	if t.init.pump, err = openPump(out, errp, in, logw); err != nil {
		logw.Close()
		return err
	}
	t.shimLog, _ = openShimLog(bundle)
	ts.mu.Lock()
	ts.m[taskKey(ns, id)] = t
	ts.mu.Unlock()
	if _, err := ts.d.store.get(ns, id); err != nil {
		// Its container was removed while the task's cleanup ran: finish it.
		sc, _ := connectShimOnce(ctx, ns, t.file.Address)
		t.mu.Lock()
		t.shim, t.dead = sc, sc == nil
		t.mu.Unlock()
		if t.dead {
			ts.shimDied(t)
		}
		ts.exited(t, t.init, t.file.ExitStatus, t.file.ExitedAt, false)
		finish, _, err := ts.deleteLater(ctx, ns, id)
		if err != nil {
			return err
		}
		finish()
		return nil
	}

	if t.file.Exited {
		// Already recorded before the restart.
		ts.exited(t, t.init, t.file.ExitStatus, t.file.ExitedAt, false)
		sc, err := connectShimOnce(ctx, ns, t.file.Address)
		t.mu.Lock()
		t.shim, t.dead = sc, err != nil
		t.mu.Unlock()
		return nil
	}
	sc, err := connectShimOnce(ctx, ns, t.file.Address)
	if err != nil {
		slog.Info("shim gone while hulld was down", "ns", ns, "id", id)
		status, at := ts.shimDied(t)
		ts.exited(t, t.init, status, at, true)
		return nil
	}
	t.mu.Lock()
	t.shim = sc
	t.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	r, err := sc.task.State(sc.ctx(sctx), &taskapi.StateRequest{ID: id})
	cancel()
	if err != nil {
		return err
	}
	switch r.Status {
	case tasktypes.Status_STOPPED:
		slog.Info("task exited while hulld was down", "ns", ns, "id", id, "status", r.ExitStatus)
		ts.exited(t, t.init, r.ExitStatus, r.ExitedAt.AsTime(), true)
	case tasktypes.Status_CREATED:
		go ts.watch(t, t.init)
	default:
		t.init.mu.Lock()
		t.init.status, t.init.pid = StatusRunning, r.Pid
		t.init.mu.Unlock()
		go ts.watch(t, t.init)
	}
	ts.restoreExecs(ctx, t)
	return nil
}

// restoreExecs reattaches the exec processes of a task whose shim answers.
func (ts *tasks) restoreExecs(ctx context.Context, t *task) {
	t.mu.Lock()
	execs := make(map[string]execFile, len(t.file.Execs))
	for k, v := range t.file.Execs {
		execs[k] = v
	}
	t.mu.Unlock()
	for execID, e := range execs {
		p := &proc{execID: execID, terminal: e.Terminal, exited: make(chan struct{}), status: StatusCreated}
		out, errp, in := stdioPaths(t.bundle, execID, e.Terminal, e.Stdin)
		pp, err := openPump(out, errp, in, nil)
		if err != nil {
			slog.Warn("restore exec", "id", t.id, "exec", execID, "err", err)
			continue
		}
		p.pump = pp
		t.mu.Lock()
		t.execs[execID] = p
		t.mu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r, err := t.shim.task.State(t.shim.ctx(sctx), &taskapi.StateRequest{ID: t.id, ExecID: execID})
		cancel()
		switch {
		case err != nil:
			// The shim no longer knows it.
			ts.exited(t, p, 128+9, time.Now(), false)
		case r.Status == tasktypes.Status_STOPPED:
			p.pid = r.Pid
			ts.exited(t, p, r.ExitStatus, r.ExitedAt.AsTime(), true)
		case r.Status == tasktypes.Status_CREATED:
			go ts.watchWhenStarted(t, p)
		default:
			p.mu.Lock()
			p.status, p.pid = StatusRunning, r.Pid
			p.mu.Unlock()
			go ts.watch(t, p)
		}
	}
}

// connectShimOnce dials a shim without retrying.
func connectShimOnce(ctx context.Context, ns, address string) (*shimConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sc, err := connectShim(ctx, ns, address)
	if err != nil {
		return nil, err
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	defer pcancel()
	if _, err := sc.task.Connect(sc.ctx(pctx), &taskapi.ConnectRequest{}); err != nil {
		sc.close()
		return nil, err
	}
	return sc, nil
}
