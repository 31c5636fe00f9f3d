package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// stateDir is where the server keeps everything and the CLI finds it:
// $MINIPAAS_HOME, else $HOME/.cache/slipway/minipaas.
func stateDir() string {
	if d := os.Getenv("MINIPAAS_HOME"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".cache", "slipway", "minipaas")
}

// loadToken returns the API token in dir, generating it on first use. It
// is kept with mode 0600: whoever reads it controls the platform.
func loadToken(dir string) (string, error) {
	path := filepath.Join(dir, "token")
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 24)
	rand.Read(raw)
	tok := hex.EncodeToString(raw)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	// Link, not rename: a second server starting at the same moment keeps
	// the first one's token instead of replacing it.
	if err := os.Link(path+".tmp", path); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	os.Remove(path + ".tmp")
	return loadToken(dir)
}

// endpoint is what a running server publishes in its state directory for
// the CLI.
type endpoint struct {
	API    string `json:"api"`    // http://127.0.0.1:7070
	Router string `json:"router"` // 127.0.0.1:8080
	Domain string `json:"domain"` // apps are served at <app>.<domain>:<router port>
	PID    int    `json:"pid"`
}

func writeEndpoint(dir string, e endpoint) error {
	b, _ := json.MarshalIndent(e, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "endpoint.json.tmp"), b, 0o600); err != nil {
		return err
	}
	return os.Rename(filepath.Join(dir, "endpoint.json.tmp"), filepath.Join(dir, "endpoint.json"))
}

func readEndpoint(dir string) (endpoint, error) {
	var e endpoint
	b, err := os.ReadFile(filepath.Join(dir, "endpoint.json"))
	if err != nil {
		return e, fmt.Errorf("no minipaas server found in %s (start one with `minipaas server`): %w", dir, err)
	}
	return e, json.Unmarshal(b, &e)
}
