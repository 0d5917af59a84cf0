// Command etcd is the upstream etcd server; the module only exists so it builds with the same
// pinned dependencies as the rest of the control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
