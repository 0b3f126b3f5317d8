package personal

import (
	"crypto/rand"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/maillage/maillage/domain"
)

// directoryNames are the only fields the directory keeps closed: a new
// field of that class must be argued for here, since domain/validate.go
// does not enforce it.
var directoryNames = []string{"CaseOpened.coordinatorName", "PartnerJoined.name"}

// TestEveryStringFieldIsClassified walks every payload field of every event
// type, nested structs and lists included: every string is either sealed
// personal data (fields) or readable for a reason that keeps free text out
// of it (readable), never both, never neither; a field of a kind the walk
// cannot tell is free of text fails too.
func TestEveryStringFieldIsClassified(t *testing.T) {
	sealed, clear := map[string]bool{}, map[string]ClearField{}
	for _, f := range Fields() {
		sealed[string(f.Type)+"."+f.Path] = true
	}
	for _, f := range ClearFields() {
		clear[string(f.Type)+"."+f.Path] = f
	}
	var all []string
	for _, typ := range domain.EventTypes() {
		p, _ := domain.NewPayload(typ)
		strs, problems := stringFields(reflect.TypeOf(p).Elem(), "")
		for _, pr := range problems {
			t.Errorf("%s.%s", typ, pr)
		}
		for _, path := range strs {
			name := string(typ) + "." + path
			all = append(all, name)
			_, isClear := clear[name]
			switch {
			case sealed[name] && isClear:
				t.Errorf("%s is both sealed and readable", name)
			case !sealed[name] && !isClear:
				t.Errorf("%s is free text that erasure would leave readable: seal it (personal.fields) or close it (a closed list in domain/validate.go, then personal.readable)", name)
			}
		}
	}
	for name := range sealed {
		if !slices.Contains(all, name) {
			t.Errorf("personal field %s is not a string field of the catalogue", name)
		}
	}
	for name, f := range clear {
		if !slices.Contains(all, name) {
			t.Errorf("readable field %s is not a string field of the catalogue", name)
		}
		if f.Enforced == "" {
			t.Errorf("readable field %s does not say what keeps it closed", name)
		}
		if f.Class == ClassDirectoryName && !slices.Contains(directoryNames, name) {
			t.Errorf("readable field %s: only %v may rest on the directory", name, directoryNames)
		}
	}
}

// TestReadableFieldsRefuseFreeText checks the validation each readable
// field names: with free text in the field, a valid payload of its type no
// longer validates. Names from the directory are completed at the HTTP edge,
// not validated here (directoryNames).
func TestReadableFieldsRefuseFreeText(t *testing.T) {
	const text = "Léo Martin vit chez sa tante, 4 allée des Mimosas"
	valid := validPayloads(t)
	for _, f := range ClearFields() {
		name := string(f.Type) + "." + f.Path
		if f.Class == ClassDirectoryName {
			continue
		}
		raw, ok := valid[f.Type]
		if !ok {
			t.Fatalf("%s: no valid %s to try it on", name, f.Type)
		}
		p, _ := domain.NewPayload(f.Type)
		if err := json.Unmarshal(raw, p); err != nil {
			t.Fatal(err)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: the generated payload is not valid: %v", name, err)
		}
		strs, err := walkOrGrow(reflect.ValueOf(p).Elem(), strings.Split(f.Path, "."))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, s := range strs {
			*s = text
		}
		if err := p.Validate(); err == nil {
			t.Errorf("%s (%s, %s) takes free text: %s", name, f.Class, f.Enforced, mustJSON(t, p))
		}
	}
}

// validPayloads returns a valid payload of every type of the catalogue.
func validPayloads(t *testing.T) map[domain.EventType]json.RawMessage {
	t.Helper()
	valid := map[domain.EventType]json.RawMessage{ // what the generator never makes
		domain.CoordinationHandedOver: json.RawMessage(`{"from":"ase-35","to":"mecs-les-tilleuls","reason":"relais"}`),
		domain.PlansArticulated: json.RawMessage(`{"plans":[{"kind":"PPE","reference":"PPE-2026-0147","version":"v2","institution":"ase-35"},` +
			`{"kind":"PPA","reference":"PPA 12","version":"2026-03","institution":"mecs-les-tilleuls"}]}`),
		domain.CaseClosed: json.RawMessage(`{"reason":"majority","comment":"majorité, suivi jeune majeur proposé"}`),
	}
	for _, e := range history(t) {
		if _, ok := valid[e.Type]; !ok {
			valid[e.Type] = e.Payload
		}
	}
	for _, typ := range domain.EventTypes() {
		if _, ok := valid[typ]; !ok {
			t.Fatalf("no valid %s to try", typ)
		}
	}
	return valid
}

