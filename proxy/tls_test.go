package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeTLSHTTP2 serves HTTP/2 over TLS with a certificate from
// Config.GetCertificate, on both forwarding paths.
func TestServeTLSHTTP2(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app.test"}, DNSNames: []string{"app.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	cert := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	rec := &recorder{}
	rt, err := New(Config{Hook: rec, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	errc := make(chan error, 1)
	go func() { errc <- rt.ServeTLS(ln) }()
	_, b := startBackend(t, "web.1", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		io.WriteString(w, r.Proto+" "+r.Header.Get("X-Forwarded-Proto")+" "+r.Method+" "+strings.Repeat("x", int(n)))
	})
	rt.SetHosts("app", []string{"app.test"})
	setBackends(t, rt, "app", b)

	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
		},
	}}
	defer client.CloseIdleConnections()
	for _, c := range []struct {
		method, body, want string
	}{{"GET", "", "HTTP/1.1 https GET "}, {"POST", "abc", "HTTP/1.1 https POST xxx"}} {
		req, _ := http.NewRequest(c.method, "https://app.test/", strings.NewReader(c.body))
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.ProtoMajor != 2 || string(got) != c.want {
			t.Errorf("%s: %s %q, want HTTP/2 and %q", c.method, res.Proto, got, c.want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client.CloseIdleConnections()
	if err := rt.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		t.Fatal(err)
	}
	if rs := rec.all(); len(rs) != 2 || rs[1].BytesIn != 3 || rs[0].Status != 200 {
		t.Errorf("reported %+v", rs)
	}
}
