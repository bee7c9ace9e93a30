// Command dkd is the dk server: SSH (git push and admin commands), the
// BuildKit builder, the release manager and reconciler, and the HTTP router,
// in one process. It is the only package that imports every adapter; it
// wires them together by hand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dkhq/dk"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		cfg, err := parseServe(args[1:], stderr)
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			fmt.Fprintf(stderr, "dkd: %v\n", err)
			return 2
		}
		if err := serve(context.Background(), cfg, stderr); err != nil {
			fmt.Fprintf(stderr, "dkd: %v\n", err)
			return 1
		}
		return 0
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "dkd %s\n", dk.Version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "dkd: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `dkd: a self-hosted Heroku (git push → build → release → routed app)

Usage:
  dkd serve [flags]   run the server (dkd serve -h lists flags)
  dkd version         print the version
`)
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
