package oci

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

	"golang.org/x/sys/unix"
)

// Whiteout names (see the OCI image spec, "Representing Changes").
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// Unpack applies img's layers in order to the directory root, which should
// be empty. Device nodes are skipped; ownership, modes and times are kept.
func (l Layout) Unpack(ctx context.Context, img Image, root string) error {
	for i, desc := range img.Manifest.Layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := l.BlobPath(desc.Digest)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("oci: layer %d of %s: %w", i, img.Digest, err)
		}
		err = ApplyLayer(root, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("oci: layer %d (%s) of %s: %w", i, desc.Digest, img.Digest, err)
		}
	}
	return nil
}

// ApplyLayer applies one layer, a tar stream either uncompressed or
// gzip-compressed (told apart by its first bytes), to root. Entry names and
// link targets are resolved as if root were "/": nothing is created, changed
// or removed outside root, whatever the layer holds.
func ApplyLayer(root string, r io.Reader) error {
	return applyLayer(root, r, 0)
}

// applyLayer is ApplyLayer with a bound on the file content written
// (0: none), for fuzzing, where sparse entries of absurd sizes appear.
func applyLayer(root string, r io.Reader, maxBytes int64) error {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(4); len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd {
		return errors.New("zstd-compressed layers are not supported; build with gzip or uncompressed layers")
	}
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		r = zr
	} else {
		r = br
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if maxBytes <= 0 {
		maxBytes = -1
	}
	a := &applier{root: root, created: make(map[string]bool), budget: maxBytes}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := a.apply(hdr, tr); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
}

type applier struct {
	root string
	// created holds the paths this layer made, which an opaque whiteout
	// in the same layer must keep.
	created map[string]bool
	budget  int64 // bytes of file content still allowed; negative: no limit
}

func (a *applier) apply(hdr *tar.Header, r io.Reader) error {
	rel := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
	if rel == "" {
		return nil // the root itself
	}
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	parent, err := SecureJoin(a.root, dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	switch {
	case base == whiteoutOpaque:
		return a.opaque(parent, dir)
	case strings.HasPrefix(base, whiteoutPrefix):
		name := strings.TrimPrefix(base, whiteoutPrefix)
		if name == "" || name == "." || name == ".." {
			return nil
		}
		return os.RemoveAll(filepath.Join(parent, name))
	}
	target := filepath.Join(parent, base)
	if fi, err := os.Lstat(target); err == nil {
		if !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
		}
	}
	mode := os.FileMode(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	case tar.TypeReg, tar.TypeRegA:
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if a.budget >= 0 {
			if hdr.Size > a.budget {
				f.Close()
				return fmt.Errorf("layer content exceeds the limit")
			}
			a.budget -= hdr.Size
		}
		err = copySparse(f, io.LimitReader(r, hdr.Size), hdr.Size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
	case tar.TypeLink:
		src, err := SecureJoin(a.root, strings.TrimPrefix(path.Clean("/"+hdr.Linkname), "/"))
		if err != nil {
			return err
		}
		fi, err := os.Lstat(src)
		if err != nil {
			return fmt.Errorf("hard link to %s: %w", hdr.Linkname, err)
		}
		if fi.IsDir() {
			return fmt.Errorf("hard link to directory %s", hdr.Linkname)
		}
		if err := os.Link(src, target); err != nil {
			return err
		}
		a.created[rel] = true
		return nil // a hard link shares its source's metadata
	case tar.TypeFifo:
		if err := unix.Mkfifo(target, uint32(mode)); err != nil {
			return err
		}
	case tar.TypeChar, tar.TypeBlock:
		return nil // devices come from the runtime, never from images
	default:
		return nil // extended headers are handled by archive/tar; others are ignored
	}
	a.created[rel] = true
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil && !errors.Is(err, unix.EPERM) {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := os.Chmod(target, mode|goModeBits(hdr.Mode)); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if !hdr.AccessTime.IsZero() {
		ts[0] = unix.NsecToTimespec(hdr.AccessTime.UnixNano())
	}
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
	return nil
}

// copySparse copies size bytes from r to f, leaving holes where whole
// blocks are zero (as sparse entries expand to).
func copySparse(f *os.File, r io.Reader, size int64) error {
	buf := make([]byte, 32<<10)
	var off int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if allZero(buf[:n]) {
				off += int64(n)
			} else {
				if _, werr := f.WriteAt(buf[:n], off); werr != nil {
					return werr
				}
				off += int64(n)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != size {
		return io.ErrUnexpectedEOF
	}
	return f.Truncate(off)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// goModeBits turns the setuid, setgid and sticky bits of a tar mode into
// os.FileMode bits.
func goModeBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// opaque empties the directory dir (at abs) of what lower layers put there.
func (a *applier) opaque(abs, dir string) error {
	entries, err := os.ReadDir(abs)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if a.created[path.Join(dir, e.Name())] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(abs, e.Name())); err != nil {
			return err
		}
	}
	a.created[dir] = true
	return nil
}

// SecureJoin returns the path under root that rel names when root is taken
// as "/": ".." stops at root and symbolic links met on the way are followed
// as a process chrooted to root would follow them. The last component, if
// a symbolic link, is followed too; components that do not exist are
// appended as they are.
func SecureJoin(root, rel string) (string, error) {
	resolved := "" // relative to root, symlink-free
	rest := rel
	links := 0
	for rest != "" {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		switch comp {
		case "", ".":
			continue
		case "..":
			resolved = strings.TrimPrefix(path.Dir("/"+resolved), "/")
			continue
		}
		next := path.Join(resolved, comp)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				resolved = next
				continue
			}
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			resolved = next
			continue
		}
		links++
		if links > 255 {
			return "", fmt.Errorf("too many symbolic links resolving %s", rel)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			resolved = ""
		}
		rest = target + "/" + rest
	}
	return filepath.Join(root, resolved), nil
}
