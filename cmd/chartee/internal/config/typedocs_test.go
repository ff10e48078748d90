package config

import (
	"slices"
	"strings"
	"testing"

	"chartee/chardev"
)

func TestEveryTypeHasASummary(t *testing.T) {
	for _, typ := range chardev.Types() {
		if strings.HasSuffix(typ, "-test") {
			continue // registered by this package's tests
		}
		if TypeSummary(typ) == "" {
			t.Errorf("type %s has no summary in typeSummaries", typ)
		}
	}
}

// The keys `chartee types TYPE` lists are the keys the parser accepts.
func TestTypeDocsAreTheSchema(t *testing.T) {
	for _, typ := range chardev.Types() {
		docs, err := TypeDocs(typ)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := chardev.Lookup(typ)
		sch := schemaOfSpec(f.NewSpec())
		var top []string
		for _, d := range docs {
			if !strings.Contains(d.Key, ".") {
				top = append(top, d.Key)
			}
		}
		if !slices.Equal(top, sch.keys) {
			t.Errorf("%s: documented keys %v, parser keys %v", typ, top, sch.keys)
		}
	}
	docs, _ := TypeDocs("serial")
	for _, d := range docs {
		if d.Key == "baud" && (d.Default != "115200" || d.Type != "integer" || !strings.Contains(d.Doc, "bit rate")) {
			t.Errorf("serial baud: %+v", d)
		}
	}
}
