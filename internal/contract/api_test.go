package contract_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// exported lists the exported functions and methods (on exported types)
// declared in the non-test Go files of the package in dir, as pkg.Func
// and pkg.Type.Method, pkg being the package's path in the module.
func exported(t *testing.T, root, pkg string) []string {
	t.Helper()
	dir := filepath.Join(root, filepath.FromSlash(pkg))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || !fd.Name.IsExported() {
				continue
			}
			if fd.Recv == nil {
				seen[pkg+"."+fd.Name.Name] = true
				continue
			}
			typ := fd.Recv.List[0].Type
			if st, ok := typ.(*ast.StarExpr); ok {
				typ = st.X
			}
			switch g := typ.(type) {
			case *ast.IndexExpr:
				typ = g.X
			case *ast.IndexListExpr:
				typ = g.X
			}
			id, ok := typ.(*ast.Ident)
			if !ok || !id.IsExported() {
				continue
			}
			seen[pkg+"."+id.Name+"."+fd.Name.Name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sortedKeys are m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestExportedFindsTheAPI: the completeness check sees exported functions
// and the methods of exported types, by value and pointer receiver,
// generic ones too, and nothing unexported or in tests.
func TestExportedFindsTheAPI(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "p", "q")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := `package q
func A() {}
func b() {}
type T struct{}
func (T) M() {}
func (*T) N() {}
func (T) m() {}
type G[X any] struct{}
func (g *G[X]) P() {}
type u struct{}
func (u) X() {}
`
	os.WriteFile(filepath.Join(dir, "q.go"), []byte(src), 0o644)
	os.WriteFile(filepath.Join(dir, "q_test.go"), []byte("package q\nfunc Z() {}\n"), 0o644)
	got := strings.Join(exported(t, root, "p/q"), " ")
	if want := "p/q.A p/q.G.P p/q.T.M p/q.T.N"; got != want {
		t.Errorf("exported: %s, want %s", got, want)
	}
}
