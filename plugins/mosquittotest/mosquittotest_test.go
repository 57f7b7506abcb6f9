package mosquittotest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"
)

// TestServer checks the harness itself: a message goes from one client to
// another over the plain and the TLS listener, with users, and a restart
// keeps the port.
func TestServer(t *testing.T) {
	s := Start(t, Config{TLS: true, Users: map[string]string{"alice": "secret"}})
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	sub := Connect(t, s.TLSURL, ClientOptions{ClientID: "sub", Username: "alice", Password: "secret",
		TLS: &tls.Config{RootCAs: pool}, Subscribe: []string{"a/#"}})
	pub := Connect(t, s.URL, ClientOptions{ClientID: "pub", Username: "alice", Password: "secret"})
	pub.Publish(t, "a/b", []byte("hi"), 1)
	if m := sub.Next(t, 10*time.Second); m.Topic != "a/b" || string(m.Payload) != "hi" {
		t.Fatalf("got %+v", m)
	}
	s.Stop()
	s.Stop() // no-op
	s.Start(t)
	Connect(t, s.URL, ClientOptions{ClientID: "again", Username: "alice", Password: "secret"})
}
