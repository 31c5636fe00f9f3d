package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipwayhq/slipway/internal/oci"
	"github.com/slipwayhq/slipway/scale"
)

// image is an image ready to run: its config and its unpacked root.
type image struct {
	digest string
	config ocispec.ImageConfig
	rootfs string // read-only lower layer
}

// imageCache resolves images in the layout and unpacks each digest once.
type imageCache struct {
	layout oci.Layout
	dir    string

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per digest, held while unpacking
}

func (c *imageCache) lock(d string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locks == nil {
		c.locks = make(map[string]*sync.Mutex)
	}
	l := c.locks[d]
	if l == nil {
		l = new(sync.Mutex)
		c.locks[d] = l
	}
	return l
}

// get resolves img (digest first) and unpacks it if it is not yet.
func (c *imageCache) get(ctx context.Context, img scale.Image) (*image, error) {
	// A digest pins the image: never fall back to what Ref names now.
	resolved, err := c.layout.Resolve(img.Ref, img.Digest)
	if errors.Is(err, oci.ErrNotFound) {
		return nil, fmt.Errorf("image %s: %w: %w", imageName(img), scale.ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", imageName(img), err)
	}
	d := resolved.Digest.Encoded()
	root := filepath.Join(c.dir, d, "rootfs")
	out := &image{digest: resolved.Digest.String(), config: resolved.Config.Config, rootfs: root}
	done := filepath.Join(c.dir, d, "unpacked")
	if _, err := os.Stat(done); err == nil {
		return out, nil
	}
	l := c.lock(d)
	l.Lock()
	defer l.Unlock()
	if _, err := os.Stat(done); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, stateErr("creating image cache", c.dir, err)
	}
	tmp, err := os.MkdirTemp(c.dir, d+".unpacking-")
	if err != nil {
		return nil, stateErr("unpacking image", c.dir, err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	tmpRoot := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(tmpRoot, 0o755); err != nil {
		return nil, stateErr("unpacking image", tmpRoot, err)
	}
	if err := c.layout.Unpack(ctx, resolved, tmpRoot); err != nil {
		return nil, stateErr("unpacking image "+resolved.Digest.String(), tmpRoot, err)
	}
	final := filepath.Join(c.dir, d)
	_ = os.RemoveAll(final) // a partial leftover without its "unpacked" mark
	if err := os.Rename(tmp, final); err != nil {
		return nil, stateErr("unpacking image", final, err)
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		return nil, stateErr("unpacking image", done, err)
	}
	return out, nil
}

func imageName(img scale.Image) string {
	if img.Digest != "" {
		return img.Digest
	}
	return img.Ref
}
