package deploycheck

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Lint runs the checks of `docker build --check` (BuildKit's Dockerfile
// linter, every rule on) and converts the Dockerfile the way a build would,
// for every stage, without fetching a base image. It returns one line per
// warning and the conversion's error, if any, each with its line.
func Lint(dt []byte) ([]string, error) {
	sm := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	r := &offlineResolver{}
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		SourceMap:    sm,
		MetaResolver: r,
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		out = append(out, fmt.Sprintf("line %d: %s: %s", line, w.RuleName, w.Detail))
	}
	// An image without a tag is pulled as :latest, and a COPY --from that
	// names no stage is an image too: either is a mistake here.
	for _, ref := range r.names() {
		if strings.HasSuffix(ref, ":latest") {
			out = append(out, fmt.Sprintf("image %s: not pinned to a tag (or a COPY --from names no stage)", ref))
		}
	}
	if res.Error != nil {
		line := 0
		if len(res.Error.Location.Ranges) > 0 {
			line = int(res.Error.Location.Ranges[0].Start.Line)
		}
		return out, fmt.Errorf("line %d: %s", line, res.Error.Message)
	}
	return out, nil
}

// ImageConfig converts the Dockerfile for linux/arch, as `docker buildx build
// --platform linux/arch` does, and returns the image's configuration (user,
// ports, volumes, health check, entrypoint, …) and the base images named.
// Base images are not fetched: each resolves to an empty configuration, so
// what the result holds is what the Dockerfile itself says.
func ImageConfig(dt []byte, arch string, buildArgs map[string]string) (*dockerspec.DockerOCIImage, []string, error) {
	r := &offlineResolver{}
	res, err := dockerfile2llb.Dockerfile2LLB(context.Background(), dt, dockerfile2llb.ConvertOpt{
		Config:         dockerui.Config{BuildArgs: buildArgs},
		TargetPlatform: &ocispecs.Platform{OS: "linux", Architecture: arch},
		MetaResolver:   r,
	})
	if err != nil {
		return nil, nil, err
	}
	return res.Image, r.names(), nil
}

// offlineResolver answers BuildKit's question "what is this base image's
// configuration?" with an empty one for the platform asked, so that nothing
// is fetched from a registry.
type offlineResolver struct {
	mu   sync.Mutex
	refs []string
}

func (r *offlineResolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	r.mu.Lock()
	if !slices.Contains(r.refs, ref) {
		r.refs = append(r.refs, ref)
	}
	r.mu.Unlock()
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		p = *opt.ImageOpt.Platform
	}
	cfg, err := json.Marshal(ocispecs.Image{Platform: p, RootFS: ocispecs.RootFS{Type: "layers"}})
	if err != nil {
		return "", "", nil, err
	}
	sum := sha256.Sum256([]byte(ref))
	return ref, digest.NewDigestFromBytes(digest.SHA256, sum[:]), cfg, nil
}

func (r *offlineResolver) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.refs)
	sort.Strings(out)
	return out
}

// Stages parses the Dockerfile into its stages, as BuildKit does.
func Stages(dt []byte) ([]instructions.Stage, error) {
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil, err
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	return stages, err
}

// Build is the build stage run on this machine: where its files ended up.
type Build struct {
	// Workdir is the stage's WORKDIR in the image (/src) and Dir where it is
	// here: the copy of the build context the stage ran in.
	Workdir, Dir string
	// Log holds what the stage's commands printed.
	Log string
}

// HostPath maps a path of the build stage's file system to this machine.
func (b *Build) HostPath(p string) (string, error) {
	rel, ok := within(b.Workdir, p)
	if !ok {
		return "", fmt.Errorf("%s is outside the build stage's WORKDIR %s, which is all that is emulated", p, b.Workdir)
	}
	return filepath.Join(b.Dir, filepath.FromSlash(rel)), nil
}

