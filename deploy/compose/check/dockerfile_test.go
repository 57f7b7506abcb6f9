package deploycheck

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDockerfileLint: BuildKit's linter (docker build --check) finds nothing,
// and BuildKit converts every stage; a broken Dockerfile fails either way.
func TestDockerfileLint(t *testing.T) {
	dt := readRepo(t, "deploy/Dockerfile")
	warnings, err := Lint(dt)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("deploy/Dockerfile: %v\n%s", err, strings.Join(warnings, "\n"))
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"casing", "AS build", "as build", "FromAsCasing"},
		{"secret in ENV", "WORKDIR /src\n", "WORKDIR /src\nENV API_PASSWORD=x\n", "SecretsUsedInArgOrEnv"},
		{"unknown stage", "COPY --from=build /src/out/switchyard", "COPY --from=biuld /src/out/switchyard", "biuld"},
		{"unknown instruction", "STOPSIGNAL SIGTERM", "STOPSIGNALS SIGTERM", "unknown instruction"},
		{"bad RUN flag", "--mount=type=cache,target=/go/pkg/mod \\\n    go mod download", "--mount=type=cahce,target=/go/pkg/mod \\\n    go mod download", "cahce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Contains(dt, []byte(tc.old)) {
				t.Fatalf("the Dockerfile no longer holds %q: update this case", tc.old)
			}
			broken := bytes.Replace(dt, []byte(tc.old), []byte(tc.new), 1)
			warnings, err := Lint(broken)
			got := strings.Join(warnings, "\n")
			if err != nil {
				got += "\n" + err.Error()
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("want a problem naming %q, got %q", tc.want, got)
			}
		})
	}
}

// TestImageConfig: for both platforms, the image runs the relay as a
// non-root user, with its data in the volume, the two ports, a health
// check on the API, SIGTERM, and its own configuration file; the build
// stage uses the Go of go.mod.
func TestImageConfig(t *testing.T) {
	dt := readRepo(t, "deploy/Dockerfile")
	set, err := ReadRelaySettings(repoFile(t, "deploy/docker/plugins.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(readRepo(t, "go.mod"))
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			img, bases, err := ImageConfig(dt, arch, map[string]string{"VERSION": "1.2.3"})
			if err != nil {
				t.Fatal(err)
			}
			if img.Architecture != arch || img.OS != "linux" {
				t.Errorf("platform %s/%s, want linux/%s", img.OS, img.Architecture, arch)
			}
			for _, err := range CheckImage(img, set) {
				t.Error(err)
			}
			want := []string{"docker.io/library/golang:" + string(goVersion[1]), "gcr.io/distroless/static-debian12:nonroot"}
			if !slices.Equal(bases, want) {
				t.Errorf("base images %q, want %q (the builder's Go is go.mod's)", bases, want)
			}
			if v := img.Config.Labels["org.opencontainers.image.version"]; v != "1.2.3" {
				t.Errorf("version label %q, want the VERSION build argument", v)
			}
		})
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"root", "USER 65532:65532\n", "", "root"},
		{"volume", "VOLUME /var/lib/switchyard", "VOLUME /data", "outside the VOLUME"},
		{"health port", "http://127.0.0.1:8081/health", "http://127.0.0.1:9999/health", "HEALTHCHECK"},
		{"signal", "STOPSIGNAL SIGTERM", "STOPSIGNAL SIGINT", "STOPSIGNAL"},
		{"ports", "EXPOSE 8080 8081", "EXPOSE 8080", "EXPOSE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := bytes.Replace(dt, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(broken, dt) {
				t.Fatalf("the Dockerfile no longer holds %q: update this case", tc.old)
			}
			img, _, err := ImageConfig(broken, "amd64", nil)
			if err != nil {
				t.Fatal(err)
			}
			errs := CheckImage(img, set)
			if !slices.ContainsFunc(errs, func(e error) bool { return strings.Contains(e.Error(), tc.want) }) {
				t.Fatalf("want a problem naming %q, got %v", tc.want, errs)
			}
		})
	}
}

