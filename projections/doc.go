// Package projections holds the read models the people of a synthesis
// meeting need on one screen, fed by the events the store records, in its
// global order, from a durable checkpoint:
//
//   - the shared plan (Plan): needs, objectives and their status,
//     interventions per institution with their modalities and timing,
//     referents, coordinator, linked PPE/PPA and their versions, the next
//     review date;
//   - the multi-agency chronology (Chronology), in the form professionals
//     use, in plain French;
//   - who sees what and why (WhoSeesWhat), per member and family member;
//   - deadlines (CaseDeadlines, InstitutionDeadlines): plan reviews,
//     consents and orders about to expire, the family not informed after a
//     member joined, no synthesis meeting for too long;
//   - the directory's case memberships (MemberCases);
//   - the anonymised observatory per département and closed month
//     (Observatory): published months never move.
//
// Every read for a viewer goes through the domain policy: the per-case
// models are folded, at read time, from the events domain.See lets the
// viewer see, redacted events without what the policy removed; nothing is
// filtered by hand. "As of" reads fold the history up to a time and
// evaluate the policy at that time.
//
// The Runner follows the store (domain.EventStore: ReadAll, then Follow)
// and keeps a checkpoint; with WithSnapshot the read models and their
// checkpoint are saved in a file and loaded at the next start. A read of
// one case first brings that case up to date with its stream, so the policy
// always answers from the case's access state as recorded now. An event the
// models cannot apply stops the runner, which reports it (Err) rather than
// skipping it. docs/projections.md describes the design and its figures.
package projections
