package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"sync"

	"github.com/slipwayhq/slipway/paas"
)

// fileDomains keeps apps' domains in one JSON file, rewritten atomically.
type fileDomains struct {
	path string
	mu   sync.Mutex
}

var _ paas.DomainStore = (*fileDomains)(nil)

func (f *fileDomains) load() (map[string][]string, error) {
	m := map[string][]string{}
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	return m, json.Unmarshal(b, &m)
}

func (f *fileDomains) Domains(_ context.Context, app string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.load()
	return m[app], err
}

func (f *fileDomains) SetDomains(_ context.Context, app string, ds []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.load()
	if err != nil {
		return err
	}
	if len(ds) == 0 {
		delete(m, app)
	} else {
		m[app] = slices.Sorted(slices.Values(ds))
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(f.path+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(f.path+".tmp", f.path)
}

func (f *fileDomains) Owner(_ context.Context, domain string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.load()
	for app, ds := range m {
		if slices.Contains(ds, domain) {
			return app, err
		}
	}
	return "", err
}
