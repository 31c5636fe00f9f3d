package build

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// extractTar extracts the (optionally gzipped) tar stream r into dir, which
// must exist and be empty. It refuses entries that would land outside dir,
// links that point outside it, device files, fifos, and more than max bytes
// of file content.
func extractTar(ctx context.Context, r io.Reader, dir string, max int64) error {
	br := bufio.NewReader(r)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("source tar: %w", err)
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	tr := tar.NewReader(r)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("source tar: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		rel, err := cleanTarName(h.Name)
		if err != nil {
			return err
		}
		if rel == "." {
			continue
		}
		target := filepath.Join(realDir, filepath.FromSlash(rel))
		if err := parentInside(realDir, target); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg, tar.TypeRegA:
			if h.Size < 0 || total+h.Size > max {
				return fmt.Errorf("%w: tar entry %s (%d bytes) takes the source past %d bytes", ErrSourceTooLarge, rel, h.Size, max)
			}
			total += h.Size
			if err := writeFile(target, tr, h); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := symlinkTargetInside(rel, h.Linkname); err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return fmt.Errorf("source tar: %w", err)
			}
		case tar.TypeLink:
			lrel, err := cleanTarName(h.Linkname)
			if err != nil {
				return err
			}
			old := filepath.Join(realDir, filepath.FromSlash(lrel))
			if err := parentInside(realDir, old); err != nil {
				return err
			}
			if st, err := os.Lstat(old); err != nil || !st.Mode().IsRegular() {
				return fmt.Errorf("%w: hard link %s -> %s does not name an earlier regular file", ErrUnsafeSource, rel, h.Linkname)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Link(old, target); err != nil {
				return fmt.Errorf("source tar: %w", err)
			}
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return fmt.Errorf("%w: tar entry %s is a device file or fifo", ErrUnsafeSource, rel)
		default:
			return fmt.Errorf("%w: tar entry %s has unsupported type %q", ErrUnsafeSource, rel, h.Typeflag)
		}
	}
}

// cleanTarName returns the slash-separated relative path of a tar entry, or
// an error wrapping ErrUnsafeSource for absolute names and traversal.
func cleanTarName(name string) (string, error) {
	if strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || filepath.IsAbs(name) || strings.Contains(name, "\x00") {
		return "", fmt.Errorf("%w: tar entry %q has an absolute path", ErrUnsafeSource, name)
	}
	for _, part := range strings.Split(strings.ReplaceAll(name, `\`, "/"), "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: tar entry %q leaves the source (path traversal)", ErrUnsafeSource, name)
		}
	}
	return path.Clean(name), nil
}

// parentInside checks that the directory that will hold target resolves,
// through any symlinks extracted earlier, inside root.
func parentInside(root, target string) error {
	parent := filepath.Dir(target)
	for p := parent; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return err
			}
			if !within(root, real) {
				return fmt.Errorf("%w: %s would be written outside the source through a symlink", ErrUnsafeSource, target)
			}
			return nil
		}
		if p == root || p == filepath.Dir(p) {
			return nil
		}
	}
}

func writeFile(target string, r io.Reader, h *tar.Header) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if st, err := os.Lstat(target); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%w: tar entry %s replaces a directory or link", ErrUnsafeSource, h.Name)
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o755|0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, h.Size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != h.Size {
		err = fmt.Errorf("source tar: %s is truncated", h.Name)
	}
	return err
}
