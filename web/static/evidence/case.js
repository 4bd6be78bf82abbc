/* Case pages: integrity check (staff) and sharing the browser's location (applicant).
   Kept out of the templates: the pages' CSP allows scripts from 'self' only. */
"use strict";
(function () {
  var card = document.getElementById("case");
  if (!card) return;
  var caseId = card.dataset.caseId;
  var T = JSON.parse(card.dataset.text || "{}");

  var verify = document.getElementById("verify-case");
  if (verify) {
    verify.addEventListener("click", async function () {
      var out = document.getElementById("verify-result");
      out.textContent = "…";
      try {
        var report = await window.yk.api("GET", "/api/v1/cases/" + caseId + "/verify");
        out.textContent = report.ok ? T.intact
          : T.broken + " seq " + report.first_break.seq + ": " + report.first_break.reason;
        out.className = report.ok ? "ok" : "flag";
      } catch (error) { out.textContent = error.message; out.className = "flag"; }
    });
  }

  var share = document.getElementById("share-location");
  if (share) {
    share.addEventListener("click", function () {
      var out = document.getElementById("location-result");
      if (!navigator.geolocation) { out.textContent = T.no_geolocation; return; }
      navigator.geolocation.getCurrentPosition(async function (pos) {
        try {
          await window.yk.api("POST", "/api/v1/cases/" + caseId + "/location",
            {lat: pos.coords.latitude, lon: pos.coords.longitude, accuracy: pos.coords.accuracy});
          out.textContent = T.shared;
        } catch (error) { out.textContent = error.message; }
      }, function (error) { out.textContent = T.unavailable + ": " + error.message; },
      {enableHighAccuracy: true, timeout: 15000});
    });
  }
})();

(function () {
  // The rectification form: say how many files were chosen (the input itself is hidden
  // under its big label, which is easier to hit on a phone).
  var input = document.getElementById("rectification-file");
  var card = document.getElementById("case");
  if (!input || !card) return;
  var T = JSON.parse(card.dataset.text || "{}");
  input.addEventListener("change", function () {
    var out = document.getElementById("rectification-chosen");
    out.textContent = (T.chosen || "%(n)s").replace("%(n)s", String(input.files.length));
  });
})();
