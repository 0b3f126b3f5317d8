// Package domain holds Maillage's rules: the event catalogue and its envelope,
// the commands and the decider that turns them into events (or a refusal that
// names the broken rule), the access policy that decides what each viewer may
// see of each event, the per-case hash chain, and the small interfaces (ports)
// that adapters implement.
//
// It is pure: it imports only the standard library and github.com/google/uuid,
// performs no I/O and reads no clock; time comes in as an argument.
package domain