// TestDockerignore: the build context holds the sources and the container's
// configuration, and none of the history, build output, local data and
// secrets; one that leaves out a package the relay needs fails to build.
func TestDockerignore(t *testing.T) {
	ig, err := ReadIgnore(repoFile(t, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"go.mod", "go.sum", "sdk/go.mod", "sdk/guest/guest.go", "plugins/build.sh",
		"runtime/cmd/switchyard/main.go", "deploy/docker/plugins.yaml", "plugins/collectors/synthetic/wasm/main.go"} {
		if ig.Excludes(p) {
			t.Errorf("%s is left out of the build context", p)
		}
	}
	for _, p := range []string{".git/HEAD", "bin/switchyard", "bin/plugins/transforms.scale.wasm", "data/switchyard.db",
		"deploy/compose/full/.env", "deploy/compose/full/secrets/dgraph-hmac", "deploy/k8s/x.yaml", "deploy/Dockerfile",
		"sdk/assemblyscript/node_modules/x/index.js", "examples/rust-scale/target/x", ".env"} {
		if !ig.Excludes(p) {
			t.Errorf("%s is in the build context", p)
		}
	}
	// A context without sdk/ cannot build the relay (go.mod replaces the sdk
	// module with ./sdk): the copy-and-build check catches it.
	broken := filepath.Join(t.TempDir(), ".dockerignore")
	if err := os.WriteFile(broken, append(readRepo(t, ".dockerignore"), "sdk\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	ig, err = ReadIgnore(broken)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := CopyContext(root, dir, ig); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "./runtime/cmd/switchyard")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("a context without sdk/ still lists the relay's packages:\n%s", tail(string(out), 5))
	}
}

// built is the build stage of deploy/Dockerfile run once on this machine
// for linux/arm64 (cross-compiled, as buildx does on an amd64 builder).
var built struct {
	once  sync.Once
	err   error
	b     *Build
	files *ImageFiles
	ctx   string
}

func buildStage(t *testing.T) (*Build, *ImageFiles) {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "deploycheck-context-")
		if err != nil {
			built.err = err
			return
		}
		built.ctx = dir
		ig, err := ReadIgnore(filepath.Join(root, ".dockerignore"))
		if err != nil {
			built.err = err
			return
		}
		if _, err := CopyContext(root, dir, ig); err != nil {
			built.err = err
			return
		}
		dt, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
		if err != nil {
			built.err = err
			return
		}
		stages, err := Stages(dt)
		if err != nil {
			built.err = err
			return
		}
		build, err := StageNamed(stages, "build")
		if err != nil {
			built.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		b, err := RunBuildStage(ctx, build, dir, map[string]string{
			"TARGETOS": "linux", "TARGETARCH": "arm64", "TARGETPLATFORM": "linux/arm64",
			"BUILDPLATFORM": "linux/amd64", "VERSION": version(),
		})
		if err != nil {
			built.err = err
			return
		}
		built.b = b
		built.files, built.err = FinalFiles(stages[len(stages)-1], map[string]*Build{"build": b}, dir)
	})
	if built.err != nil {
		t.Fatalf("the build stage of deploy/Dockerfile, run here: %v", built.err)
	}
	return built.b, built.files
}

