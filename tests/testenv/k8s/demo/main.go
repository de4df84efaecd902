// Command demo is the local cluster's demo workload: an HTTP server on :8080 that answers
// every request with 200 and the pod and node that served it (from POD_NAME and NODE_NAME),
// so a client can see which backend a LoadBalancer Service reached. Built static by
// build.sh --cluster; hack/run writes it into an image with `metallb-image write`.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

func main() {
	pod, node := os.Getenv("POD_NAME"), os.Getenv("NODE_NAME")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s on %s (client %s)\n", pod, node, r.RemoteAddr)
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}
