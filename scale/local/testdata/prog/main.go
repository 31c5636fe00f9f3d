// Command prog is the test program of scale/local's integration tests and
// benchmark: it behaves as scaletest.Programs asks, chosen by its arguments.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: prog web|wait|ignore-term|exit N|print N|env NAME|sleep D|alloc MB|dial ADDR")
		os.Exit(2)
	}
	arg := ""
	if len(os.Args) > 2 {
		arg = os.Args[2]
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	wait := func() {
		<-term
		fmt.Println("term")
		os.Exit(0)
	}
	switch os.Args[1] {
	case "web":
		ln, err := net.Listen("tcp", ":"+os.Getenv("PORT"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("listening on " + os.Getenv("PORT"))
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, os.Getenv("DYNO"))
		}))
		wait()
	case "wait":
		fmt.Println("ready")
		wait()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	case "exit":
		n, _ := strconv.Atoi(arg)
		fmt.Printf("out %d\n", n)
		fmt.Fprintf(os.Stderr, "err %d\n", n)
		os.Exit(n)
	case "print":
		n, _ := strconv.Atoi(arg)
		for i := 1; i <= n; i++ {
			fmt.Printf("line %d\n", i)
		}
	case "env":
		fmt.Printf("%s=%s\n", arg, os.Getenv(arg))
	case "sleep":
		d, _ := time.ParseDuration(arg)
		select {
		case <-time.After(d):
		case <-term:
		}
	case "dial":
		c, err := net.DialTimeout("tcp", arg, 2*time.Second)
		if err != nil {
			fmt.Println("unreachable")
			os.Exit(1)
		}
		c.Close()
		fmt.Println("reachable")
	case "alloc":
		mb, _ := strconv.Atoi(arg)
		var keep [][]byte
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Println("ready", len(keep))
		wait()
	default:
		fmt.Fprintln(os.Stderr, "unknown behaviour", os.Args[1])
		os.Exit(2)
	}
}