// RunBuildStage runs the commands of the named stage on this machine, in
// dir, which must hold the build context as .dockerignore lets it through:
// the stage must set its WORKDIR and COPY the context there (`COPY . .`),
// COPYs from the context before that are covered by it, RUN commands run
// with the stage's ARG and ENV values (args overrides the ARG defaults, as
// --build-arg does; TARGETOS, TARGETARCH and the like must be in it) on top
// of this process's environment. --mount options are ignored: caches only.
func RunBuildStage(ctx context.Context, stage instructions.Stage, dir string, args map[string]string) (*Build, error) {
	b := &Build{Dir: dir}
	env := map[string]string{}
	var log bytes.Buffer
	copied := false
	for _, c := range stage.Commands {
		switch c := c.(type) {
		case *instructions.WorkdirCommand:
			if b.Workdir != "" && c.Path != b.Workdir {
				return nil, fmt.Errorf("stage %s: a second WORKDIR (%s) is not emulated", stage.Name, c.Path)
			}
			if !path.IsAbs(c.Path) {
				return nil, fmt.Errorf("stage %s: WORKDIR %s is not absolute", stage.Name, c.Path)
			}
			b.Workdir = c.Path
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				if v, ok := args[kv.Key]; ok {
					env[kv.Key] = v
				} else if kv.Value != nil {
					env[kv.Key] = *kv.Value
				} else {
					env[kv.Key] = ""
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = os.Expand(kv.Value, func(k string) string { return env[k] })
			}
		case *instructions.CopyCommand:
			if c.From != "" {
				return nil, fmt.Errorf("stage %s: COPY --from in the build stage is not emulated", stage.Name)
			}
			if b.Workdir == "" {
				return nil, fmt.Errorf("stage %s: COPY before WORKDIR is not emulated", stage.Name)
			}
			for _, src := range c.SourcePaths {
				if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(src))); err != nil {
					return nil, fmt.Errorf("stage %s: COPY %s: not in the build context (.dockerignore?): %w", stage.Name, src, err)
				}
			}
			if len(c.SourcePaths) == 1 && c.SourcePaths[0] == "." && (c.DestPath == "." || c.DestPath == "./" || c.DestPath == b.Workdir) {
				copied = true
			}
		case *instructions.RunCommand:
			if !copied {
				// Before `COPY . .` the stage sees fewer files than the
				// emulation, which is harmless for what it runs (go mod download).
				fmt.Fprintf(&log, "(before COPY . .) ")
			}
			argv := c.CmdLine
			if c.PrependShell {
				argv = []string{"/bin/sh", "-c", strings.Join(c.CmdLine, " ")}
			}
			fmt.Fprintf(&log, "RUN %s\n", strings.Join(c.CmdLine, " "))
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Dir = dir
			cmd.Env = os.Environ()
			for k, v := range env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			cmd.Stdout, cmd.Stderr = &log, &log
			if err := cmd.Run(); err != nil {
				return nil, fmt.Errorf("stage %s: RUN %s: %w\n%s", stage.Name, strings.Join(c.CmdLine, " "), err, log.String())
			}
		}
	}
	if !copied {
		return nil, fmt.Errorf("stage %s: no `COPY . .` into its WORKDIR: the emulation needs one", stage.Name)
	}
	b.Log = log.String()
	return b, nil
}

// ImageFiles maps paths of the final image to this machine: each COPY of
// the final stage, from the build stage (through b) or from the build
// context (dir). Resolve finds a path inside any of them.
type ImageFiles struct {
	// Copies maps each COPY's destination to its source here.
	Copies map[string]string
	// Chown maps a destination to the --chown of its COPY.
	Chown map[string]string
}

// FinalFiles reads the COPY instructions of the final stage; with builds
// nil, only those from the build context.
func FinalFiles(final instructions.Stage, builds map[string]*Build, contextDir string) (*ImageFiles, error) {
	f := &ImageFiles{Copies: map[string]string{}, Chown: map[string]string{}}
	for _, c := range final.Commands {
		cp, ok := c.(*instructions.CopyCommand)
		if !ok {
			continue
		}
		if len(cp.SourcePaths) != 1 {
			return nil, fmt.Errorf("COPY %v: the check understands one source per COPY only", cp.SourcePaths)
		}
		src, dst := cp.SourcePaths[0], strings.TrimSuffix(cp.DestPath, "/")
		var host string
		if cp.From != "" && builds == nil {
			continue // the build stage was not run: context files only
		}
		if cp.From != "" {
			b, ok := builds[cp.From]
			if !ok {
				return nil, fmt.Errorf("COPY --from=%s: no such stage was run", cp.From)
			}
			var err error
			if host, err = b.HostPath(strings.TrimSuffix(src, "/")); err != nil {
				return nil, fmt.Errorf("COPY --from=%s %s: %w", cp.From, src, err)
			}
		} else {
			host = filepath.Join(contextDir, filepath.FromSlash(src))
		}
		if _, err := os.Stat(host); err != nil {
			return nil, fmt.Errorf("COPY %s %s: the source does not exist after the build stage: %w", src, cp.DestPath, err)
		}
		f.Copies[dst] = host
		f.Chown[dst] = cp.Chown
	}
	return f, nil
}

