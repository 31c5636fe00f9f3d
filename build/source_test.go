package build_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/slipwayhq/slipway/build"

	"github.com/slipwayhq/slipway/internal/testenv"
)

func prepare(t *testing.T, dir string, opts build.SourceOptions) (*build.PreparedSource, error) {
	t.Helper()
	p, err := build.PrepareSource(context.Background(), build.Source{Dir: dir}, opts)
	if err == nil {
		t.Cleanup(func() { p.Close() })
	}
	return p, err
}

func TestPrepareSourceDirSafe(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "index.html", "hello")
	write(t, dir, "sub/a.txt", "aaa")
	if err := os.Symlink("sub/a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../a.txt", filepath.Join(dir, "sub", "up")); err != nil { // sub/../a.txt: inside, dangling
		t.Fatal(err)
	}
	p, err := prepare(t, dir, build.SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Files != 2 || p.Size != 8 {
		t.Errorf("files/size = %d/%d, want 2/8", p.Files, p.Size)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		t.Fatal("Close removed a source directory:", err)
	}
}

func TestPrepareSourceDirUnsafe(t *testing.T) {
	tests := map[string]func(t *testing.T, dir string){
		"absolute symlink": func(t *testing.T, dir string) {
			os.Symlink("/etc/passwd", filepath.Join(dir, "pw"))
		},
		"escaping symlink": func(t *testing.T, dir string) {
			write(t, dir, "sub/x", "")
			os.Symlink("../../outside", filepath.Join(dir, "sub", "esc"))
		},
		"chain escaping through another link": func(t *testing.T, dir string) {
			outside := t.TempDir()
			write(t, outside, "secret", "s")
			os.Symlink(outside, filepath.Join(dir, "..", filepath.Base(dir)+"-out")) // outside the source
			write(t, dir, "sub/k", "")
			os.Symlink("..", filepath.Join(dir, "sub", "parent"))
			// Lexically sub/<name>-out/secret, inside; on disk ../<name>-out/secret.
			os.Symlink("sub/parent/../"+filepath.Base(dir)+"-out/secret", filepath.Join(dir, "chain"))
		},
		"fifo": func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
				testenv.Missing(t, "mkfifo: "+err.Error())
			}
		},
		"device file": func(t *testing.T, dir string) {
			if err := syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
				testenv.Missing(t, "mknod needs root: "+err.Error())
			}
		},
	}
	for name, setup := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "src")
			os.Mkdir(dir, 0o755)
			write(t, dir, "index.html", "x")
			setup(t, dir)
			_, err := prepare(t, dir, build.SourceOptions{})
			if !errors.Is(err, build.ErrUnsafeSource) {
				t.Fatalf("err = %v, want ErrUnsafeSource", err)
			}
		})
	}
}

func TestPrepareSourceIgnoreAndLimit(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "index.html", "12345")
	write(t, dir, "big/blob.bin", strings.Repeat("x", 1000))
	write(t, dir, "logs/a.log", strings.Repeat("y", 1000))
	_, err := prepare(t, dir, build.SourceOptions{MaxSize: 500})
	if !errors.Is(err, build.ErrSourceTooLarge) {
		t.Fatalf("err = %v, want ErrSourceTooLarge", err)
	}
	// .slugignore applies to detected-language builds.
	write(t, dir, ".slugignore", "big\n*/*.log\n")
	p, err := prepare(t, dir, build.SourceOptions{MaxSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	if p.IgnoreFile != ".slugignore" || p.Files != 2 {
		t.Errorf("ignore file %q, %d files; want .slugignore, 2 (index.html, .slugignore)", p.IgnoreFile, p.Files)
	}
	// With a Dockerfile, .dockerignore applies and .slugignore does not.
	write(t, dir, "Dockerfile", "FROM scratch\n")
	if _, err := prepare(t, dir, build.SourceOptions{MaxSize: 500}); !errors.Is(err, build.ErrSourceTooLarge) {
		t.Fatalf("Dockerfile app honoured .slugignore: err = %v", err)
	}
	write(t, dir, ".dockerignore", "big\nlogs\n")
	p, err = prepare(t, dir, build.SourceOptions{MaxSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	if p.IgnoreFile != ".dockerignore" || len(p.Excludes) != 2 {
		t.Errorf("ignore file %q excludes %q", p.IgnoreFile, p.Excludes)
	}
	// Unsafe files that are ignored are never read.
	os.Symlink("/etc", filepath.Join(dir, "big", "etc"))
	if _, err := prepare(t, dir, build.SourceOptions{MaxSize: 500}); err != nil {
		t.Errorf("ignored absolute symlink rejected: %v", err)
	}
}

func TestPrepareSourceBadRequests(t *testing.T) {
	ctx := context.Background()
	if _, err := build.PrepareSource(ctx, build.Source{}, build.SourceOptions{}); !errors.Is(err, build.ErrInvalidRequest) {
		t.Errorf("no source: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	write(t, filepath.Dir(f), "file", "")
	if _, err := build.PrepareSource(ctx, build.Source{Dir: f}, build.SourceOptions{}); !errors.Is(err, build.ErrInvalidRequest) {
		t.Errorf("file as source: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := build.PrepareSource(cctx, build.Source{Dir: t.TempDir()}, build.SourceOptions{}); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
