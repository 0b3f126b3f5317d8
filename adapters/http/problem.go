package http

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/maillage/maillage/adapters/directory"
	"github.com/maillage/maillage/domain"
	"github.com/maillage/maillage/domain/cases"
	"github.com/maillage/maillage/internal/reads"
)

// Problem is an RFC 9457 problem details body. Rule and Field are extension
// members naming the broken rule and the bad input field.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Field    string `json:"field,omitempty"`
}

// problemType is the URI of a problem type: one per rule.
func problemType(rule string) string { return "urn:maillage:problem:" + rule }

func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	p.Instance = r.URL.Path
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// storageFullDetail says what a full disk means to whoever is refused.
const storageFullDetail = "le disque du répertoire de données est plein : libérez de la place ; aucune donnée enregistrée n'est perdue"

// codeStatus maps domain error codes to HTTP statuses: the only place that
// knows both.
var codeStatus = map[string]int{
	domain.EInvalid:   http.StatusBadRequest,
	domain.ERefused:   http.StatusConflict,
	domain.ENotFound:  http.StatusNotFound,
	domain.EForbidden: http.StatusForbidden,
	domain.EConflict:  http.StatusConflict,
}

var codeTitle = map[string]string{
	domain.EInvalid:   "Requête invalide",
	domain.ERefused:   "Refusé par une règle du dossier",
	domain.ENotFound:  "Introuvable",
	domain.EForbidden: "Action non autorisée",
	domain.EConflict:  "Conflit",
}

// writeError answers err as problem+json. Errors it does not know are logged
// and answered as a 500 without their text, which could carry case content.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	log = requestLog(r.Context(), log)
	var de *domain.Error
	switch {
	case errors.As(err, &de):
		writeProblem(w, r, Problem{Type: problemType(de.Rule), Title: codeTitle[de.Code], Status: codeStatus[de.Code],
			Detail: de.Message, Rule: de.Rule, Field: de.Field})
	case errors.Is(err, cases.ErrNotFound):
		writeProblem(w, r, Problem{Type: problemType("case_not_found"), Title: "Dossier introuvable", Status: http.StatusNotFound,
			Detail: "aucun dossier avec cet identifiant n'est accessible avec ces identifiants", Rule: "case_not_found"})
	case errors.Is(err, cases.ErrPreconditionFailed):
		writeProblem(w, r, Problem{Type: problemType("version_mismatch"), Title: "Le dossier a changé", Status: http.StatusPreconditionFailed,
			Detail: "le dossier n'est plus à la version indiquée dans If-Match : relisez-le, puis décidez à nouveau", Rule: "version_mismatch", Field: "If-Match"})
	case errors.Is(err, domain.ErrVersionConflict):
		writeProblem(w, r, Problem{Type: problemType("version_conflict"), Title: "Conflit d'écriture", Status: http.StatusConflict,
			Detail: "le dossier a été modifié en même temps par une autre commande : relisez-le et réessayez", Rule: "version_conflict"})
	case errors.Is(err, cases.ErrIdempotencyKeyReused):
		writeProblem(w, r, Problem{Type: problemType("idempotency_key_reused"), Title: "Clé d'idempotence déjà utilisée", Status: http.StatusUnprocessableEntity,
			Detail: "cette Idempotency-Key a déjà servi pour une autre demande : utilisez une nouvelle clé pour une nouvelle demande", Rule: "idempotency_key_reused", Field: "Idempotency-Key"})
	case errors.Is(err, directory.ErrUnknownInstitution):
		writeProblem(w, r, Problem{Type: problemType("unknown_institution"), Title: codeTitle[domain.EInvalid], Status: http.StatusBadRequest,
			Detail: "cette institution n'est pas dans l'annuaire", Rule: "unknown_institution", Field: "payload.institution"})
	case errors.Is(err, domain.ErrStorageFull):
		// Before the access log's refusal: a read not recorded because the
		// disk is full is answered as the disk being full.
		log.Error("storage full: request refused", "err", err)
		w.Header().Set("Retry-After", "30")
		writeProblem(w, r, Problem{Type: problemType("storage_full"), Title: "Espace disque épuisé", Status: http.StatusInsufficientStorage,
			Detail: storageFullDetail, Rule: "storage_full"})
	case errors.Is(err, domain.ErrCaseDamaged):
		log.Error("case damaged: command refused", "err", err)
		writeProblem(w, r, Problem{Type: problemType("case_damaged"), Title: "Dossier en lecture seule", Status: http.StatusServiceUnavailable,
			Detail: "le journal a perdu ou altéré des événements déjà enregistrés et signés de ce dossier : il reste lisible mais n'accepte plus de commande ; restaurez le répertoire de données depuis une sauvegarde, puis lancez maillage audit verify", Rule: "case_damaged"})
	case errors.Is(err, reads.ErrNotRecorded):
		log.Error("access log unavailable: read refused", "err", err)
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, Problem{Type: problemType("access_log_unavailable"), Title: "Service momentanément indisponible", Status: http.StatusServiceUnavailable,
			Detail: "la consultation ne peut pas être journalisée : elle n'est pas servie ; réessayez dans un instant", Rule: "access_log_unavailable"})
	case errors.Is(err, reads.ErrNotConfigured):
		writeProblem(w, r, Problem{Type: problemType("not_configured"), Title: "Non disponible", Status: http.StatusNotImplemented,
			Detail: "ce serveur ne tient pas ce qui est demandé (vues de synthèse, journal des accès ou têtes signées)", Rule: "not_configured"})
	case errors.Is(err, domain.ErrStoreUnavailable):
		log.Error("event store unavailable", "err", err)
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, Problem{Type: problemType("store_unavailable"), Title: "Service momentanément indisponible", Status: http.StatusServiceUnavailable,
			Detail: "le journal des événements ne répond pas ; la demande peut être renvoyée telle quelle (avec la même Idempotency-Key)", Rule: "store_unavailable"})
	default:
		log.Error("request failed", "err", err)
		writeProblem(w, r, Problem{Type: problemType("internal"), Title: "Erreur interne", Status: http.StatusInternalServerError,
			Detail: "une erreur inattendue s'est produite ; si la demande portait une Idempotency-Key, elle peut être renvoyée telle quelle", Rule: "internal"})
	}
}
