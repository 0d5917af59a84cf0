// CoreDNS with only the plugins cluster DNS needs: the same server and plugin code as upstream's
// binary, without the cloud DNS back ends that would triple its build time.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order in which the plugins see a query, as in upstream's plugin.cfg.
func init() {
	dnsserver.Directives = []string{"errors", "log", "health", "ready", "kubernetes", "cache"}
}

func main() { coremain.Run() }
