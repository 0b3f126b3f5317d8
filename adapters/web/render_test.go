package web

import (
	"bytes"
	"testing"

	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/projections"
)

// Every page renders, with empty and with filled sections: a template
// error is found here rather than as "erreur d'affichage" in a browser.
func TestEveryPageRenders(t *testing.T) {
	pages, err := parseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	s := &session{csrf: "x"}
	full := caseView{ID: "id", Plan: tree(&projections.Plan{}, nil), Summary: &cases.Summary{}, Visibility: &projections.WhoSeesWhat{},
		Deadlines: &projections.CaseDeadlines{}, Entries: []entry{{Sequence: 1, Stub: true}, {Sequence: 2, What: "x", Impact: "positive"}}}
	for name, data := range map[string]any{
		"signin": signIn{}, "cases": caseList{Tray: &projections.InstitutionDeadlines{}}, "case": caseView{}, "error": errorPage{},
		"print": printView{caseView: full}, "access": accessView{Lines: []accessLine{{Who: "x"}}},
		"form": formView{Spec: meetingForm, Errors: map[string]string{"participants": "x"}},
	} {
		var buf bytes.Buffer
		if err := pages[name].ExecuteTemplate(&buf, "layout.html", page{Session: s, Data: data}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, f := range forms {
		var buf bytes.Buffer
		if err := pages["form"].ExecuteTemplate(&buf, "layout.html", page{Session: s, Data: formView{Spec: f, Errors: map[string]string{}}}); err != nil {
			t.Errorf("form %s: %v", f.path, err)
		}
	}
	var buf bytes.Buffer
	if err := pages["case"].ExecuteTemplate(&buf, "sections", full); err != nil {
		t.Errorf("live sections: %v", err)
	}
}
