// cgohello forces external linking through cgo, and its C thread-local variable makes the PT_TLS
// block larger than Go's own g slot, so the TLS rule must use runtime.tlsg.
//
//	cgohello block   prints "ready" and blocks in read(0) on the main goroutine until EOF
package main

/*
__thread long hs_counter = 41;
static long hs_next(void) { return ++hs_counter; }
*/
import "C"

import (
	"fmt"
	"io"
	"os"
)

func main() {
	fmt.Println("cgo", int64(C.hs_next()))
	if len(os.Args) > 1 && os.Args[1] == "block" {
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
	}
}
