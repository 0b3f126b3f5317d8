package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/maillage/maillage/domain"
)

// decode reads the request body strictly into v: JSON only, at most
// MaxBodyBytes, no unknown field, nothing after the object. On failure it
// answers a problem naming what is wrong and returns false.
func (h *Handler) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeProblem(w, r, Problem{Type: problemType("unsupported_media_type"), Title: "Format non pris en charge", Status: http.StatusUnsupportedMediaType,
			Detail: "le corps doit être du JSON (Content-Type: application/json)", Rule: "unsupported_media_type", Field: "Content-Type"})
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeProblem(w, r, Problem{Type: problemType("body_too_large"), Title: "Corps trop volumineux", Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("le corps dépasse %d octets", MaxBodyBytes), Rule: "body_too_large"})
		return false
	}
	if err != nil {
		writeProblem(w, r, Problem{Type: problemType("malformed_json"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "corps illisible", Rule: "malformed_json"})
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		writeProblem(w, r, Problem{Type: problemType("missing_body"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "un corps JSON est attendu", Rule: "missing_body"})
		return false
	}
	if err := strictUnmarshal(body, v); err != nil {
		h.badJSON(w, r, err, "", body, v)
		return false
	}
	return true
}

// strictUnmarshal decodes one JSON value refusing unknown fields and
// trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errTrailing
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailing
	}
	return nil
}

var errTrailing = errors.New("trailing data after the JSON value")

// badJSON answers a decoding error as a 400 naming the field (prefixed by
// prefix, e.g. "payload").
func (h *Handler) badJSON(w http.ResponseWriter, r *http.Request, err error, prefix string, data []byte, target any) {
	join := func(f string) string {
		switch {
		case prefix == "":
			return f
		case f == "":
			return prefix
		}
		return prefix + "." + f
	}
	p := Problem{Type: problemType("malformed_json"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest, Rule: "malformed_json"}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		p.Field = join("")
		p.Detail = fmt.Sprintf("JSON mal formé à l'octet %d : %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		p.Rule, p.Type = "invalid_field", problemType("invalid_field")
		p.Field = join(typ.Field)
		p.Detail = fmt.Sprintf("le champ %s attend une valeur de type %s, pas %s", p.Field, jsonKind(typ.Type), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		p.Rule, p.Type = "unknown_field", problemType("unknown_field")
		p.Field = join(name)
		p.Detail = fmt.Sprintf("champ inconnu %s : vérifiez l'orthographe (voir docs/api.md)", p.Field)
	case errors.Is(err, errTrailing):
		p.Field = join("")
		p.Detail = "données en trop après l'objet JSON"
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		p.Field = join("")
		p.Detail = "JSON incomplet"
	default:
		// A value a field's own decoder refused (a date, a UUID): find which.
		p.Rule, p.Type = "invalid_field", problemType("invalid_field")
		p.Field = join(badField(data, target))
		p.Detail = fmt.Sprintf("valeur invalide pour %s : %s (dates au format RFC 3339, par ex. 2026-11-22T10:00:00+01:00 ; identifiants au format UUID)", p.Field, err.Error())
	}
	writeProblem(w, r, p)
}

// badField finds the top-level key of the JSON object data whose value does
// not decode into the matching field of target.
func badField(data []byte, target any) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(data, &obj) != nil {
		return ""
	}
	t := reflect.TypeOf(target)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return ""
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		raw, ok := obj[name]
		if !ok {
			continue
		}
		if json.Unmarshal(raw, reflect.New(f.Type).Interface()) != nil {
			return name
		}
	}
	return ""
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "texte"
	case reflect.Bool:
		return "booléen"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "nombre"
	case reflect.Slice, reflect.Array:
		return "liste"
	case reflect.Map, reflect.Struct:
		return "objet"
	}
	return t.String()
}
