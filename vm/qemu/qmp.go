package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ErrQMP wraps a QMP error reply or a broken QMP connection.
var ErrQMP = errors.New("qmp")

// qmpClient is a minimal QMP client: the greeting, qmp_capabilities, and
// synchronous commands (one at a time); asynchronous events are skipped.
// It is written here rather than taken from github.com/digitalocean/go-qemu
// because the driver needs three commands, and that module drags in libvirt
// bindings and a code generator for the rest of QMP's schema.
type qmpClient struct {
	mu   sync.Mutex
	conn net.Conn
	rd   *bufio.Reader
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	QMP   json.RawMessage `json:"QMP"`
}

// dialQMP connects to QEMU's QMP socket, polling until it appears or ctx
// ends, and negotiates capabilities.
func dialQMP(ctx context.Context, path string) (*qmpClient, error) {
	var conn net.Conn
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			conn = c
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: connect %s: %w", ErrQMP, path, err)
		case <-time.After(2 * time.Millisecond):
		}
	}
	q := &qmpClient{conn: conn, rd: bufio.NewReader(conn)}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var greet qmpReply
	if err := q.read(&greet); err != nil || greet.QMP == nil {
		conn.Close()
		return nil, fmt.Errorf("%w: no greeting: %v", ErrQMP, err)
	}
	conn.SetDeadline(time.Time{})
	if _, err := q.execute(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *qmpClient) read(r *qmpReply) error {
	line, err := q.rd.ReadBytes('\n')
	if err != nil {
		return err
	}
	*r = qmpReply{}
	return json.Unmarshal(line, r)
}

// execute runs one command and returns its "return" value.
func (q *qmpClient) execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		q.conn.SetDeadline(dl)
	} else {
		q.conn.SetDeadline(time.Now().Add(5 * time.Second))
	}
	defer q.conn.SetDeadline(time.Time{})
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrQMP, cmd, err)
	}
	for {
		var r qmpReply
		if err := q.read(&r); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrQMP, cmd, err)
		}
		if r.Event != "" {
			continue
		}
		if r.Error != nil {
			return nil, fmt.Errorf("%w: %s: %s: %s", ErrQMP, cmd, r.Error.Class, r.Error.Desc)
		}
		return r.Return, nil
	}
}

func (q *qmpClient) close() error { return q.conn.Close() }
