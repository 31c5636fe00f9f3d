package buildkit

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	contentlocal "github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/build"
)

// openLayout makes dir an OCI image layout (creating oci-layout and an
// empty index.json when missing) and returns a content store over it.
func openLayout(dir string) (content.Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	lf := filepath.Join(dir, ocispec.ImageLayoutFile)
	if _, err := os.Stat(lf); errors.Is(err, os.ErrNotExist) {
		b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := writeAtomic(lf, b); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ocispec.ImageIndexFile)); errors.Is(err, os.ErrNotExist) {
		if err := updateIndex(dir, func(*ocispec.Index) {}); err != nil {
			return nil, err
		}
	}
	cs, err := contentlocal.NewStore(dir)
	if err != nil {
		return nil, err
	}
	return lockedStore{Store: cs, dir: dir}, nil
}

// lockedStore serializes the writers of one blob across content stores and
// processes. containerd's local store locks an ingest only within one store
// value, so two builders (or two processes) exporting the same layer into
// one layout would share its ingest directory, and one would remove it
// under the other. A flock per ref (striped over lockStripes files, so they
// stay few) closes that gap; the second writer then finds the blob
// committed and is told it already exists, which BuildKit takes as success.
type lockedStore struct {
	content.Store
	dir string // the layout directory
}

const lockStripes = 64

func (s lockedStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, o := range opts {
		if err := o(&wo); err != nil {
			return nil, err
		}
	}
	lock, err := lockRef(ctx, s.dir, wo.Ref)
	if err != nil {
		return nil, err
	}
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		w, err := s.Store.Writer(ctx, opts...)
		// Unavailable: a writer of the same ref in this store, which the
		// lock only serializes once it is closed.
		if !errdefs.IsUnavailable(err) {
			if err != nil {
				lock.Close()
				return nil, err
			}
			return &lockedWriter{Writer: w, lock: lock}, nil
		}
		select {
		case <-ctx.Done():
			lock.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// lockRef takes the exclusive flock of ref's stripe in dir, waiting for it
// until ctx ends. Closing the file releases it.
func lockRef(ctx context.Context, dir, ref string) (*os.File, error) {
	sum := sha256.Sum256([]byte(ref))
	path := filepath.Join(dir, "ingest-locks", fmt.Sprintf("%02d", int(sum[0])%lockStripes))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// lockedWriter releases its ref's lock once committed or closed.
type lockedWriter struct {
	content.Writer
	once sync.Once
	lock *os.File
}

func (w *lockedWriter) release() { w.once.Do(func() { w.lock.Close() }) }

func (w *lockedWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	defer w.release()
	return w.Writer.Commit(ctx, size, expected, opts...)
}

func (w *lockedWriter) Close() error {
	defer w.release()
	return w.Writer.Close()
}

// updateIndex applies fn to dir/index.json under an exclusive lock: a
// flock on index.json.lock that other processes honour too. The new index
// replaces the old one atomically.
func updateIndex(dir string, fn func(*ocispec.Index)) error {
	lock, err := os.OpenFile(filepath.Join(dir, ocispec.ImageIndexFile+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking index.json: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	b, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("index.json: %w", err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	fn(&idx)
	out, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, ocispec.ImageIndexFile), out)
}

// addToIndex records desc in the layout's index.json under the name ref,
// replacing the entry that had that name before.
func addToIndex(dir string, desc ocispec.Descriptor, ref string) error {
	desc.Annotations = map[string]string{
		ocispec.AnnotationRefName:  ref,
		"io.containerd.image.name": ref,
	}
	desc.Platform = nil
	return updateIndex(dir, func(idx *ocispec.Index) {
		kept := idx.Manifests[:0]
		for _, d := range idx.Manifests {
			if d.Annotations[ocispec.AnnotationRefName] != ref {
				kept = append(kept, d)
			}
		}
		idx.Manifests = append(kept, desc)
	})
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// layoutImage is one image found in a local OCI layout.
type layoutImage struct {
	manifest digest.Digest
	config   []byte
}

// readLayoutImage finds img (a build.Image with Layout set) and returns its
// manifest digest (for the host platform, if the entry is an index) and its
// config blob.
func readLayoutImage(img build.Image) (*layoutImage, error) {
	b, err := os.ReadFile(filepath.Join(img.Layout, ocispec.ImageIndexFile))
	if err != nil {
		return nil, fmt.Errorf("stack image %s: %w", img, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("stack image %s: index.json: %w", img, err)
	}
	var found []ocispec.Descriptor
	for _, d := range idx.Manifests {
		if img.Name == "" || d.Annotations[ocispec.AnnotationRefName] == img.Name {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("stack image %s: found %d matching images in index.json, want 1", img, len(found))
	}
	desc := found[0]
	readBlob := func(d digest.Digest) ([]byte, error) {
		if err := d.Validate(); err != nil {
			return nil, err
		}
		return os.ReadFile(filepath.Join(img.Layout, "blobs", d.Algorithm().String(), d.Encoded()))
	}
	if desc.MediaType == ocispec.MediaTypeImageIndex || desc.MediaType == "application/vnd.docker.distribution.manifest.list.v2+json" {
		b, err := readBlob(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("stack image %s: %w", img, err)
		}
		var sub ocispec.Index
		if err := json.Unmarshal(b, &sub); err != nil {
			return nil, fmt.Errorf("stack image %s: %w", img, err)
		}
		ok := false
		for _, d := range sub.Manifests {
			if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
				desc, ok = d, true
				break
			}
		}
		if !ok {
			return nil, fmt.Errorf("stack image %s: no linux/%s image", img, runtime.GOARCH)
		}
	}
	b, err = readBlob(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("stack image %s: %w", img, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("stack image %s: manifest: %w", img, err)
	}
	cfg, err := readBlob(m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("stack image %s: config: %w", img, err)
	}
	return &layoutImage{manifest: desc.Digest, config: cfg}, nil
}
