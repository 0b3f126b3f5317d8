// Maillage web: live updates of a case page (EventSource), the sign-out
// confirmation dialog and the print button. No framework, no inline code
// (the Content-Security-Policy forbids it).
(function () {
  "use strict";

  function live() {
    var sections = document.getElementById("sections");
    var status = document.getElementById("etat-direct");
    if (!sections || !sections.dataset.live || !window.EventSource) { return; }
    var version = sections.dataset.version || "0";
    var source = new EventSource(sections.dataset.live + "?version=" + encodeURIComponent(version));
    document.documentElement.dataset.live = "connecting";
    source.addEventListener("ready", function () {
      document.documentElement.dataset.live = "open";
    });
    source.addEventListener("sections", function (e) {
      var doc = new DOMParser().parseFromString("<div>" + e.data + "</div>", "text/html");
      var fresh = doc.body.firstElementChild;
      sections.replaceChildren.apply(sections, Array.prototype.slice.call(fresh.childNodes));
      if (status) { status.textContent = "Le dossier vient d'être mis à jour."; }
    });
    source.addEventListener("version", function (e) {
      sections.dataset.version = e.data;
      var v = document.getElementById("version-dossier");
      if (v) { v.textContent = e.data; }
    });
    source.addEventListener("end", function (e) {
      source.close();
      document.documentElement.dataset.live = "closed";
      if (status) { status.textContent = e.data; status.classList.add("live-status--ended"); }
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) { document.documentElement.dataset.live = "closed"; }
    };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function signOutDialog() {
    var form = document.querySelector("form[data-confirm=signout]");
    var dialog = document.getElementById("confirm-signout");
    if (!form || !dialog || typeof dialog.showModal !== "function") { return; }
    var opener = null;
    form.addEventListener("submit", function (e) {
      if (form.dataset.confirmed === "yes") { return; }
      e.preventDefault();
      opener = document.activeElement;
      dialog.showModal();
      dialog.querySelector("[data-dialog-cancel]").focus();
    });
    dialog.querySelector("[data-dialog-confirm]").addEventListener("click", function () {
      form.dataset.confirmed = "yes";
      dialog.close();
      form.submit();
    });
    dialog.querySelector("[data-dialog-cancel]").addEventListener("click", function () { dialog.close(); });
    // Escape closes a modal dialog natively; focus goes back to its opener.
    dialog.addEventListener("close", function () { if (opener && form.dataset.confirmed !== "yes") { opener.focus(); } });
  }

  function printButtons() {
    document.querySelectorAll("[data-print]").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
  }

  function focusErrors() {
    var summary = document.getElementById("erreurs");
    if (summary) { summary.focus(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    live();
    signOutDialog();
    printButtons();
    focusErrors();
  });
})();
