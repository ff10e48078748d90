package chardev

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"reflect"
	"strings"
	"sync"
)

// Field docs for `chartee types TYPE`: the comments on spec struct fields,
// read from the Go sources of the packages that define the specs, which
// embed them (RegisterSources). Reading the very sources the binary was
// built from, the docs cannot drift from the code.

var docs struct {
	mu      sync.Mutex
	sources map[string]fs.FS             // package path -> its .go files
	parsed  map[string]map[string]string // package path -> "Struct.Field" -> doc
}

// RegisterSources makes the Go files of package pkgPath (an embed.FS of
// its *.go files) the source of FieldDoc for its structs.
func RegisterSources(pkgPath string, fsys fs.FS) {
	docs.mu.Lock()
	defer docs.mu.Unlock()
	if docs.sources == nil {
		docs.sources = map[string]fs.FS{}
	}
	docs.sources[pkgPath] = fsys
}

// FieldDoc is the doc comment of field name of struct t, on one line, or
// "" when its package registered no sources or the field has none.
func FieldDoc(t reflect.Type, name string) string {
	docs.mu.Lock()
	defer docs.mu.Unlock()
	pkg := t.PkgPath()
	m, ok := docs.parsed[pkg]
	if !ok {
		m = parseFieldDocs(docs.sources[pkg])
		if docs.parsed == nil {
			docs.parsed = map[string]map[string]string{}
		}
		docs.parsed[pkg] = m
	}
	return m[t.Name()+"."+name]
}

func parseFieldDocs(fsys fs.FS) map[string]string {
	m := map[string]string{}
	if fsys == nil {
		return m
	}
	names, _ := fs.Glob(fsys, "*.go")
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			continue
		}
		f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
		if err != nil {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			if st, ok := ts.Type.(*ast.StructType); ok {
				for _, fld := range st.Fields.List {
					text := fld.Doc.Text()
					if text == "" {
						text = fld.Comment.Text()
					}
					text = strings.Join(strings.Fields(text), " ")
					for _, id := range fld.Names {
						if text != "" {
							m[ts.Name.Name+"."+id.Name] = text
						}
					}
				}
			}
			return false
		})
	}
	return m
}
