// Command udpecho answers each UDP datagram on :5353 with "echo: " and the
// datagram (a UDP server for the network tests; busybox's nc has no -u).
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	c, err := net.ListenPacket("udp", ":5353")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_, _ = c.WriteTo(append([]byte("echo: "), buf[:n]...), from)
	}
}
