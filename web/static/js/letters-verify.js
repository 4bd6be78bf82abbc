// Verification page: upload the PDF to the public API and show the verdict for exactly
// that version (its own status, whether a correction replaced it), not the letter's now.
"use strict";
(function () {
  const form = document.getElementById("verify-form");
  if (!form) return;
  const file = document.getElementById("verify-file");
  const busy = document.getElementById("verify-busy");
  const result = document.getElementById("verify-result");
  const error = document.getElementById("verify-error");
  const m = document.getElementById("verify-messages").dataset;
  const $ = (id) => document.getElementById(id);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    const data = new FormData();
    data.append("file", file.files[0]);
    result.hidden = true;
    error.hidden = true;
    busy.hidden = false;
    try {
      const response = await fetch("/api/v1/verify", {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-CSRF-Token": window.yk.csrf() },
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        error.textContent = (body && body.error && body.error.message) || m.failed;
        error.hidden = false;
        return;
      }
      const verdict = $("verdict");
      verdict.className = "verdict " + (body.valid ? "ok" : "bad");
      verdict.textContent = body.valid ? m.valid : (m[body.problem] || m.not_on_record);
      if (!body.valid && body.seal_valid && !body.matches_record) verdict.textContent = m.not_on_record;
      $("v-certificate").textContent = body.certificate || "—";
      $("v-signed-at").textContent = body.signed_at ? new Date(body.signed_at).toLocaleString() : "—";
      $("v-timestamp").textContent = body.timestamp ? new Date(body.timestamp).toLocaleString() : "—";
      // Authentic is not the same as current: say which version this file is.
      if (body.valid && body.record && body.record.superseded) {
        verdict.className = "verdict pending";
        verdict.textContent = m.superseded;
      } else if (body.valid && body.record && !body.record.latest) {
        verdict.className = "verdict pending";
        verdict.textContent = m.outdated;
      }
      $("v-sha").textContent = body.sha256;
      const signers = $("v-signers");
      signers.textContent = "";
      if (body.record) {
        let text = m.record.replace("%(case)s", body.record.case_number)
          .replace("%(version)s", body.record.version)
          .replace("%(status)s", m["status" + body.record.status[0].toUpperCase() + body.record.status.slice(1)] || body.record.status);
        if (!body.record.latest && !body.record.superseded) text += " " + m.notLatest;
        $("v-record").textContent = text;
        for (const s of body.record.signers) {
          const li = document.createElement("li");
          li.textContent = `${s.name} · ${s.role_label || s.role} · ${new Date(s.signed_at).toLocaleString()}`;
          signers.appendChild(li);
        }
      } else {
        $("v-record").textContent = m.none;
      }
      result.hidden = false;
    } catch (err) {
      error.textContent = m.failed;
      error.hidden = false;
    } finally {
      busy.hidden = true;
    }
  });
})();
