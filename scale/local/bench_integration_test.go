//go:build integration

package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/scale"
)

// BenchmarkInstanceStart measures, b.N times each and in the same run, the
// time from asking for one web instance to its port accepting connections:
// with the local scheduler (Apply until Instances says healthy) and with a
// raw `runc run` of the same root file system (exec until the port
// answers). It reports both medians and p95s and their ratio.
func BenchmarkInstanceStart(b *testing.B) {
	cfg := config(b)
	imgs := buildImages(b)
	s := open(b, cfg)
	defer s.Close()
	ctx := context.Background()
	defer s.StopApp(ctx, "bench")
	runc := cfg.Runc

	// Warm the image cache.
	if _, err := s.Run(ctx, scale.OneOff{App: "bench", Release: 1, Image: scale.Image{Ref: "test"}, Command: "/prog exit 0"}); err != nil {
		b.Fatal(err)
	}
	raw := rawBundle(b, runc, imgs.rootfs)

	var slip, ref []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rel := i + 1
		start := time.Now()
		err := s.Apply(ctx, scale.Formation{App: "bench", Release: rel, Image: scale.Image{Ref: "test"},
			Processes: []scale.Process{{Type: "web", Command: "/prog web", Count: 1, Port: true, Grace: 5 * time.Second}}})
		if err != nil {
			b.Fatal(err)
		}
		for {
			is, _ := s.Instances(ctx, scale.Query{App: "bench", Release: rel})
			if len(is) == 1 && is[0].Healthy {
				break
			}
			if time.Since(start) > 30*time.Second {
				b.Fatalf("instance not healthy after 30 s: %+v", is)
			}
			time.Sleep(500 * time.Microsecond)
		}
		slip = append(slip, time.Since(start))
		b.StopTimer()
		if err := s.StopRelease(ctx, "bench", rel); err != nil {
			b.Fatal(err)
		}
		ref = append(ref, raw.start(b, i))
		b.StartTimer()
	}
	b.StopTimer()
	sm, sp := stats(slip)
	rm, rp := stats(ref)
	b.ReportMetric(float64(sm.Microseconds())/1000, "slipway-median-ms")
	b.ReportMetric(float64(sp.Microseconds())/1000, "slipway-p95-ms")
	b.ReportMetric(float64(rm.Microseconds())/1000, "runc-median-ms")
	b.ReportMetric(float64(rp.Microseconds())/1000, "runc-p95-ms")
	ratio := float64(sm) / float64(rm)
	b.ReportMetric(ratio, "slipway/runc")
	fmt.Printf("instance start (n=%d): slipway median %s p95 %s; raw runc median %s p95 %s\n", len(slip), sm, sp, rm, rp)
	fmt.Printf("instance start slipway/runc: %.2f\n", ratio)
}

func stats(ds []time.Duration) (median, p95 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, (len(s)*95+99)/100-1)]
}

type rawRunc struct {
	runc, root, bundle string
}

// rawBundle writes a bundle for runc's own default spec, changed only as
// the local scheduler's is where it must be: no network namespace, no
// terminal, the web command and PORT.
func rawBundle(tb testing.TB, runc, rootfs string) *rawRunc {
	dir := tb.TempDir()
	r := &rawRunc{runc: runc, root: filepath.Join(dir, "state"), bundle: filepath.Join(dir, "bundle")}
	os.MkdirAll(r.bundle, 0o755)
	if out, err := exec.Command(runc, "spec", "--bundle", r.bundle).CombinedOutput(); err != nil {
		tb.Fatalf("runc spec: %v: %s", err, out)
	}
	var spec map[string]any
	b, _ := os.ReadFile(filepath.Join(r.bundle, "config.json"))
	json.Unmarshal(b, &spec)
	spec["root"] = map[string]any{"path": rootfs, "readonly": false}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/bin/sh", "-c", "/prog web"}
	linux := spec["linux"].(map[string]any)
	var ns []any
	for _, n := range linux["namespaces"].([]any) {
		if n.(map[string]any)["type"] != "network" {
			ns = append(ns, n)
		}
	}
	linux["namespaces"] = ns
	b, _ = json.Marshal(spec)
	os.WriteFile(filepath.Join(r.bundle, "config.json"), b, 0o644)
	return r
}

// start runs the container until its port answers, returns how long that
// took, and kills it.
func (r *rawRunc) start(tb testing.TB, i int) time.Duration {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var spec map[string]any
	b, _ := os.ReadFile(filepath.Join(r.bundle, "config.json"))
	json.Unmarshal(b, &spec)
	spec["process"].(map[string]any)["env"] = []string{"PATH=/bin", "PORT=" + strconv.Itoa(port)}
	b, _ = json.Marshal(spec)
	os.WriteFile(filepath.Join(r.bundle, "config.json"), b, 0o644)

	id := fmt.Sprintf("raw-%d-%d", os.Getpid(), i)
	start := time.Now()
	cmd := exec.Command(r.runc, "--root", r.root, "run", "--bundle", r.bundle, id)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 30*time.Second {
			tb.Fatal("raw runc container never bound its port")
		}
		time.Sleep(500 * time.Microsecond)
	}
	d := time.Since(start)
	exec.Command(r.runc, "--root", r.root, "kill", id, "KILL").Run()
	cmd.Wait()
	exec.Command(r.runc, "--root", r.root, "delete", "--force", id).Run()
	return d
}

// BenchmarkScaleWeb20 measures scaling web from 0 to 20 instances (until
// all are healthy) and back to 0 (until none is listed).
func BenchmarkScaleWeb20(b *testing.B) {
	cfg := config(b)
	s := open(b, cfg)
	defer s.Close()
	ctx := context.Background()
	defer s.StopApp(ctx, "scale")
	apply := func(n int) {
		err := s.Apply(ctx, scale.Formation{App: "scale", Release: 1, Image: scale.Image{Ref: "test"},
			Processes: []scale.Process{{Type: "web", Command: "/prog web", Count: n, Port: true, Grace: 5 * time.Second}}})
		if err != nil {
			b.Fatal(err)
		}
	}
	wait := func(ok func([]scale.Instance) bool) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			is, _ := s.Instances(ctx, scale.Query{App: "scale"})
			if ok(is) {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("scaling did not converge: %d instances", len(is))
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	apply(1) // warm the image cache
	wait(func(is []scale.Instance) bool { return len(is) == 1 && is[0].Healthy })
	apply(0)
	wait(func(is []scale.Instance) bool { return len(is) == 0 })
	var up, down time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		apply(20)
		wait(func(is []scale.Instance) bool {
			n := 0
			for _, in := range is {
				if in.Healthy {
					n++
				}
			}
			return n == 20
		})
		up += time.Since(start)
		start = time.Now()
		apply(0)
		wait(func(is []scale.Instance) bool { return len(is) == 0 })
		down += time.Since(start)
	}
	b.StopTimer()
	n := time.Duration(b.N)
	b.ReportMetric((up / n).Seconds(), "up-s")
	b.ReportMetric((down / n).Seconds(), "down-s")
	fmt.Printf("scale web 0->20 (all healthy): %s; 20->0 (all gone): %s\n", (up / n).Round(time.Millisecond), (down / n).Round(time.Millisecond))
}
