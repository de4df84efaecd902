// Command pause is the local cluster's sandbox (pause) image: it holds a pod's namespaces
// open until SIGTERM or SIGINT, and reaps the orphans it inherits as PID 1 of the pod.
// Built static by build.sh --cluster and written into an image by `metallb-image pause`.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			return
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
