// Package personal keeps the personal-data fields of case events apart from
// the event log, so that they can be destroyed when the retention period
// ends while the log, its order and its hash chain stay verifiable
// ("crypto-shredding", docs/domain.md, "Erasure").
//
// Each personal-data field (the list is Fields, documented in
// docs/personal-data.md) is encrypted, in the payload, with the case's own
// key (AES-256-GCM) before the event is sealed: the stored payload holds the
// field as a string token, "maillage:pd:v1:" followed by the nonce and the
// ciphertext in base64url, and the hash chain covers that token. The keys
// are held by a Keys implementation outside the log (a NATS KV bucket in
// adapters/jetstream/casekeys). Reading opens the tokens with the key; once
// the key is destroyed (Keys.Erase) they read as Erased, "[effacé]", and the
// chain still verifies, since the stored bytes never change.
//
// The package is pure: the standard library, uuid and the domain.
package personal

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/maillage/maillage/domain"
)

// Kinds of personal data, for the documentation and the tests.
const (
	KindIdentity = "civil identity"
	KindAddress  = "address or place of life"
	KindFreeText = "free text about the child or family"
)

// Field is a personal-data field of an event type: Path is its JSON path in
// the payload, "name", or "dissenting[].reason" for the reason of every
// element of the dissenting list.
type Field struct {
	Type domain.EventType
	Path string
	Kind string
}

// fields lists, per event type, the payload fields holding personal data:
// every string field a person types (free text, names, references, labels),
// since any of them may name or describe the child, the family or the people
// around them. What stays readable after erasure is listed in clear, with
// what keeps each of those fields from holding free text.
var fields = map[domain.EventType][]Field{
	domain.CaseOpened: {
		{Path: "childReference", Kind: KindIdentity},
		{Path: "referent.name", Kind: KindIdentity},
		{Path: "referent.function", Kind: KindFreeText},
		{Path: "referent.phone", Kind: KindIdentity},
		{Path: "referent.email", Kind: KindIdentity},
		{Path: "childBirthMonth", Kind: KindIdentity},
	},
	domain.PartnerJoined: {
		{Path: "referent.name", Kind: KindIdentity},
		{Path: "referent.function", Kind: KindFreeText},
		{Path: "referent.phone", Kind: KindIdentity},
		{Path: "referent.email", Kind: KindIdentity},
		{Path: "reason", Kind: KindFreeText},
	},
	domain.PartnerLeft: {{Path: "reason", Kind: KindFreeText}},
	domain.ReferentChanged: {
		{Path: "referent.name", Kind: KindIdentity},
		{Path: "referent.function", Kind: KindFreeText},
		{Path: "referent.phone", Kind: KindIdentity},
		{Path: "referent.email", Kind: KindIdentity},
		{Path: "reason", Kind: KindFreeText},
	},
	domain.CoordinationHandedOver: {{Path: "reason", Kind: KindFreeText}},
	domain.FamilyMemberRecorded: {
		{Path: "name", Kind: KindIdentity},
		{Path: "relationship", Kind: KindFreeText},
		{Path: "address", Kind: KindAddress},
	},
	domain.NeedIdentified: {
		{Path: "domain", Kind: KindFreeText},
		{Path: "description", Kind: KindFreeText},
	},
	domain.ObjectiveSet: {
		{Path: "title", Kind: KindFreeText},
		{Path: "description", Kind: KindFreeText},
	},
	domain.ObjectiveReviewed: {{Path: "comment", Kind: KindFreeText}},
	domain.InterventionAgreed: {
		{Path: "description", Kind: KindFreeText},
		{Path: "modalities", Kind: KindFreeText},
		{Path: "timing", Kind: KindFreeText},
		{Path: "contacts[].thirdParty", Kind: KindIdentity},
	},
	domain.InterventionChanged: {
		{Path: "modalities", Kind: KindFreeText},
		{Path: "timing", Kind: KindFreeText},
		{Path: "contacts[].thirdParty", Kind: KindIdentity},
		{Path: "reason", Kind: KindFreeText},
	},
	domain.InterventionEnded: {{Path: "reason", Kind: KindFreeText}},
	domain.PlansArticulated: {
		{Path: "plans[].reference", Kind: KindFreeText},
		{Path: "plans[].version", Kind: KindFreeText},
	},
	domain.SynthesisMeetingHeld: {
		{Path: "decisions[]", Kind: KindFreeText},
		{Path: "location", Kind: KindAddress},
	},
	domain.DecisionRecorded: {
		{Path: "kind", Kind: KindFreeText},
		{Path: "summary", Kind: KindFreeText},
		{Path: "dissenting[].reason", Kind: KindFreeText},
		{Path: "contacts[].thirdParty", Kind: KindIdentity},
	},
	domain.CrisisDeclared: {
		{Path: "description", Kind: KindFreeText},
		{Path: "onCall[].contact", Kind: KindIdentity},
		{Path: "onCall[].hours", Kind: KindFreeText},
		{Path: "protocol", Kind: KindFreeText},
	},
	domain.CrisisResolved: {{Path: "outcome", Kind: KindFreeText}},
	domain.PlacementChanged: {
		{Path: "reason", Kind: KindFreeText},
		{Path: "placeOfLife", Kind: KindAddress},
		{Path: "address", Kind: KindAddress},
	},
	domain.ObservationRecorded: {
		{Path: "summary", Kind: KindFreeText},
		{Path: "actionTaken", Kind: KindFreeText},
	},
	domain.ConsentWithdrawn: {{Path: "reason", Kind: KindFreeText}},
	domain.JudicialRestrictionImposed: {
		{Path: "orderReference", Kind: KindFreeText},
		{Path: "court", Kind: KindFreeText},
		{Path: "thirdParty", Kind: KindIdentity},
	},
	domain.JudicialRestrictionLifted: {
		{Path: "orderReference", Kind: KindFreeText},
		{Path: "reason", Kind: KindFreeText},
	},
	domain.FamilyInformed:    {{Path: "how", Kind: KindFreeText}},
	domain.FamilyNotInformed: {{Path: "reason", Kind: KindFreeText}},
	domain.CaseClosed:        {{Path: "comment", Kind: KindFreeText}},
}

