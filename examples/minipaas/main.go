// Command minipaas is a single-machine PaaS built from Slipway's packages,
// small enough to read in an afternoon and copy.
//
// One binary is both the server and its CLI:
//
//	minipaas server                  run the control plane (as root)
//	minipaas apps:create NAME        create an app
//	minipaas addons:create postgres -a NAME
//	git push http://git:TOKEN@127.0.0.1:7070/git/NAME.git main
//	minipaas ps:scale web=3 -a NAME
//
// The server wires the embedded defaults: the bbolt release store, the local
// runc scheduler, Slipway's router on a loopback port, a buildkitd it starts
// and supervises (unless --buildkit-addr names one), and add-on adapters for
// a local PostgreSQL and Redis. Its control API is JSON over HTTP with a
// bearer token that is generated on first start and kept, mode 0600, in the
// state directory, where the CLI finds it.
//
// Run `minipaas help` for the verbs.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	verb, args := os.Args[1], os.Args[2:]
	var err error
	switch verb {
	case "server":
		err = serverMain(args)
	case "help", "-h", "--help":
		usage(os.Stdout)
		return
	default:
		err = clientMain(verb, args)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, " !     %v\n", err)
		os.Exit(exitCode(err))
	}
}
