// Command etcd is upstream etcd's server, built from the Go module proxy at
// the version pinned in go.mod (the same entry point as etcd's own server/main.go).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
