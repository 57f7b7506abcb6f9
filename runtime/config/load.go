package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	kyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
	"go.yaml.in/yaml/v3"

	"github.com/switchyard/switchyard/graph"
)

const (
	// EnvPrefix starts every environment variable Switchyard reads. A
	// configuration key is set by EnvPrefix + its path in upper case with
	// "__" between levels: SWITCHYARD_GATEWAY__MAX_CONNECTIONS.
	EnvPrefix = "SWITCHYARD_"
	// EnvEncryptionKey holds the key that encrypts secrets at rest. It is
	// not a configuration key (it never appears in plugins.yaml).
	EnvEncryptionKey = "SWITCHYARD_ENCRYPTION_KEY"

	envSourcePrefix = "env "
	flagSource      = "flags"
)

// isNonKeyEnv reports whether name is a SWITCHYARD_ variable that another
// part of the runtime reads and that is therefore not a configuration key.
// This is the allow-list: add a variable here when one is introduced.
func isNonKeyEnv(name string) bool {
	switch name {
	case EnvEncryptionKey:
		return true
	}
	return false
}

// Source names where a configuration comes from.
type Source struct {
	// Path is the YAML file (plugins.yaml); "" for none (defaults only).
	Path string
	// Environ is the environment as os.Environ returns it; only variables
	// starting with SWITCHYARD_ are read. Nil reads nothing.
	Environ []string
	// Overrides come from command-line flags: key path ("gateway.listen")
	// to value, written as in an environment variable.
	Overrides map[string]string
}

// Load builds the configuration from its sources, each on top of the one
// before: Default, then the file, then SWITCHYARD_* environment variables,
// then Overrides. Every source is decoded strictly, then the result is
// validated. On any problem Load returns a nil Config and Problems listing
// them all, each with where it was found; a file that cannot be read is a
// plain error naming it.
//
// Load reads nothing but src (no globals, no os.Environ), so it can be
// called again to reload.
func Load(src Source) (*Config, error) {
	var data []byte
	if src.Path != "" {
		b, err := os.ReadFile(src.Path)
		if err != nil {
			return nil, fmt.Errorf("read configuration: %w", err)
		}
		data = b
	}
	return load(src, data)
}

// load is Load with the file's bytes already read.
func load(src Source, data []byte) (*Config, error) {
	l := &loader{src: src, cfg: Default(), setBy: map[string]string{}}
	if src.Path != "" {
		l.file(data)
	}
	l.environment()
	l.encryptionKey()
	l.overrides()

	for i := range l.cfg.Plugins {
		p := &l.cfg.Plugins[i]
		if p.Tenant == "" {
			p.Tenant = graph.DefaultTenant
		}
		p.Origin = OriginFile
		// A module path is relative to the file that names it, so a
		// configuration means the same from any working directory.
		if p.Module != "" && src.Path != "" && (p.Runtime == "wasm" || p.Runtime == "process") && !filepath.IsAbs(p.Module) {
			p.Module = filepath.Join(filepath.Dir(src.Path), p.Module)
		}
	}
	for i := range l.cfg.Devices {
		if l.cfg.Devices[i].Tenant == "" {
			l.cfg.Devices[i].Tenant = graph.DefaultTenant
		}
	}
	for i := range l.cfg.Junctions {
		if l.cfg.Junctions[i].Tenant == "" {
			l.cfg.Junctions[i].Tenant = graph.DefaultTenant
		}
	}

	var invalid Problems
	if errors.As(l.cfg.Validate(), &invalid) {
		for _, p := range invalid {
			if l.followsFromFailure(p.Path) {
				continue
			}
			at := l.where(p.Path)
			at.Path, at.Message = p.Path, p.Message
			l.problems = append(l.problems, at)
		}
	}
	if len(l.problems) > 0 {
		sortProblems(l.problems, src.Path)
		return nil, l.problems
	}
	return &l.cfg, nil
}

// loader holds the state of one Load.
type loader struct {
	src      Source
	cfg      Config
	problems Problems
	// lines maps key paths of the file to their line.
	lines map[string]int
	// setBy maps key paths set by the environment or flags to that source.
	setBy map[string]string
	// failed lists the problems of values that could not be decoded.
	failed []Problem
}

