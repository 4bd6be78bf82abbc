/* Inspection console: take a server-side snapshot of the applicant's live video.
   The server decodes the relayed stream, watermarks it and files it on the case. */
"use strict";
(function () {
  var panel = document.getElementById("evidence");
  if (!panel) return;
  var T = JSON.parse(panel.dataset.text);
  var room = panel.dataset.room;
  var status = document.getElementById("snapshot-status");
  var list = document.getElementById("snapshot-list");
  var link = document.getElementById("case-link");
  document.getElementById("snapshot-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    var button = document.getElementById("snapshot-take");
    var item = document.getElementById("snapshot-item").value.trim();
    button.disabled = true;
    status.textContent = T.taking;
    try {
      var body = item ? {checklist_item: item} : {};
      var shot = await window.yk.api("POST", "/api/v1/sessions/" + encodeURIComponent(room) + "/snapshots", body);
      var li = document.createElement("li");
      var img = document.createElement("img");
      img.src = shot.watermarked.url;
      img.alt = "#" + shot.id;
      li.appendChild(img);
      var caption = document.createElement("div");
      caption.className = "hash";
      caption.textContent = "#" + shot.id + " " + (shot.checklist_item || "") + " SHA-256 " + shot.watermarked.sha256.slice(0, 16) + "…";
      li.appendChild(caption);
      list.prepend(li);
      status.textContent = T.taken;
      link.href = "/staff/cases/" + shot.case_id;
      link.textContent = T.case;
      link.hidden = false;
    } catch (error) {
      status.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
})();