// Resolve maps a path of the image to this machine through the COPY whose
// destination holds it.
func (f *ImageFiles) Resolve(p string) (string, error) {
	best := ""
	for dst := range f.Copies {
		if _, ok := within(dst, p); ok && len(dst) > len(best) {
			best = dst
		}
	}
	if best == "" {
		return "", fmt.Errorf("%s: no COPY of the final stage puts anything there", p)
	}
	rel, _ := within(best, p)
	return filepath.Join(f.Copies[best], filepath.FromSlash(rel)), nil
}

// within reports whether p is dir or inside it, and p relative to dir.
func within(dir, p string) (string, bool) {
	dir, p = path.Clean(dir), path.Clean(p)
	if p == dir {
		return ".", true
	}
	if rel, ok := strings.CutPrefix(p, strings.TrimSuffix(dir, "/")+"/"); ok {
		return rel, true
	}
	return "", false
}

// StageNamed returns the stage called name.
func StageNamed(stages []instructions.Stage, name string) (instructions.Stage, error) {
	for _, s := range stages {
		if s.Name == name {
			return s, nil
		}
	}
	return instructions.Stage{}, errors.New("no stage named " + name)
}

// CheckImage checks the image's configuration for one platform against
// what the relay needs: a non-root user, the volume holding every path the
// relay writes, the two ports it listens on, a health check on the API,
// SIGTERM, and the command naming the configuration file. set is what that
// file says (ReadRelaySettings).
func CheckImage(img *dockerspec.DockerOCIImage, set *RelaySettings) []error {
	var errs []error
	c := img.Config
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	user, _, _ := strings.Cut(c.User, ":")
	if user == "" || user == "0" || user == "root" {
		add("USER is %q: the image must not run as root", c.User)
	} else if _, err := strconv.Atoi(user); err != nil {
		add("USER %q is not numeric: Kubernetes' runAsNonRoot can only check a numeric user", c.User)
	}
	if len(c.Volumes) != 1 {
		add("want one VOLUME for the relay's data, got %v", slices.Sorted(maps.Keys(c.Volumes)))
	}
	for v := range c.Volumes {
		for _, p := range set.DataPaths {
			if _, ok := within(v, p); !ok {
				add("the relay writes %s, outside the VOLUME %s", p, v)
			}
		}
		if _, ok := within(v, c.WorkingDir); !ok {
			add("WORKDIR %s is outside the VOLUME %s: a relative path would write outside it", c.WorkingDir, v)
		}
	}
	want := []string{fmt.Sprintf("%d/tcp", portOf(set.GatewayListen)), fmt.Sprintf("%d/tcp", portOf(set.APIListen))}
	if got := slices.Sorted(maps.Keys(c.ExposedPorts)); !slices.Equal(got, want) {
		add("EXPOSE %v, want %v (gateway.listen %s, api.listen %s)", got, want, set.GatewayListen, set.APIListen)
	}
	if h := c.Healthcheck; h == nil || len(h.Test) < 2 {
		add("no HEALTHCHECK")
	} else {
		probe := strings.Join(h.Test, " ")
		if h.Test[0] != "CMD" || !strings.Contains(probe, fmt.Sprintf("http://127.0.0.1:%d/health", portOf(set.APIListen))) {
			add("HEALTHCHECK %q does not ask http://127.0.0.1:%d/health in exec form", probe, portOf(set.APIListen))
		}
	}
	if c.StopSignal != "SIGTERM" {
		add("STOPSIGNAL is %q, want SIGTERM: the relay drains devices on SIGTERM", c.StopSignal)
	}
	if len(c.Entrypoint) == 0 || !strings.HasSuffix(c.Entrypoint[0], "/switchyard") {
		add("ENTRYPOINT %q does not run switchyard", c.Entrypoint)
	}
	if len(c.Cmd) < 3 || c.Cmd[0] != "run" || c.Cmd[1] != "-c" {
		add("CMD %q is not run -c <file>", c.Cmd)
	}
	return errs
}
