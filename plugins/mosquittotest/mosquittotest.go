// Package mosquittotest runs a real, private Mosquitto for a test: its own
// configuration, data folder and free loopback port, persistence on (so a
// restart keeps persistent sessions and their queued QoS 1 messages),
// optionally a password file and a TLS listener with a certificate authority
// made for the test. scripts/mosquitto.sh bin installs the binaries.
//
// When mosquitto is missing, tests that need it are skipped with a message
// saying how to install it, unless SWITCHYARD_REQUIRE_MOSQUITTO is set: then
// they fail.
package mosquittotest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Config tunes Start.
type Config struct {
	// TLS adds a TLS listener (Server.TLSURL) whose certificate, for
	// 127.0.0.1 and localhost, is signed by a CA made for the test
	// (Server.CAFile).
	TLS bool
	// Users, when set, turns anonymous access off: only these user names
	// with these passwords may connect.
	Users map[string]string
}

// Server is a running (or stopped) Mosquitto.
type Server struct {
	Addr    string // 127.0.0.1:port of the plain listener
	URL     string // mqtt://Addr
	TLSAddr string // 127.0.0.1:port of the TLS listener, when Config.TLS
	TLSURL  string // mqtts://TLSAddr
	CAFile  string // PEM of the CA that signed the TLS listener's certificate
	Dir     string // configuration, data and log

	mu     sync.Mutex
	cmd    *exec.Cmd
	waited chan struct{}
	log    *os.File
}

// Binary returns the path of mosquitto (MOSQUITTO_BIN, PATH or
// /usr/sbin/mosquitto) and whether it exists.
func Binary() (string, bool) {
	return find("MOSQUITTO_BIN", "mosquitto", "/usr/sbin/mosquitto")
}

func find(env, name, fallback string) (string, bool) {
	if p := os.Getenv(env); p != "" {
		_, err := os.Stat(p)
		return p, err == nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	_, err := os.Stat(fallback)
	return fallback, err == nil
}

// Require skips the test, or fails it under SWITCHYARD_REQUIRE_MOSQUITTO,
// when mosquitto is not installed.
func Require(tb testing.TB) {
	tb.Helper()
	bin, ok := Binary()
	if ok {
		return
	}
	msg := fmt.Sprintf("mosquittotest: no mosquitto at %s: run `scripts/mosquitto.sh bin` (installs mosquitto and mosquitto-clients)", bin)
	if os.Getenv("SWITCHYARD_REQUIRE_MOSQUITTO") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// Start runs a private Mosquitto for the test and stops it when the test ends.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	Require(tb)
	s := &Server{Dir: tb.TempDir()}
	if err := os.Mkdir(filepath.Join(s.Dir, "data"), 0o700); err != nil {
		tb.Fatal(err)
	}
	s.Addr = freeAddr(tb)
	s.URL = "mqtt://" + s.Addr
	conf := []string{
		"per_listener_settings false",
		"listener " + port(s.Addr) + " 127.0.0.1",
		"persistence true",
		"persistence_location " + filepath.Join(s.Dir, "data") + "/",
		"autosave_interval 1",
		"log_dest stderr",
		"log_type error", "log_type warning", "log_type notice", "log_type information",
		"connection_messages true",
		"log_timestamp_format %H:%M:%S",
	}
	if u, err := user.Current(); err == nil && os.Geteuid() == 0 {
		// Run as root, mosquitto would drop to the "mosquitto" user, which
		// cannot write the test's data folder.
		conf = append(conf, "user "+u.Username)
	}
	if cfg.TLS {
		ca, cert, key := writeCerts(tb, s.Dir)
		s.CAFile = ca
		s.TLSAddr = freeAddr(tb)
		s.TLSURL = "mqtts://" + s.TLSAddr
		conf = append(conf, "listener "+port(s.TLSAddr)+" 127.0.0.1", "cafile "+ca, "certfile "+cert, "keyfile "+key)
	}
	if len(cfg.Users) > 0 {
		conf = append(conf, "allow_anonymous false", "password_file "+writePasswords(tb, s.Dir, cfg.Users))
	} else {
		conf = append(conf, "allow_anonymous true")
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "mosquitto.conf"), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	s.Start(tb)
	tb.Cleanup(s.Stop)
	return s
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// freeAddr picks a free port on 127.0.0.1.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("mosquittotest: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func writePasswords(tb testing.TB, dir string, users map[string]string) string {
	tb.Helper()
	bin, ok := find("MOSQUITTO_PASSWD_BIN", "mosquitto_passwd", "/usr/bin/mosquitto_passwd")
	if !ok {
		tb.Fatalf("mosquittotest: no mosquitto_passwd at %s: run `scripts/mosquitto.sh bin`", bin)
	}
	path := filepath.Join(dir, "passwords")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	for name, pass := range users {
		out, err := exec.Command(bin, "-b", path, name, pass).CombinedOutput()
		if err != nil {
			tb.Fatalf("mosquittotest: mosquitto_passwd %s: %v: %s", name, err, out)
		}
	}
	return path
}

// Start (re)starts the server on its port and data folder and waits until
// it accepts connections.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		tb.Fatal("mosquittotest: Start of a running server")
	}
	bin, _ := Binary()
	log, err := os.OpenFile(filepath.Join(s.Dir, "mosquitto.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatalf("mosquittotest: %v", err)
	}
	cmd := exec.Command(bin, "-c", filepath.Join(s.Dir, "mosquitto.conf"))
	cmd.Stdout, cmd.Stderr = log, log
	// The kernel stops mosquitto if this test process dies first.
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		tb.Fatalf("mosquittotest: start %s: %v", bin, err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	addrs := []string{s.Addr}
	if s.TLSAddr != "" {
		addrs = append(addrs, s.TLSAddr)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-waited:
				log.Close()
				tb.Fatalf("mosquittotest: mosquitto exited at start (%v):\n%s", cmd.ProcessState, s.Log())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				<-waited
				log.Close()
				tb.Fatalf("mosquittotest: mosquitto did not listen on %s within 15s:\n%s", addr, s.Log())
			}
		}
	}
	s.cmd, s.waited, s.log = cmd, waited, log
}

// Stop stops the server (SIGTERM, so it saves its sessions and queued
// messages); the data stays for a later Start. Stopping a stopped server
// does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.waited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.waited
	}
	s.log.Close()
	s.cmd = nil
}

// Log returns what the server has logged so far, across restarts.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "mosquitto.log"))
	return string(bytes.TrimSpace(b))
}
