package web

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/maillage/maillage/domain"
)

// live streams a case page's updates (server-sent events): when the
// watcher tells that the case changed, the case is read again through the
// facade for this viewer, and the page's sections are sent whole when the
// version the viewer may know moved. A read the facade refuses (the viewer
// lost access), a session that ended or a revoked token closes the stream
// at once, after an "end" event saying why.
func (h *Handler) live(w http.ResponseWriter, r *http.Request, s *session) {
	id, ok := h.caseID(w, r, s)
	if !ok {
		return
	}
	flusher, ok := w.(http.Flusher)
	if h.watcher == nil || !ok {
		http.Error(w, "mises à jour en direct indisponibles", http.StatusNotImplemented)
		return
	}
	shown, _ := strconv.ParseUint(r.URL.Query().Get("version"), 10, 64)
	ctx := r.Context()
	changed := h.watcher.Watch(ctx, id)
	// The stream outlives the server's write timeout: extend it per write.
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, data []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(h.heartbeat + 10*time.Second))
		var b bytes.Buffer
		fmt.Fprintf(&b, "event: %s\n", event)
		for _, line := range bytes.Split(data, []byte("\n")) {
			b.WriteString("data: ")
			b.Write(line)
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
		if _, err := w.Write(b.Bytes()); err != nil {
			return err
		}
		flusher.Flush()
		return nil
	}
	if send("ready", []byte(strconv.FormatUint(shown, 10))) != nil {
		return
	}
	ticker := time.NewTicker(h.heartbeat)
	defer ticker.Stop()
	check := true // the case may have moved between the page's read and this stream
	first, member := true, false
	for {
		if check {
			check = false
			if !h.sessions.alive(s, h.directory) {
				_ = send("end", []byte("Votre session a pris fin : reconnectez-vous pour voir les nouveautés du dossier."))
				return
			}
			v, err := h.readCase(ctx, reader(s, purposeLive), id)
			var de *domain.Error
			switch {
			case errors.Is(err, domain.ErrNotFound) || errors.As(err, &de) || err == nil && member && v.Summary == nil:
				// Not found, refused, or a section the facade answered
				// before and now refuses: a member that left the case.
				_ = send("end", []byte("Vous n'avez plus accès à ce dossier : la page ne se met plus à jour."))
				return
			case err != nil:
				if ctx.Err() != nil {
					return
				}
				h.log.Warn("web: live read failed", "err", err)
			case first:
				first, member = false, v.Summary != nil
				if v.Version <= shown {
					break
				}
				fallthrough
			case v.Version > shown:
				body, err := h.fragment("case", "sections", v)
				if err != nil {
					h.log.Error("web: render live sections", "err", err)
					return
				}
				if send("sections", body) != nil || send("version", []byte(strconv.FormatUint(v.Version, 10))) != nil {
					return
				}
				shown = v.Version
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
			check = true
		case <-ticker.C:
			// A comment keeps proxies from closing the stream, and the
			// session is checked (signed out elsewhere, token revoked).
			if _, err := w.Write([]byte(": veille\n\n")); err != nil {
				return
			}
			flusher.Flush()
			if !h.sessions.alive(s, h.directory) {
				_ = send("end", []byte("Votre session a pris fin : reconnectez-vous pour voir les nouveautés du dossier."))
				return
			}
		}
	}
}