// where returns the Source and Line for a problem at path in the merged
// configuration: the environment variable or flags that set it last, else
// the file (at the line of the key or of the nearest section holding it).
func (l *loader) where(path string) Problem {
	if s, ok := l.setBy[path]; ok {
		return Problem{Source: s}
	}
	return l.fileWhere(path)
}

// fileWhere returns the Source and Line for a problem at path in the file.
func (l *loader) fileWhere(path string) Problem {
	if l.src.Path == "" {
		return Problem{}
	}
	for p := path; p != ""; p = parentPath(p) {
		if line, ok := l.lines[p]; ok {
			return Problem{Source: l.src.Path, Line: line}
		}
	}
	return Problem{Source: l.src.Path}
}

// parentPath cuts the last key or index off a path: "plugins[2].use" →
// "plugins[2]" → "plugins" → "".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// followsFromFailure reports whether a problem at path concerns a value
// that failed to decode (or a part of it, or a record holding it) and that
// no later source set: it was already reported, and the value Validate saw
// is not the one written.
func (l *loader) followsFromFailure(path string) bool {
	within := func(inner, outer string) bool {
		return inner == outer || strings.HasPrefix(inner, outer+".") || strings.HasPrefix(inner, outer+"[")
	}
	for _, f := range l.failed {
		if last, ok := l.setBy[f.Path]; ok && last != f.Source {
			continue // a later source set the value Validate saw
		}
		if within(path, f.Path) || within(f.Path, path) {
			return true
		}
	}
	return false
}

func (l *loader) decode(raw map[string]any, where func(string) Problem) {
	d := decoder{where: where}
	d.section("", raw, reflect.ValueOf(&l.cfg).Elem(), false)
	l.problems = append(l.problems, d.problems...)
	l.failed = append(l.failed, d.failed...)
}

// file decodes the YAML file's bytes onto the configuration.
func (l *loader) file(data []byte) {
	root, err := parseNodes(data)
	if err != nil {
		l.problems = append(l.problems, yamlProblems(l.src.Path, err)...)
		if line := tabIndentedLine(data); line > 0 {
			// The YAML parser often cannot say where a tab is.
			l.problems = append(l.problems, Problem{Source: l.src.Path, Line: line,
				Message: "indented with a tab; YAML indentation must use spaces"})
		}
		return
	}
	if root == nil || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		return // empty: defaults
	}
	if root.Kind != yaml.MappingNode {
		l.problems = append(l.problems, Problem{Source: l.src.Path, Line: root.Line,
			Message: "expected a mapping of sections (" + strings.Join(keysOf(reflect.TypeFor[Config]()), ", ") + ")"})
		return
	}
	l.lines = map[string]int{}
	indexLines(root, "", l.lines)

	k := koanf.New(".")
	if err := k.Load(rawBytes(data), kyaml.Parser()); err != nil {
		l.problems = append(l.problems, yamlProblems(l.src.Path, err)...)
		return
	}
	l.decode(k.Raw(), l.fileWhere)
}

// environment decodes the SWITCHYARD_* variables onto the configuration.
func (l *loader) environment() {
	var problems Problems
	p := env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return l.src.Environ },
		TransformFunc: func(name, value string) (string, any) {
			if isNonKeyEnv(name) {
				return "", nil
			}
			source := envSourcePrefix + name
			rest := strings.TrimPrefix(name, EnvPrefix)
			if !envNamePattern.MatchString(rest) {
				problems = append(problems, Problem{Source: source,
					Message: "is not a configuration variable: after SWITCHYARD_ come key names of letters, digits and '_', with '__' between levels"})
				return "", nil
			}
			path := strings.ToLower(strings.ReplaceAll(rest, "__", "."))
			if msg := settable(path); msg != "" {
				if s := suggestEnv(name); s != "" {
					msg += "; did you mean " + s + "?"
				}
				problems = append(problems, Problem{Source: source, Path: path, Message: msg})
				return "", nil
			}
			l.setBy[path] = source
			return path, value
		},
	})
	k := koanf.New(".")
	if err := k.Load(p, nil); err != nil {
		l.problems = append(l.problems, Problem{Source: "env", Message: err.Error()})
		return
	}
	l.problems = append(l.problems, problems...)
	l.decode(k.Raw(), l.where)
}

