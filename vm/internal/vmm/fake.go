package vmm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// FakeAPI is a VMM API double for the drivers' tests: it serves HTTP on a
// unix socket, records every request (with the number of file descriptors
// that came with it) and answers through Respond (204 with no body when
// Respond is nil or returns status 0).
type FakeAPI struct {
	Respond func(r Request) (status int, body string)
	// OnRequest, when set, runs after a request was answered.
	OnRequest func(r Request)

	l    *net.UnixListener
	mu   sync.Mutex
	reqs []Request
	wg   sync.WaitGroup
}

// Request is one recorded request.
type Request struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Body   json.RawMessage `json:"body,omitempty"`
	FDs    int             `json:"fds,omitempty"`
}

// Key is "METHOD /path".
func (r Request) Key() string { return r.Method + " " + r.Path }

// ServeFakeAPI listens on socket and serves f until Close.
func ServeFakeAPI(socket string, f *FakeAPI) error {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return err
	}
	f.l = l
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
			}()
		}
	}()
	return nil
}

// Close stops serving and removes the socket.
func (f *FakeAPI) Close() {
	if f.l != nil {
		f.l.Close()
	}
	f.wg.Wait()
}

// Requests returns the requests so far.
func (f *FakeAPI) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.reqs...)
}

func (f *FakeAPI) serve(c *net.UnixConn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(16*4))
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil || n == 0 {
			return
		}
		fds := 0
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if rights, err := unix.ParseUnixRights(&m); err == nil {
					fds += len(rights)
					for _, fd := range rights {
						unix.Close(fd)
					}
				}
			}
		}
		rd := bufio.NewReader(io.MultiReader(bytes.NewReader(buf[:n]), c))
		req, err := http.ReadRequest(rd)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		r := Request{Method: req.Method, Path: req.URL.Path, FDs: fds}
		if len(bytes.TrimSpace(body)) > 0 {
			r.Body = json.RawMessage(body)
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, r)
		f.mu.Unlock()
		status, rbody := 0, ""
		if f.Respond != nil {
			status, rbody = f.Respond(r)
		}
		if status == 0 {
			status = http.StatusNoContent
		}
		fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			status, http.StatusText(status), len(rbody), rbody)
		if f.OnRequest != nil {
			f.OnRequest(r)
		}
		// One request per connection, as the client sends.
		return
	}
}

// AppendJSONLine appends v as one JSON line to path (the fake VMMs'
// request logs).
func AppendJSONLine(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(b, '\n'))
	return err
}

// ReadJSONLines reads a request log written by AppendJSONLine.
func ReadJSONLines(path string) ([]Request, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Request
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var r Request
		if err := json.Unmarshal(l, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
