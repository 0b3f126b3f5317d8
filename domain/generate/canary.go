package generate

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"

	"github.com/maillage/maillage/domain"
)

// CanaryPattern matches the tokens Options.Canaries plants: "⟦c" then a
// number then "⟧", unique in a generator's output.
var CanaryPattern = regexp.MustCompile(`⟦c[0-9]+⟧`)

// plant returns a copy of p with a new canary token appended to every
// non-empty field of Go type string (named string types, which hold ids,
// kinds and categories, are left alone), or false when p cannot be copied.
func (g *Generator) plant(p domain.Payload) (domain.Payload, bool) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, false
	}
	cp, ok := domain.NewPayload(p.EventType())
	if !ok || json.Unmarshal(b, cp) != nil {
		return nil, false
	}
	g.plantValue(reflect.ValueOf(cp))
	return cp, true
}

func (g *Generator) plantValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			g.plantValue(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				g.plantValue(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			g.plantValue(v.Index(i))
		}
	case reflect.String:
		if v.Type() == reflect.TypeFor[string]() && v.String() != "" && v.CanSet() {
			g.canaries++
			v.SetString(v.String() + fmt.Sprintf(" ⟦c%d⟧", g.canaries))
		}
	}
}