// TestErasureReachesEverySealedFieldOfEveryType plants a distinct text in
// every sealed field of a payload of every type (every element of lists):
// none shows in the sealed payload, and after erasure every one reads
// Erased.
func TestErasureReachesEverySealedFieldOfEveryType(t *testing.T) {
	key := make([]byte, KeySize)
	rand.Read(key)
	planted := 0
	for typ, raw := range validPayloads(t) {
		p, _ := domain.NewPayload(typ)
		if err := json.Unmarshal(raw, p); err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, f := range fields[typ] {
			strs, err := walkOrGrow(reflect.ValueOf(p).Elem(), strings.Split(f.Path, "."))
			if err != nil {
				t.Fatalf("%s.%s: %v", typ, f.Path, err)
			}
			for _, s := range strs {
				*s = fmt.Sprintf("canari %s %d", typ, len(texts))
				texts = append(texts, *s)
			}
		}
		e := domain.Event{CaseID: uuid.New(), ID: uuid.New(), Sequence: 1, Type: typ, SchemaVersion: domain.CurrentSchemaVersion,
			Category: domain.CategoryCoordination, Payload: []byte(mustJSON(t, p))}
		sealed, err := Seal(e, key, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		erased, err := Open(sealed, nil)
		if err != nil {
			t.Fatal(err)
		}
		opened, err := Open(sealed, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range texts {
			if strings.Contains(string(sealed.Payload), text) || strings.Contains(string(erased.Payload), text) {
				t.Errorf("%s: %q survives: sealed %s, erased %s", typ, text, sealed.Payload, erased.Payload)
			}
			if !strings.Contains(string(opened.Payload), text) {
				t.Errorf("%s: %q does not open: %s", typ, text, opened.Payload)
			}
		}
		if n := strings.Count(string(erased.Payload), mustJSON(t, Erased)); n != len(texts) {
			t.Errorf("%s: %d fields read erased, want %d: %s", typ, n, len(texts), erased.Payload)
		}
		planted += len(texts)
	}
	t.Logf("%d sealed fields planted over %d event types", planted, len(domain.EventTypes()))
}

// TestTheClassificationCatchesAnUnclassifiedField shows the walk finds a
// string wherever a payload may hide one.
func TestTheClassificationCatchesAnUnclassifiedField(t *testing.T) {
	type inner struct {
		Note string `json:"note"`
	}
	type payload struct {
		ID      uuid.UUID          `json:"id"`
		At      time.Time          `json:"at"`
		Until   *time.Time         `json:"until,omitempty"`
		Ok      bool               `json:"ok"`
		Kind    domain.Category    `json:"kind"`
		Items   []inner            `json:"items"`
		Ptr     *inner             `json:"ptr,omitempty"`
		Words   []string           `json:"words"`
		Extra   map[string]string  `json:"extra"`
		Any     any                `json:"any"`
		Raw     json.RawMessage    `json:"raw"`
		Ignored string             `json:"-"`
		hidden  string             // not encoded
		Grid    [][]inner          `json:"grid"`
		Pairs   []domain.Referent  `json:"pairs"`
		Named   map[string]float64 `json:"named"`
	}
	strs, problems := stringFields(reflect.TypeOf(payload{}), "")
	want := []string{"kind", "items[].note", "ptr.note", "words[]", "grid[][].note",
		"pairs[].name", "pairs[].function", "pairs[].phone", "pairs[].email"}
	if !slices.Equal(strs, want) {
		t.Errorf("strings found: %v, want %v", strs, want)
	}
	for _, bad := range []string{"extra", "any", "raw", "named"} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, bad+":") }) {
			t.Errorf("%s is not reported as a field the walk cannot classify: %v", bad, problems)
		}
	}
}

var (
	timeType = reflect.TypeOf(time.Time{})
	uuidType = reflect.TypeOf(uuid.UUID{})
	textType = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
	jsonType = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
)

// stringFields lists the JSON paths of the string fields of a struct type
// ("referent.name", "plans[].reference", "decisions[]"), and the fields it
// cannot tell are free of text (maps, interfaces, raw JSON, custom
// encodings) as problems.
func stringFields(t reflect.Type, prefix string) (strs, problems []string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported() && !f.Anonymous:
			continue
		case f.Anonymous && name == "":
			s, p := stringFields(f.Type, prefix) // its fields are the payload's, in JSON
			strs, problems = append(strs, s...), append(problems, p...)
			continue
		case name == "":
			name = f.Name
		}
		s, p := typeStrings(f.Type, prefix+name)
		strs, problems = append(strs, s...), append(problems, p...)
	}
	return strs, problems
}

func typeStrings(t reflect.Type, path string) (strs, problems []string) {
	if t.Kind() == reflect.Pointer {
		return typeStrings(t.Elem(), path)
	}
	switch {
	case t == timeType || t == uuidType:
		return nil, nil // a date, an id
	case t.Implements(textType) || t.Implements(jsonType) || reflect.PointerTo(t).Implements(jsonType):
		return nil, []string{fmt.Sprintf("%s: %s encodes itself: the walk cannot tell what it holds", path, t)}
	}
	switch t.Kind() {
	case reflect.String:
		return []string{path}, nil
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return nil, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil, []string{fmt.Sprintf("%s: bytes (%s) may hold text", path, t)}
		}
		return typeStrings(t.Elem(), path+"[]")
	case reflect.Struct:
		return stringFields(t, path+".")
	}
	return nil, []string{fmt.Sprintf("%s: a %s cannot be classified field by field", path, t)}
}

// walkOrGrow is walk, giving a list that is empty one element first, so
// that a field of a list element can be set.
func walkOrGrow(v reflect.Value, path []string) ([]*string, error) {
	name, each := strings.CutSuffix(path[0], "[]")
	if fv, ok := fieldByJSONName(v, name); ok && each && fv.Kind() == reflect.Slice && fv.Len() == 0 {
		fv.Set(reflect.Append(fv, reflect.Zero(fv.Type().Elem())))
	}
	return walk(v, path)
}
