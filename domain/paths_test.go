package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/maillage/maillage/domain"
)

func viewerOf(w who) domain.Viewer {
	return domain.Viewer{Role: w.role, Institution: w.Institution, FamilyMember: w.FamilyMember}
}

var stranger = familyMember(grandmother)

func TestMayKnow(t *testing.T) {
	opened, _ := history(t, aCase(ase.records(leaving(mecsID))))
	for _, tc := range []struct {
		name string
		who  who
		want bool
	}{
		{"an auditor knows every case", auditor, true},
		{"the coordinator knows its case", ase, true},
		{"a former member still knows the case exists", mecs, true},
		{"an institution that never joined does not", cmpPro, false},
		{"a recorded parent knows the case", fatherSelf, true},
		{"an unrecorded relative does not", stranger, false},
		{"an administrator runs the directory, not cases", admin, false},
	} {
		if got := domain.MayKnow(opened, viewerOf(tc.who)); got != tc.want {
			t.Errorf("%s: MayKnow = %v, want %v", tc.name, got, tc.want)
		}
	}
	if domain.MayKnow(domain.NewState(caseID), viewerOf(auditor)) {
		t.Error("a case that was never opened is known to nobody")
	}
}

func TestKnownVersion(t *testing.T) {
	st, _ := history(t, aCase(ase.records(leaving(mecsID)), ase.records(need(id("besoin")))))
	left := st.Members[mecsID].LeftSeq
	for _, tc := range []struct {
		name string
		who  who
		want uint64
	}{
		{"a current member knows the case's version", ditep, st.Version},
		{"a former member knows the case up to its leaving, not that it moved", mecs, left},
		{"a parent knows the case's version", motherSelf, st.Version},
		{"an auditor knows the case's version", auditor, st.Version},
		{"a stranger knows nothing", cmpPro, 0},
	} {
		if got := domain.KnownVersion(st, viewerOf(tc.who)); got != tc.want {
			t.Errorf("%s: KnownVersion = %d, want %d", tc.name, got, tc.want)
		}
	}
	rejoined, _ := history(t, aCase(ase.records(leaving(mecsID)), ase.records(need(id("besoin"))), ase.records(joining(mecsID))))
	if got := domain.KnownVersion(rejoined, viewerOf(mecs)); got != rejoined.Version {
		t.Errorf("a member that rejoined knows the case's version again: %d, want %d", got, rejoined.Version)
	}
}

