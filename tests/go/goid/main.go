// goid dials and serves TCP from goroutines whose ids it prints itself, so a test can check the goroutine
// id that hostscope's connect/accept events carry.
//
//	goid [n]   listens on 127.0.0.1 and prints "PID <pid>" and "LISTEN <port>", then waits for one line on
//	           stdin (the test first makes sure hostscope knows this process). Then n goroutines each Accept
//	           once, read one byte and print "ACCEPT <goid> <remote port>"; n other goroutines each Dial once,
//	           write one byte and print "DIAL <goid> <local port>". Prints "DONE" and keeps the connections
//	           open until stdin closes. (hostscope takes the owner of an accepted connection, and its
//	           goroutine, at the first send or receive on it: here the accepting goroutine's read.)
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

var out sync.Mutex

func say(format string, args ...interface{}) {
	out.Lock()
	defer out.Unlock()
	fmt.Printf(format+"\n", args...)
}

// goid parses the header runtime.Stack writes: "goroutine 18 [running]:".
func goid() uint64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	if len(f) < 2 || f[0] != "goroutine" {
		panic("unexpected stack header: " + string(buf))
	}
	id, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		panic(err)
	}
	return id
}

func port(a net.Addr) int { return a.(*net.TCPAddr).Port }

func main() {
	n := 4
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 1 {
			fmt.Fprintln(os.Stderr, "usage: goid [n]")
			os.Exit(2)
		}
		n = v
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	say("PID %d", os.Getpid())
	say("LISTEN %d", port(ln.Addr()))
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return
	}

	var conns []net.Conn
	var mu sync.Mutex
	keep := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			id := goid()
			c, err := ln.Accept()
			if err != nil {
				say("ERROR accept %v", err)
				return
			}
			keep(c)
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				say("ERROR read %v", err)
				return
			}
			say("ACCEPT %d %d", id, port(c.RemoteAddr()))
		}()
		go func() {
			defer wg.Done()
			id := goid()
			c, err := net.Dial("tcp4", ln.Addr().String())
			if err != nil {
				say("ERROR dial %v", err)
				return
			}
			keep(c)
			if _, err := c.Write([]byte{'x'}); err != nil {
				say("ERROR write %v", err)
				return
			}
			say("DIAL %d %d", id, port(c.LocalAddr()))
		}()
	}
	wg.Wait()
	say("DONE")
	io.Copy(io.Discard, in)
	for _, c := range conns {
		c.Close()
	}
}
