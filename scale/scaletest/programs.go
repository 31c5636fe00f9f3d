package scaletest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FakeProgram is the Fake's default command interpreter. It understands the
// commands of FakePrograms:
//
//	web          bind PORT, print "listening on <PORT>", wait; on SIGTERM print "term", exit 0
//	wait         print "ready", wait; on SIGTERM print "term", exit 0
//	ignore-term  print "ready", wait until killed
//	exit N       print "out N" to stdout and "err N" to stderr, exit N
//	print N      print "line 1" ... "line N", exit 0
//	env NAME     print "NAME=<value>", exit 0
//	sleep D      sleep for the Go duration D (or until SIGTERM), exit 0
//	alloc MB     OOM-killed when MB MiB exceed the memory limit; else as wait
//
// and returns nil for anything else.
func FakeProgram(command string) Program {
	f := strings.Fields(command)
	if len(f) == 0 {
		return nil
	}
	arg := ""
	if len(f) > 1 {
		arg = f[1]
	}
	wait := func(p *Proc) int {
		select {
		case <-p.Terminated():
			fmt.Fprintln(p.Stdout, "term")
			return 0
		case <-p.Context().Done():
			return -1
		}
	}
	switch f[0] {
	case "web":
		return func(p *Proc) int {
			p.Bind()
			fmt.Fprintf(p.Stdout, "listening on %s\n", p.Env["PORT"])
			return wait(p)
		}
	case "wait":
		return func(p *Proc) int {
			fmt.Fprintln(p.Stdout, "ready")
			return wait(p)
		}
	case "ignore-term":
		return func(p *Proc) int {
			fmt.Fprintln(p.Stdout, "ready")
			<-p.Context().Done()
			return -1
		}
	case "exit":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return nil
		}
		return func(p *Proc) int {
			fmt.Fprintf(p.Stdout, "out %d\n", n)
			fmt.Fprintf(p.Stderr, "err %d\n", n)
			return n
		}
	case "print":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return nil
		}
		return func(p *Proc) int {
			for i := 1; i <= n; i++ {
				fmt.Fprintf(p.Stdout, "line %d\n", i)
			}
			return 0
		}
	case "env":
		return func(p *Proc) int {
			fmt.Fprintf(p.Stdout, "%s=%s\n", arg, p.Env[arg])
			return 0
		}
	case "sleep":
		d, err := time.ParseDuration(arg)
		if err != nil {
			return nil
		}
		return func(p *Proc) int {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-p.Terminated():
			case <-p.Context().Done():
				return -1
			}
			return 0
		}
	case "alloc":
		mb, err := strconv.Atoi(arg)
		if err != nil {
			return nil
		}
		return func(p *Proc) int {
			if lim := p.Resources.MemoryBytes; lim > 0 && int64(mb)<<20 > lim {
				return p.OOMKill()
			}
			fmt.Fprintln(p.Stdout, "ready")
			return wait(p)
		}
	}
	return nil
}

// FakePrograms returns the suite's programs as FakeProgram understands
// them.
func FakePrograms() Programs {
	return Programs{
		Web:        "web",
		Wait:       "wait",
		IgnoreTerm: "ignore-term",
		Exit:       func(code int) string { return fmt.Sprintf("exit %d", code) },
		Print:      func(n int) string { return fmt.Sprintf("print %d", n) },
		Env:        func(name string) string { return "env " + name },
		Sleep:      func(d time.Duration) string { return "sleep " + d.String() },
		Alloc:      func(mb int) string { return fmt.Sprintf("alloc %d", mb) },
	}
}
