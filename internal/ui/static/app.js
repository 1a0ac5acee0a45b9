// Switchboard console: the little script the pages need, no library.
// - a form or button with data-confirm asks before it submits;
// - the dashboard's live-calls table is re-read on every call event of the
//   account's stream (/live relays GET /api/v1/{account}/events).
(function () {
  "use strict";
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var msg = f.getAttribute("data-confirm");
    if (e.submitter && e.submitter.getAttribute("data-confirm")) msg = e.submitter.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  });
  var live = document.getElementById("live-calls");
  if (live && window.EventSource) {
    var status = document.getElementById("live-status");
    // One fetch at a time; an event during it asks for one more after it,
    // so the last event's state is always shown.
    var pending = false, again = false;
    var refresh = function () {
      if (pending) { again = true; return; }
      pending = true;
      fetch("/live/calls", { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.text() : Promise.reject(r.status);
      }).then(function (html) {
        live.innerHTML = html;
        live.setAttribute("data-updated", String(Date.now()));
      }).catch(function () {}).finally(function () {
        pending = false;
        if (again) { again = false; refresh(); }
      });
    };
    var es = new EventSource("/live");
    es.onopen = function () { if (status) status.textContent = "live"; document.body.setAttribute("data-live", "open"); refresh(); };
    es.onerror = function () { if (status) status.textContent = "reconnecting…"; };
    ["call.started", "call.ringing", "call.answered", "call.transferred", "call.completed"].forEach(function (t) {
      es.addEventListener(t, refresh);
    });
    es.addEventListener("registration.changed", function (ev) {
      var d = JSON.parse(ev.data).data, el = document.getElementById("reg-" + d.user);
      if (el) el.textContent = d.devices;
    });
  }
})();