func TestCurrentMembersOnly(t *testing.T) {
	st, _ := history(t, aCase(ase.records(leaving(mecsID))))
	for _, tc := range []struct {
		name    string
		who     who
		allowed bool
	}{
		{"a current member reads it", ditep, true},
		{"an auditor reads it", auditor, true},
		{"a former member does not", mecs, false},
		{"a parent does not: the plan and the chronology are theirs", motherSelf, false},
	} {
		err := domain.CurrentMembersOnly(st, viewerOf(tc.who), "summary_members_only", "réservé")
		if (err == nil) != tc.allowed {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		var de *domain.Error
		if err != nil && (!errors.As(err, &de) || de.Rule != "summary_members_only" || de.Code != domain.EForbidden) {
			t.Errorf("%s: refusal %v does not name the rule", tc.name, err)
		}
	}
}

func TestAuditorOnly(t *testing.T) {
	for _, tc := range []struct {
		who     who
		allowed bool
	}{{auditor, true}, {ase, false}, {motherSelf, false}, {admin, false}} {
		if err := domain.AuditorOnly(viewerOf(tc.who), "auditor_only", "réservé"); (err == nil) != tc.allowed {
			t.Errorf("%s: err = %v", tc.who.role, err)
		}
	}
}

func TestMayErase(t *testing.T) {
	for _, tc := range []struct {
		who     who
		allowed bool
	}{{auditor, true}, {admin, true}, {ase, false}, {motherSelf, false}} {
		if err := domain.MayErase(viewerOf(tc.who)); (err == nil) != tc.allowed {
			t.Errorf("%s: err = %v", tc.who.role, err)
		}
	}
}

func TestMayReadObservatory(t *testing.T) {
	for _, tc := range []struct {
		who     who
		allowed bool
	}{{auditor, true}, {ase, true}, {admin, true}, {motherSelf, false}} {
		if err := domain.MayReadObservatory(viewerOf(tc.who)); (err == nil) != tc.allowed {
			t.Errorf("%s: err = %v", tc.who.role, err)
		}
	}
}

func TestAccessListOf(t *testing.T) {
	st, _ := history(t, aCase())
	for _, tc := range []struct {
		name string
		who  who
		want domain.AccessListReader
	}{
		{"an auditor reads every record", auditor, domain.AccessListAuditor},
		{"the coordinator reads the other institutions' reads", ase, domain.AccessListCoordinator},
		{"a parent reads what the family may know of", motherSelf, domain.AccessListFamily},
		{"another member is refused", mecs, 0},
	} {
		got, err := domain.AccessListOf(st, viewerOf(tc.who))
		if got != tc.want || (err == nil) != (tc.want != 0) {
			t.Errorf("%s: %v, %v", tc.name, got, err)
		}
	}
}

func TestPolicyAt(t *testing.T) {
	past := clock.Add(-30 * 24 * time.Hour)
	for _, tc := range []struct {
		name       string
		who        who
		asOf       time.Time
		want       time.Time
		historical bool
	}{
		{"a member's read as of a past date is decided by the policy now", mecs, past, clock, false},
		{"a parent's likewise", fatherSelf, past, clock, false},
		{"an auditor asks who could see what on that date", auditor, past, past, true},
		{"an auditor's read now is now", auditor, time.Time{}, clock, false},
		{"a date to come reads now", auditor, clock.Add(time.Hour), clock, false},
	} {
		at, historical := domain.PolicyAt(viewerOf(tc.who), tc.asOf, clock)
		if !at.Equal(tc.want) || historical != tc.historical {
			t.Errorf("%s: PolicyAt = %v, %v", tc.name, at, historical)
		}
	}
}

func TestTellRefusal(t *testing.T) {
	// The MECS is excluded by an order recorded while in force: its timeline
	// hides the order, so its refusals must not quote it.
	excluded, excludedEvents := history(t, aCase(ase.records(exclusion(exclusionOrder, mecsID))))
	_, err := domain.Decide(excluded, mecs.records(observation()), clock)
	var de *domain.Error
	if !errors.As(err, &de) || de.Rule != "partner_excluded" {
		t.Fatalf("the excluded MECS records: %v", err)
	}
	told := domain.TellRefusal(excluded, excludedEvents, viewerOf(mecs), clock, de)
	if told.Rule != domain.RuleUndisclosedDecision || told.Field != "" || told.Withheld != de || told.Code != domain.ERefused {
		t.Errorf("an excluded partner is told %+v, want the neutral refusal", told)
	}
	for _, secret := range []string{orderRef, court} {
		if strings.Contains(told.Message, secret) {
			t.Errorf("the neutral refusal quotes %q: %s", secret, told.Message)
		}
	}

	// Contacts with the father are suspended: the ASE sees the order and is
	// told why, with the field.
	suspended, suspendedEvents := history(t, aCase(ase.records(contactSuspension(suspension, father))))
	_, err = domain.Decide(suspended, ase.records(intervention(visits, mecsID, unsupervised(father))), clock)
	if !errors.As(err, &de) || de.Rule != "contact_suspended" {
		t.Fatalf("an unsupervised visit: %v", err)
	}
	if told := domain.TellRefusal(suspended, suspendedEvents, viewerOf(ase), clock, de); told != de {
		t.Errorf("a member who sees the order is told %+v, want the refusal as decided", told)
	}
	// A member excluded since the order does not see it any more
	// (partner_excluded hides what was recorded while it is in force only
	// for later events): simulate a viewer who cannot see the order's event
	// by a stranger to the case.
	if told := domain.TellRefusal(suspended, suspendedEvents, viewerOf(cmpPro), clock, de); told.Rule != domain.RuleUndisclosedDecision {
		t.Errorf("a requester who does not see the order is told %+v", told)
	}

	// A refusal that rests on nothing hidden is told as it is.
	plain := domain.Refuse("case_closed", "Le dossier est clôturé.")
	if told := domain.TellRefusal(suspended, suspendedEvents, viewerOf(cmpPro), clock, plain); told != plain {
		t.Errorf("a refusal without basis: %+v", told)
	}
}

func TestProfessionalsOnly(t *testing.T) {
	for _, tc := range []struct {
		who     who
		allowed bool
	}{{ase, true}, {auditor, false}, {motherSelf, false}, {admin, false}, {who{role: domain.RoleProfessional}, false}} {
		if err := domain.ProfessionalsOnly(viewerOf(tc.who), "rule", "réservé"); (err == nil) != tc.allowed {
			t.Errorf("%s %q: err = %v", tc.who.role, tc.who.Institution, err)
		}
	}
}

func TestOwnInstitution(t *testing.T) {
	if !domain.OwnInstitution(viewerOf(ase), aseID) || domain.OwnInstitution(viewerOf(ase), mecsID) || domain.OwnInstitution(viewerOf(auditor), "") {
		t.Error("an institution's cases are told to its own professionals only")
	}
}
