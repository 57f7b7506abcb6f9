package wasm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The guest side of ABI v1.
const (
	abiVersion      = 1
	exportMemory    = "memory"
	exportVersion   = "sy_abi_version"
	exportInit      = "sy_init"
	exportTransform = "sy_transform"
	exportCollect   = "sy_collect"
	exportReactor   = "_initialize" // WASI reactors (Go c-shared guests) initialise here
)

// exports records which entry points a module has and its initial memory.
type exports struct {
	transform, collect bool
	httpFetch          bool     // imports http_fetch
	imports            []string // every imported function, "module.name"
	memoryMin          uint32   // pages
}

// guestExports are the function exports the ABI gives a meaning to, with
// their required signature: no parameters, one i32 result (_initialize:
// no result).
var guestExports = []struct {
	name     string
	results  []api.ValueType
	required bool
}{
	{exportVersion, []api.ValueType{api.ValueTypeI32}, true},
	{exportInit, []api.ValueType{api.ValueTypeI32}, false},
	{exportTransform, []api.ValueType{api.ValueTypeI32}, false},
	{exportCollect, []api.ValueType{api.ValueTypeI32}, false},
	{exportReactor, nil, false},
}

// validate checks a compiled module against ABI v1: it may import only the
// functions of allowed with their exact signatures and no memory, and must
// export its memory and the ABI's entry points with their signatures.
func validate(c wazero.CompiledModule, allowed map[string]map[string]api.FunctionDefinition) (exports, error) {
	httpFetch := false
	var imports []string
	for _, def := range c.ImportedFunctions() {
		mod, name, _ := def.Import()
		imports = append(imports, mod+"."+name)
		funcs, ok := allowed[mod]
		if !ok {
			return exports{}, fmt.Errorf("import %s.%s is not allowed: a module may import only %s and wasi_snapshot_preview1 functions", mod, name, hostModule)
		}
		want, ok := funcs[name]
		if !ok {
			return exports{}, fmt.Errorf("import %s.%s: %s has no function %q", mod, name, mod, name)
		}
		if !sameSignature(def, want) {
			return exports{}, fmt.Errorf("import %s.%s has signature %s, want %s",
				mod, name, watFunc("", def.ParamTypes(), def.ResultTypes()), watFunc("", want.ParamTypes(), want.ResultTypes()))
		}
		httpFetch = httpFetch || mod == hostModule && name == "http_fetch"
	}
	for _, def := range c.ImportedMemories() {
		mod, name, _ := def.Import()
		return exports{}, fmt.Errorf("import %s.%s is not allowed: the module must define and export its own memory", mod, name)
	}
	mem, ok := c.ExportedMemories()[exportMemory]
	if !ok {
		return exports{}, fmt.Errorf("missing export %q: want (memory (export %q) 1)", exportMemory, exportMemory)
	}
	funcs := c.ExportedFunctions()
	for _, e := range guestExports {
		def, ok := funcs[e.name]
		want := watFunc(e.name, nil, e.results)
		if !ok {
			if e.required {
				return exports{}, fmt.Errorf("missing export %q: want %s", e.name, want)
			}
			continue
		}
		if len(def.ParamTypes()) != 0 || !slices.Equal(def.ResultTypes(), e.results) {
			return exports{}, fmt.Errorf("export %q has signature %s, want %s",
				e.name, watFunc(e.name, def.ParamTypes(), def.ResultTypes()), want)
		}
	}
	ex := exports{memoryMin: mem.Min(), httpFetch: httpFetch, imports: imports}
	_, ex.transform = funcs[exportTransform]
	_, ex.collect = funcs[exportCollect]
	if !ex.transform && !ex.collect {
		return exports{}, fmt.Errorf("missing export %q or %q: want %s", exportTransform, exportCollect,
			watFunc(exportTransform, nil, []api.ValueType{api.ValueTypeI32}))
	}
	return ex, nil
}

// requireExport reports the export a kind needs when the module lacks it.
func (ex exports) requireExport(k kind) error {
	name, ok := exportTransform, ex.transform
	if k == kindCollector {
		name, ok = exportCollect, ex.collect
	}
	if !ok {
		return fmt.Errorf("missing export %q required for %s: want %s", name, k,
			watFunc(name, nil, []api.ValueType{api.ValueTypeI32}))
	}
	return nil
}

func sameSignature(a, b api.FunctionDefinition) bool {
	return slices.Equal(a.ParamTypes(), b.ParamTypes()) && slices.Equal(a.ResultTypes(), b.ResultTypes())
}

// watFunc renders a function type as WAT, with an export clause when name
// is set: (func (export "sy_init") (result i32)).
func watFunc(name string, params, results []api.ValueType) string {
	var b strings.Builder
	b.WriteString("(func")
	if name != "" {
		fmt.Fprintf(&b, " (export %q)", name)
	}
	list := func(kw string, types []api.ValueType) {
		if len(types) == 0 {
			return
		}
		b.WriteString(" (" + kw)
		for _, t := range types {
			b.WriteString(" " + api.ValueTypeName(t))
		}
		b.WriteString(")")
	}
	list("param", params)
	list("result", results)
	b.WriteString(")")
	return b.String()
}