// Fields lists every personal-data field, in the catalogue's order.
func Fields() []Field {
	var out []Field
	for _, t := range domain.EventTypes() {
		for _, f := range fields[t] {
			f.Type = t
			out = append(out, f)
		}
	}
	return out
}

// targets returns pointers to the personal-data strings of a typed payload,
// in the order of its fields, elements of lists in their order.
func targets(p domain.Payload) ([]*string, error) {
	var out []*string
	root := reflect.ValueOf(p).Elem()
	for _, f := range fields[p.EventType()] {
		found, err := walk(root, strings.Split(f.Path, "."))
		if err != nil {
			return nil, fmt.Errorf("personal: %s.%s: %w", p.EventType(), f.Path, err)
		}
		out = append(out, found...)
	}
	return out, nil
}

// walk follows a path of JSON names ("x" a field, "x[]" every element of a
// list field) from a struct value to its strings.
func walk(v reflect.Value, path []string) ([]*string, error) {
	name, each := strings.CutSuffix(path[0], "[]")
	fv, ok := fieldByJSONName(v, name)
	if !ok {
		return nil, fmt.Errorf("no field %q in %s", name, v.Type())
	}
	var values []reflect.Value
	if each {
		if fv.Kind() != reflect.Slice {
			return nil, fmt.Errorf("%q is not a list", name)
		}
		for i := range fv.Len() {
			values = append(values, fv.Index(i))
		}
	} else {
		values = []reflect.Value{fv}
	}
	var out []*string
	for _, x := range values {
		if len(path) > 1 {
			if x.Kind() != reflect.Struct {
				return nil, fmt.Errorf("%q is not an object", name)
			}
			more, err := walk(x, path[1:])
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
			continue
		}
		if x.Kind() != reflect.String {
			return nil, fmt.Errorf("%q is not a string", name)
		}
		// A named string type (domain.InstitutionID) is a string too.
		out = append(out, x.Addr().Convert(stringPointer).Interface().(*string))
	}
	return out, nil
}

var stringPointer = reflect.TypeOf((*string)(nil))

func fieldByJSONName(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == name {
			return v.Field(i), true
		}
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			// An embedded struct's fields are the payload's, in JSON.
			if fv, ok := fieldByJSONName(v.Field(i), name); ok {
				return fv, true
			}
		}
	}
	return reflect.Value{}, false
}
