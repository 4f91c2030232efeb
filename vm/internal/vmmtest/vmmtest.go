// Package vmmtest is what the fake VMMs of the HTTP-API drivers' tests
// share: a hybrid vsock proxy whose "guest" echoes, answers as a stub
// hull-agent, or never listens.
package vmmtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	agentapi "github.com/hullproject/hull/agent/api"
	"github.com/hullproject/hull/agent/server"
	"github.com/hullproject/hull/agent/vsock"
)

// Guest is what answers behind the proxy.
type Guest int

const (
	// Echo copies the stream back.
	Echo Guest = iota
	// Agent serves a stub agent: Version answers "fake-agent", and
	// DestroySandbox exits this process with 0 (the VMM ends as on the
	// guest's power-off).
	Agent
	// Nobody: the proxy closes each connection after CONNECT, as while no
	// guest listens on the port.
	Nobody
)

// ServeHybridProxy listens on the unix socket path as a VMM's hybrid vsock
// and serves g behind it, until the process ends.
func ServeHybridProxy(path string, g Guest) error {
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				p, err := vsock.ServeHybrid(c)
				if err != nil || g == Nobody {
					return
				}
				fmt.Fprintf(c, "OK %d\n", 1<<30+p)
				if g == Agent {
					serveAgent(c)
					return
				}
				io.Copy(c, c)
			}()
		}
	}()
	return nil
}

type stubAgent struct {
	agentapi.AgentService
}

func (stubAgent) Version(context.Context, *agentapi.VersionRequest) (*agentapi.VersionResponse, error) {
	return &agentapi.VersionResponse{AgentVersion: "fake-agent"}, nil
}

func (stubAgent) DestroySandbox(context.Context, *agentapi.Empty) (*agentapi.Empty, error) {
	go func() { time.Sleep(20 * time.Millisecond); os.Exit(0) }()
	return &agentapi.Empty{}, nil
}

func serveAgent(c net.Conn) {
	srv, err := server.NewTTRPCServer(stubAgent{})
	if err != nil {
		return
	}
	srv.Serve(context.Background(), &oneConn{c: c, done: make(chan struct{})})
}

// oneConn is a listener that yields one connection.
type oneConn struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
}

func (l *oneConn) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error   { return nil }
func (l *oneConn) Addr() net.Addr { return l.c.LocalAddr() }
