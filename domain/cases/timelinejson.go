package cases

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/maillage/maillage/domain"
)

// TimelineJSON is Timeline encoded as JSON: the same bytes as
// json.Marshal(Timeline(...)), with the case's version (for the ETag). It is
// what GET /v1/cases/{id}/timeline answers, at a fraction of the cost:
//
//   - the policy (domain.See) decides every event of the page at every
//     read, for this viewer and now, as Timeline does; nothing else decides;
//   - an event the policy shows in full is written from its full view's JSON
//     (domain.View with a Full decision, which depends on the event alone),
//     encoded the first time it is shown and kept with the cached case. It
//     is dropped with the case's events: on eviction and when the case's
//     personal data is erased (dropIfErased), so nothing erased is served;
//   - a redacted view likewise, kept per event and set of fields removed
//     (domain.View of a Redacted decision depends on the event and the
//     fields alone); a stub is written directly.
func (s *Service) TimelineJSON(ctx context.Context, id domain.CaseID, v domain.Viewer, after uint64, limit int) (body []byte, version uint64, err error) {
	return s.AppendTimelineJSON(ctx, nil, id, v, after, limit)
}

// AppendTimelineJSON is TimelineJSON appending to dst, so that callers can
// reuse their buffers (a page is tens of kilobytes).
func (s *Service) AppendTimelineJSON(ctx context.Context, dst []byte, id domain.CaseID, v domain.Viewer, after uint64, limit int) (body []byte, version uint64, err error) {
	body, page, err := s.AppendTimelinePage(ctx, dst, id, v, after, limit)
	return body, page.Version, err
}

// TimelinePage says what a timeline answer holds: the case's version as the
// viewer may know it, and the first and last sequences of the page (0, 0
// when it holds none), which its access record names.
type TimelinePage struct {
	Version  uint64
	From, To uint64
}

// AppendTimelinePage is AppendTimelineJSON, telling what the page holds.
func (s *Service) AppendTimelinePage(ctx context.Context, dst []byte, id domain.CaseID, v domain.Viewer, after uint64, limit int) (body []byte, info TimelinePage, err error) {
	var version uint64
	err = s.readEntry(ctx, id, v, func(entry *caseEntry) error {
		st := entry.state
		known, head, events, err := known(st, v, entry.events)
		if err != nil {
			return err
		}
		version = known
		first, page, next := timelinePage(events, after, limit)
		if len(page) > 0 {
			info.From, info.To = page[0].Sequence, page[len(page)-1].Sequence
		}
		b := slices.Grow(dst, 256+entry.sizeHint*len(page))
		b = append(b, `{"caseId":"`...)
		b = append(b, id.String()...)
		b = append(b, `","version":`...)
		b = strconv.AppendUint(b, version, 10)
		b = append(b, `,"head":"`...)
		b = hex.AppendEncode(b, head[:])
		b = append(b, `","events":[`...)
		sight := domain.SightOf(st, v, s.now())
		for i, e := range page {
			if i > 0 {
				b = append(b, ',')
			}
			d := sight.See(e)
			switch d.Visibility {
			case domain.Full:
				full, err := entry.fullJSON(first + i)
				if err != nil {
					return err
				}
				b = append(b, full...)
			case domain.Redacted:
				view, err := entry.redactedJSON(first+i, d)
				if err != nil {
					return err
				}
				b = append(b, view...)
			default: // domain.View gives a stub for any other decision
				b = appendStub(b, e)
			}
		}
		b = append(b, ']')
		if next != nil {
			b = append(b, `,"next":`...)
			b = strconv.AppendUint(b, *next, 10)
		}
		body = append(b, '}')
		return nil
	})
	info.Version = version
	return body, info, err
}

// timelinePage returns the page of events after sequence after (at most
// limit when limit > 0), the index of its first event, and the `after` of
// the next page when there is one.
func timelinePage(events []domain.Event, after uint64, limit int) (first int, page []domain.Event, next *uint64) {
	if after >= uint64(len(events)) {
		return len(events), nil, nil
	}
	page = events[after:]
	if limit > 0 && len(page) > limit {
		page = page[:limit]
		n := page[len(page)-1].Sequence
		next = &n
	}
	return int(after), page, next
}

// fullJSON returns the JSON of the full view of the case's i-th event
// (json.Marshal(domain.View(e, Full))), encoding it on first use. The
// caller holds entry.mu.
func (entry *caseEntry) fullJSON(i int) ([]byte, error) {
	if len(entry.fullViews) < len(entry.events) {
		entry.fullViews = append(entry.fullViews, make([][]byte, len(entry.events)-len(entry.fullViews))...)
	}
	if b := entry.fullViews[i]; b != nil {
		return b, nil
	}
	b, err := json.Marshal(domain.View(entry.events[i], domain.Decision{Visibility: domain.Full}))
	if err != nil {
		return nil, err
	}
	entry.fullViews[i] = b
	entry.sizeHint = (3*entry.sizeHint + len(b)) / 4
	return b, nil
}

// redactedKey names a redacted view: the event's index and the fields
// removed, joined.
type redactedKey struct {
	i      int
	fields string
}

// redactedJSON returns the JSON of the case's i-th event redacted as d
// says (json.Marshal(domain.View(e, d)), which depends on the event and
// d.Fields alone), encoding it on first use. The caller holds entry.mu.
func (entry *caseEntry) redactedJSON(i int, d domain.Decision) ([]byte, error) {
	key := redactedKey{i, strings.Join(d.Fields, "\x00")}
	if b, ok := entry.redactedViews[key]; ok {
		return b, nil
	}
	b, err := json.Marshal(domain.View(entry.events[i], d))
	if err != nil {
		return nil, err
	}
	if entry.redactedViews == nil {
		entry.redactedViews = map[redactedKey][]byte{}
	}
	entry.redactedViews[key] = b
	return b, nil
}

// appendStub appends the JSON of a stub (domain.View of a hidden event):
// its sequence, hashes and visibility, as encoding/json writes them.
func appendStub(b []byte, e domain.Event) []byte {
	b = append(b, `{"sequence":`...)
	b = strconv.AppendUint(b, e.Sequence, 10)
	b = append(b, `,"leafHash":"`...)
	b = hex.AppendEncode(b, e.LeafHash[:])
	b = append(b, `","chainHash":"`...)
	b = hex.AppendEncode(b, e.ChainHash[:])
	b = append(b, `","visibility":"`...)
	b = append(b, domain.Hidden...)
	return append(b, `"}`...)
}