// encryptionKey reads SWITCHYARD_ENCRYPTION_KEY, when set.
func (l *loader) encryptionKey() {
	for _, kv := range l.src.Environ {
		name, value, _ := strings.Cut(kv, "=")
		if name != EnvEncryptionKey {
			continue
		}
		key, err := ParseEncryptionKey(value)
		if err != nil {
			l.problems = append(l.problems, Problem{Source: envSourcePrefix + name, Message: err.Error()})
			return
		}
		l.cfg.EncryptionKey = key
	}
}

var envNamePattern = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// suggestEnv returns the variable of a known key that name spells with
// single underscores between levels, or "".
func suggestEnv(name string) string {
	single := func(s string) string {
		for strings.Contains(s, "__") {
			s = strings.ReplaceAll(s, "__", "_")
		}
		return strings.ToUpper(s)
	}
	for _, p := range leafPaths(reflect.TypeFor[Config](), "") {
		candidate := EnvPrefix + strings.ToUpper(strings.ReplaceAll(p, ".", "__"))
		if candidate != name && single(candidate) == single(name) {
			return candidate
		}
	}
	return ""
}

// overrides decodes the flag overrides onto the configuration.
func (l *loader) overrides() {
	if len(l.src.Overrides) == 0 {
		return
	}
	flat := map[string]any{}
	for _, path := range slices.Sorted(maps.Keys(l.src.Overrides)) {
		if msg := settable(path); msg != "" {
			l.problems = append(l.problems, Problem{Source: flagSource, Path: path, Message: msg})
			continue
		}
		flat[path] = l.src.Overrides[path]
		l.setBy[path] = flagSource
	}
	k := koanf.New(".")
	if err := k.Load(confmap.Provider(flat, "."), nil); err != nil {
		l.problems = append(l.problems, Problem{Source: flagSource, Message: err.Error()})
		return
	}
	l.decode(k.Raw(), l.where)
}

// rawBytes is a koanf.Provider of bytes already read, so that the file is
// read once and its lines and values agree.
type rawBytes []byte

var _ koanf.Provider = rawBytes(nil)

func (b rawBytes) ReadBytes() ([]byte, error) { return b, nil }

func (b rawBytes) Read() (map[string]any, error) {
	return nil, errors.New("raw bytes need a parser")
}

// parseNodes parses data as one YAML document and returns its root node,
// nil for an empty document.
func parseNodes(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("yaml: line %d: a second YAML document starts here; the file must hold one", next.Line)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblems turns a YAML parse error into problems with lines.
func yamlProblems(file string, err error) Problems {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make(Problems, 0, len(msgs))
	for _, m := range msgs {
		p := Problem{Source: file}
		if sub := yamlLine.FindStringSubmatch(m); sub != nil {
			p.Line, _ = strconv.Atoi(sub[1])
			m = sub[2]
		}
		p.Message = "not valid YAML: " + strings.TrimPrefix(m, "yaml: ")
		out = append(out, p)
	}
	return out
}

// tabIndentedLine returns the first line (from 1) whose indentation holds
// a tab, or 0.
func tabIndentedLine(data []byte) int {
	for i, line := range bytes.Split(data, []byte("\n")) {
		rest := bytes.TrimLeft(line, " \t")
		if len(rest) > 0 && rest[0] != '#' && bytes.IndexByte(line[:len(line)-len(rest)], '\t') >= 0 {
			return i + 1
		}
	}
	return 0
}

// indexLines records the line of every key and list item under n.
func indexLines(n *yaml.Node, path string, out map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, value := n.Content[i], n.Content[i+1]
			if key.Kind != yaml.ScalarNode {
				continue
			}
			p := joinPath(path, key.Value)
			if _, seen := out[p]; !seen {
				out[p] = key.Line
			}
			indexLines(value, p, out)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			out[p] = item.Line
			indexLines(item, p, out)
		}
	}
}
