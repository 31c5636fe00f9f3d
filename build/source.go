package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// DefaultMaxSourceSize is the source size limit when SourceOptions.MaxSize
// is zero: 512 MiB of regular files after ignore files are honoured.
const DefaultMaxSourceSize = 512 << 20

// SourceOptions limit and place a prepared source.
type SourceOptions struct {
	// MaxSize is the largest total size of regular files accepted, counted
	// after .dockerignore (Dockerfile builds) or .slugignore (other
	// builds). If zero, DefaultMaxSourceSize.
	MaxSize int64
	// TempDir is where tar streams are extracted. If empty, os.TempDir().
	TempDir string
}

func (o SourceOptions) maxSize() int64 {
	if o.MaxSize > 0 {
		return o.MaxSize
	}
	return DefaultMaxSourceSize
}

// PreparedSource is a source checked for safety and size, in a directory.
type PreparedSource struct {
	// Dir is the directory holding the source.
	Dir string
	// IgnoreFile is the ignore file that was honoured: ".dockerignore",
	// ".slugignore" or "".
	IgnoreFile string
	// Excludes are the patterns of IgnoreFile (.dockerignore syntax); a
	// build engine must apply them when it reads Dir.
	Excludes []string
	// Size is the total size of the regular files kept, Files their number.
	Size  int64
	Files int

	tmp string
}

// Close removes the extracted copy of a tar stream source; it never touches
// a source directory.
func (p *PreparedSource) Close() error {
	if p.tmp == "" {
		return nil
	}
	tmp := p.tmp
	p.tmp = ""
	return os.RemoveAll(tmp)
}

// PrepareSource makes src ready to build: a tar stream is extracted into a
// temporary directory (rejecting absolute paths, traversal, links that
// leave the source, device files and entries past the size limit), then
// the directory is walked: symlinks must be relative and stay inside it, no
// device files, fifos or sockets, and the files not excluded by the ignore
// file must fit in opts.MaxSize. It returns errors wrapping ErrUnsafeSource
// or ErrSourceTooLarge. The caller must Close the result.
func PrepareSource(ctx context.Context, src Source, opts SourceOptions) (*PreparedSource, error) {
	p := &PreparedSource{Dir: src.Dir}
	switch {
	case src.Tar != nil && src.Dir != "":
		return nil, fmt.Errorf("%w: exactly one of Source.Dir and Source.Tar must be set", ErrInvalidRequest)
	case src.Tar != nil:
		tmp, err := os.MkdirTemp(opts.TempDir, "slipway-src-")
		if err != nil {
			return nil, err
		}
		p.tmp = tmp
		p.Dir = tmp
		// The extracted tree may hold more than the limit before ignore
		// files are applied; bound it at twice the limit.
		if err := extractTar(ctx, src.Tar, tmp, 2*opts.maxSize()); err != nil {
			p.Close()
			return nil, err
		}
	case src.Dir != "":
		abs, err := filepath.Abs(src.Dir)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("%w: source %s is not a directory", ErrInvalidRequest, src.Dir)
		}
		p.Dir = abs
	default:
		return nil, fmt.Errorf("%w: no source", ErrInvalidRequest)
	}
	if err := p.walk(ctx, opts.maxSize()); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// ignoreFileFor returns the ignore file that applies to the source in dir:
// .dockerignore when there is a Dockerfile, else .slugignore.
func ignoreFileFor(dir string) string {
	if isFile(filepath.Join(dir, "Dockerfile")) {
		return ".dockerignore"
	}
	return ".slugignore"
}

func (p *PreparedSource) walk(ctx context.Context, max int64) error {
	name := ignoreFileFor(p.Dir)
	f, err := os.Open(filepath.Join(p.Dir, name))
	switch {
	case err == nil:
		pats, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		p.IgnoreFile, p.Excludes = name, pats
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	var pm *patternmatcher.PatternMatcher
	if len(p.Excludes) > 0 {
		if pm, err = patternmatcher.New(p.Excludes); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	root := p.Dir
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path == root {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if pm != nil {
			excluded, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				return err
			}
			if excluded {
				if d.IsDir() && !pm.Exclusions() {
					return filepath.SkipDir
				}
				if !d.IsDir() {
					return nil
				}
			}
		}
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			return checkSymlink(root, realRoot, rel)
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			p.Size += info.Size()
			p.Files++
			if p.Size > max {
				return fmt.Errorf("%w: more than %d bytes (limit) after %s", ErrSourceTooLarge, max, orNone(p.IgnoreFile))
			}
			return nil
		default:
			return fmt.Errorf("%w: %s is a %s", ErrUnsafeSource, rel, fileKind(t))
		}
	})
}

func orNone(s string) string {
	if s == "" {
		return "no ignore file"
	}
	return s
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeDevice != 0 || m&fs.ModeCharDevice != 0:
		return "device file"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	default:
		return "special file"
	}
}

// checkSymlink rejects the symlink at rel (slash-separated, relative to
// root) if its target is absolute or resolves outside root.
func checkSymlink(root, realRoot, rel string) error {
	target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return err
	}
	if err := symlinkTargetInside(rel, target); err != nil {
		return err
	}
	// Follow the whole chain on disk too: links through other links must
	// also stay inside.
	resolved, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return nil // dangling: harmless, lexically inside
	}
	if !within(realRoot, resolved) {
		return fmt.Errorf("%w: symlink %s -> %s escapes the source", ErrUnsafeSource, rel, target)
	}
	return nil
}

// symlinkTargetInside checks, lexically, a link at rel pointing to target.
func symlinkTargetInside(rel, target string) error {
	if target == "" {
		return fmt.Errorf("%w: symlink %s has an empty target", ErrUnsafeSource, rel)
	}
	if strings.HasPrefix(target, "/") || filepath.IsAbs(target) {
		return fmt.Errorf("%w: symlink %s -> %s is absolute", ErrUnsafeSource, rel, target)
	}
	joined := filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(filepath.FromSlash(rel)), filepath.FromSlash(target))))
	if joined == ".." || strings.HasPrefix(joined, "../") {
		return fmt.Errorf("%w: symlink %s -> %s escapes the source", ErrUnsafeSource, rel, target)
	}
	return nil
}

func within(root, path string) bool {
	if path == root {
		return true
	}
	return strings.HasPrefix(path, strings.TrimSuffix(root, string(filepath.Separator))+string(filepath.Separator))
}

func isFile(path string) bool {
	st, err := os.Lstat(path)
	return err == nil && st.Mode().IsRegular()
}