// TestBuildStage runs the Dockerfile's build stage here, in a copy of the
// build context that .dockerignore lets through: every file the final
// stage copies exists, the relay is a static linux/arm64 binary with the
// version, the plugins are WASM modules, and every module the image's
// configuration names is in the image.
func TestBuildStage(t *testing.T) {
	_, files := buildStage(t)
	bin, err := files.Resolve("/usr/local/bin/switchyard")
	if err != nil {
		t.Fatal(err)
	}
	checkRelayBinary(t, bin, "arm64", version())
	set, err := ReadRelaySettings(repoFile(t, "deploy/docker/plugins.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Modules) == 0 {
		t.Fatal("the image's configuration names no module")
	}
	for _, m := range set.Modules {
		p, err := files.Resolve(m)
		if err != nil {
			t.Errorf("module %s: %v", m, err)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, []byte("\x00asm")) {
			t.Errorf("module %s (%s): not a WASM module: %v", m, p, err)
		}
	}
	if got := files.Chown["/var/lib/switchyard"]; got != "65532:65532" {
		t.Errorf("the volume's folder is copied with --chown=%q, want the image's USER 65532:65532", got)
	}
}

// TestCrossBuild: make cross's arm64 relay (make deploy-check builds it).
func TestCrossBuild(t *testing.T) {
	bin := filepath.Join(root, "bin", "linux-arm64", "switchyard")
	_, err := os.Stat(bin)
	need(t, err == nil, "bin/linux-arm64/switchyard (make cross)")
	want := os.Getenv("DEPLOYCHECK_VERSION")
	checkRelayBinary(t, bin, "arm64", want)
}

// checkRelayBinary: a static Linux ELF for arch, built without cgo, with
// -trimpath and the version (when want is not empty).
func checkRelayBinary(t *testing.T, bin, arch, want string) {
	t.Helper()
	for _, p := range binaryProblems(bin, arch, want) {
		t.Errorf("%s: %s", bin, p)
	}
}

func binaryProblems(bin, arch, want string) []string {
	var out []string
	f, err := elf.Open(bin)
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != machine {
		out = append(out, fmt.Sprintf("machine %v, want %v", f.Machine, machine))
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			out = append(out, "dynamically linked (has an interpreter): it would not run on distroless/static")
		}
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return append(out, err.Error())
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	for _, k := range []string{"GOOS", "GOARCH", "CGO_ENABLED", "-trimpath"} {
		v := map[string]string{"GOOS": "linux", "GOARCH": arch, "CGO_ENABLED": "0", "-trimpath": "true"}[k]
		if settings[k] != v {
			out = append(out, fmt.Sprintf("%s=%q, want %q", k, settings[k], v))
		}
	}
	// -trimpath keeps -ldflags out of the build information: read the
	// variable itself.
	if want != "" {
		got, err := stringVar(f, "main.version")
		if err != nil || got != want {
			out = append(out, fmt.Sprintf("main.version is %q (%v), want %q (-ldflags -X)", got, err, want))
		}
	}
	return out
}

// TestBinaryCheckFails: the binary check refuses the relay of make build
// (this machine's, cgo on, no -trimpath) as a release relay for arm64.
func TestBinaryCheckFails(t *testing.T) {
	problems := binaryProblems(relayBin(t), "arm64", "not-its-version")
	for _, want := range []string{"machine", "-trimpath", "main.version"} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("want a problem naming %q, got %q", want, problems)
		}
	}
	t.Logf("fails as it should: %s", strings.Join(problems, "; "))
}

// stringVar reads a Go string variable of a 64-bit little-endian ELF
// binary through its symbol: the string header, then the bytes it points to.
func stringVar(f *elf.File, name string) (string, error) {
	syms, err := f.Symbols()
	if err != nil {
		return "", err
	}
	read := func(addr, n uint64) ([]byte, error) {
		for _, s := range f.Sections {
			if s.Type != elf.SHT_NOBITS && addr >= s.Addr && addr+n <= s.Addr+s.Size {
				b := make([]byte, n)
				_, err := s.ReadAt(b, int64(addr-s.Addr))
				return b, err
			}
		}
		return nil, fmt.Errorf("address %#x is in no section with data", addr)
	}
	for _, s := range syms {
		if s.Name != name {
			continue
		}
		hdr, err := read(s.Value, 16)
		if err != nil {
			return "", err
		}
		ptr, n := binary.LittleEndian.Uint64(hdr), binary.LittleEndian.Uint64(hdr[8:])
		if n == 0 {
			return "", nil
		}
		b, err := read(ptr, n)
		return string(b), err
	}
	return "", fmt.Errorf("no symbol %s", name)
}

// TestContainerConfig: the relay accepts the image's own configuration
// file as it is, with no environment (the image sets none).
func TestContainerConfig(t *testing.T) {
	img := relayImage(t)
	if img.DefaultConfig != repoFile(t, "deploy/docker/plugins.yaml") {
		t.Errorf("the image's %s comes from %s, want deploy/docker/plugins.yaml", img.ConfigPath, img.DefaultConfig)
	}
	if err := ValidateRelay(relayBin(t), img.DefaultConfig, nil); err != nil {
		t.Error(err)
	}
}
