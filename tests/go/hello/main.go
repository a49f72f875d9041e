// hello is a tiny Go program whose binaries the Go identity tests read (build info, runtime offsets).
//
//	hello buildinfo  prints runtime/debug.ReadBuildInfo() as the runtime itself sees it
//	hello block      prints "ready" and blocks in read(0) on the main goroutine (goid 1) until EOF,
//	                 so a test can stop its threads and read g from TLS
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "buildinfo":
			if bi, ok := debug.ReadBuildInfo(); ok {
				fmt.Print(bi.String())
			}
			return
		case "block":
			fmt.Println("ready")
			io.Copy(io.Discard, os.Stdin)
			return
		}
	}
	fmt.Println("hello")
}
