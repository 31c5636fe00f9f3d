//go:build integration

package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/slipwayhq/slipway/internal/testenv"
)

// PebbleVar names the Pebble binary (github.com/letsencrypt/pebble/v2/cmd/pebble),
// exported by scripts/services.sh.
const pebbleVar = "SLIPWAY_PEBBLE"

// TestACMEWithPebble gets a real certificate from Pebble (Let's Encrypt's
// test CA) over TLS-ALPN-01 and serves HTTP/2 with it; a host that is not
// routed gets none.
func TestACMEWithPebble(t *testing.T) {
	pebble := testenv.Get(t, pebbleVar)
	dir := t.TempDir()

	dnsAddr := startLoopbackDNS(t)
	pebbleCert := writeSelfSigned(t, dir)
	ports := freePorts(t, 4)
	listen, mgmt, httpPort, tlsPort := ports[0], ports[1], ports[2], ports[3]
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", listen),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":                    filepath.Join(dir, "cert.pem"),
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       httpPort,
		"tlsPort":                        tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"profiles":                       map[string]any{"default": map[string]any{"description": "default", "validityPeriod": 7776000}},
	}}
	b, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(dir, "pebble.json"), b, 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pebble, "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	logf, _ := os.Create(filepath.Join(dir, "pebble.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "pebble.log"))
			t.Logf("pebble log:\n%s", out)
		}
	})

	pool := x509.NewCertPool()
	pool.AddCert(pebbleCert)
	acmeClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	dirURL := fmt.Sprintf("https://127.0.0.1:%d/dir", listen)
	waitFor(t, func() error {
		res, err := acmeClient.Get(dirURL)
		if err == nil {
			res.Body.Close()
		}
		return err
	})

	rt, err := New(Config{ACME: &ACME{
		Cache:        autocert.DirCache(filepath.Join(dir, "certs")),
		DirectoryURL: dirURL,
		HTTPClient:   acmeClient,
		Email:        "ops@app.test",
	}})
	if err != nil {
		t.Fatal(err)
	}
	lnTLS, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort))
	if err != nil {
		t.Fatal(err)
	}
	lnHTTP, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 2)
	go func() { errc <- rt.ServeTLS(lnTLS) }()
	go func() { errc <- rt.Serve(lnHTTP) }()
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := rt.Shutdown(sctx); err != nil {
			t.Error(err)
		}
		for i := 0; i < 2; i++ {
			if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
				t.Error(err)
			}
		}
	}()
	_, be := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, r.Header.Get("X-Forwarded-Proto"))
	})
	rt.SetHosts("app", []string{"app.test"})
	setBackends(t, rt, "app", be)

	// The client trusts Pebble's root, which Pebble makes at start.
	res, err := acmeClient.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmt))
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(res.Body)
	res.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("no root in %q", rootPEM)
	}
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, lnTLS.Addr().String())
		},
	}}
	start := time.Now()
	res, err = client.Get("https://app.test/")
	if err != nil {
		t.Fatalf("GET https://app.test/: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	t.Logf("first HTTPS request (certificate issued on the way) took %s: %s %q", time.Since(start), res.Proto, body)
	if res.StatusCode != 200 || res.ProtoMajor != 2 || string(body) != "HTTP/1.1 https" {
		t.Errorf("got %s %d %q, want HTTP/2 200 from an HTTP/1.1 backend told https", res.Proto, res.StatusCode, body)
	}
	if res.TLS == nil || res.TLS.PeerCertificates[0].Subject.CommonName != "app.test" && res.TLS.PeerCertificates[0].DNSNames[0] != "app.test" {
		t.Errorf("served certificate %+v", res.TLS.PeerCertificates[0].DNSNames)
	}
	if _, err := os.Stat(filepath.Join(dir, "certs", "app.test")); err != nil {
		t.Errorf("certificate not in the cache: %v", err)
	}

	// Not routed: no certificate is asked for, the handshake fails.
	if _, err := client.Get("https://other.test/"); err == nil {
		t.Error("a host that is not routed got a certificate")
	}
}

func waitFor(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// writeSelfSigned writes cert.pem and key.pem for Pebble's own listener.
func writeSelfSigned(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pebble test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	c, _ := x509.ParseCertificate(der)
	return c
}

// startLoopbackDNS answers every A question with 127.0.0.1 and every other
// question with no records, over UDP and TCP (Pebble asks over TCP): just
// enough DNS for Pebble's validation.
func startLoopbackDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n]); resp != nil {
				pc.WriteTo(resp, addr)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				for {
					var l [2]byte
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(l[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					resp := dnsAnswer(q)
					if resp == nil {
						return
					}
					c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(resp))))
					c.Write(resp)
				}
			}()
		}
	}()
	return pc.LocalAddr().String()
}

func dnsAnswer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	i := 12 // the question's name ends at a zero label
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	qend := i + 5
	qtype := binary.BigEndian.Uint16(q[i+1:])
	resp := append([]byte{q[0], q[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0}, q[12:qend]...)
	if qtype == 1 { // A: 127.0.0.1
		resp[7] = 1
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
	}
	return resp
}
