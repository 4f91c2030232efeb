// Package vmm is what Hull's drivers for VMMs with an HTTP API (Cloud
// Hypervisor, Firecracker) share: an HTTP/1.1 client over the VMM's unix
// API socket that can hand file descriptors over with a request
// (SCM_RIGHTS, as Cloud Hypervisor takes tap devices), errors that name
// the endpoint and the VMM's fault message, and the supervision of the VMM
// process and its helpers (virtiofsd): process groups that die with the
// driver, a guest-panic watch on the console log, the VM's end classified
// as in vm.Hypervisor.Wait, and nothing left behind.
//
// The client is written on net/http's request writer and response reader
// rather than taken from an SDK (firecracker-go-sdk, Cloud Hypervisor's
// generated client): the drivers need a handful of endpoints, the SDKs
// bring swagger-generated trees for the rest, and neither passes file
// descriptors.
package vmm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// ErrAPI is matched by every error of a request the VMM answered with a
// failure status (errors.Is), besides its errdefs kind.
var ErrAPI = errors.New("hypervisor API request failed")

// APIError is a failure answer of the VMM's API.
type APIError struct {
	Method, Endpoint string
	Status           int
	// Fault is the VMM's message: Firecracker's fault_message, Cloud
	// Hypervisor's error text.
	Fault string
}

func (e *APIError) Error() string {
	f := e.Fault
	if f == "" {
		f = "(no message)"
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Endpoint, e.Status, http.StatusText(e.Status), f)
}

// Unwrap gives ErrAPI and the errdefs kind of the status.
func (e *APIError) Unwrap() []error {
	var kind error
	switch e.Status {
	case http.StatusBadRequest:
		kind = errdefs.ErrInvalidArgument
	case http.StatusNotFound:
		kind = errdefs.ErrNotFound
	case http.StatusMethodNotAllowed, http.StatusConflict:
		kind = errdefs.ErrFailedPrecondition
	case http.StatusTooManyRequests:
		kind = errdefs.ErrUnavailable
	default:
		kind = errdefs.ErrUnknown
	}
	return []error{ErrAPI, kind}
}

// Client talks to one VMM's API socket, one connection per request.
type Client struct {
	// Socket is the API socket's path.
	Socket string
	// Prefix is put before every endpoint ("/api/v1" for Cloud
	// Hypervisor, "" for Firecracker).
	Prefix string
	// Timeout bounds a request when ctx has no deadline (10 s).
	Timeout time.Duration
}

// Do sends method endpoint with in as its JSON body (none when nil), and
// decodes a 2xx answer's body into out (unless out is nil). files are
// passed with the request (SCM_RIGHTS). A failure status gives an
// *APIError; a broken connection an error naming the endpoint.
func (c *Client) Do(ctx context.Context, method, endpoint string, in, out any, files ...*os.File) error {
	if _, ok := ctx.Deadline(); !ok {
		t := c.Timeout
		if t <= 0 {
			t = 10 * time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, endpoint, err)
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost"+c.Prefix+endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.ContentLength = int64(len(body))
	resp, err := c.roundTrip(ctx, req, files)
	if err != nil {
		return fmt.Errorf("%s %s (api socket %s): %w", method, endpoint, c.Socket, err)
	}
	if resp.status < 200 || resp.status > 299 {
		return &APIError{Method: method, Endpoint: endpoint, Status: resp.status, Fault: faultMessage(resp.body)}
	}
	if out != nil && len(bytes.TrimSpace(resp.body)) > 0 {
		if err := json.Unmarshal(resp.body, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, endpoint, err)
		}
	}
	return nil
}

type response struct {
	status int
	body   []byte
}

func (c *Client) roundTrip(ctx context.Context, req *http.Request, files []*os.File) (*response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	var buf bytes.Buffer
	if err := req.Write(&buf); err != nil {
		return nil, err
	}
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		uc, ok := conn.(*net.UnixConn)
		if !ok {
			return nil, errors.New("not a unix socket: cannot pass file descriptors")
		}
		// The descriptors ride on the first bytes; the rest follows.
		n, _, err := uc.WriteMsgUnix(buf.Bytes(), unix.UnixRights(fds...), nil)
		if err != nil {
			return nil, err
		}
		buf.Next(n)
	}
	if buf.Len() > 0 {
		if _, err := conn.Write(buf.Bytes()); err != nil {
			return nil, err
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, body: b}, nil
}

// faultMessage extracts the VMM's message from an error body:
// Firecracker's {"fault_message": "..."}, a JSON string or list of
// strings (an error chain), or the text itself.
func faultMessage(b []byte) string {
	b = bytes.TrimSpace(b)
	var fc struct {
		FaultMessage *string `json:"fault_message"`
	}
	if json.Unmarshal(b, &fc) == nil && fc.FaultMessage != nil {
		return *fc.FaultMessage
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	var list []string
	if json.Unmarshal(b, &list) == nil {
		return strings.Join(list, ": ")
	}
	t := string(b)
	if len(t) > 2000 {
		t = t[:2000] + "..."
	}
	return t
}
