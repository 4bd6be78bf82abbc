/* 好差评 pages: the SMS link's one-tap rating, and the staff forms, all through the JSON API. */
(function () {
  "use strict";
  var card = document.getElementById("rate");
  if (card && (card.dataset.state === "case" || card.dataset.state === "fix")) {
    var status = document.getElementById("rate-status");
    var send = async function (level) {
      var body = {token: card.dataset.token, level: level};
      var comment = document.getElementById("rate-comment");
      if (comment && comment.value.trim()) body.comment = comment.value.trim();
      var tags = [].map.call(card.querySelectorAll("input[name=tags]:checked"), function (i) { return i.value; });
      if (card.dataset.state === "case") body.tags = tags;
      try {
        await window.yk.api("POST", "/api/v1/ratings/link", body);
        card.querySelectorAll(".rating-level").forEach(function (b) {
          b.setAttribute("aria-pressed", b.dataset.level === level ? "true" : "false");
        });
        status.textContent = card.dataset.thanks;
        card.dataset.sent = level;
      } catch (err) { status.textContent = err.message; }
    };
    card.querySelectorAll(".rating-level").forEach(function (b) {
      b.addEventListener("click", function () { send(b.dataset.level); });
    });
  }

  document.querySelectorAll("form.api-form").forEach(function (form) {
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var body = {};
      form.querySelectorAll("textarea, input[type=text]").forEach(function (f) { body[f.name] = f.value; });
      form.querySelectorAll("input[type=checkbox]").forEach(function (f) { body[f.name] = f.checked; });
      if (ev.submitter && ev.submitter.name) body[ev.submitter.name] = ev.submitter.value === "1";
      var out = document.getElementById("form-status");
      try {
        await window.yk.api("POST", form.dataset.api, body);
        window.location.reload();
      } catch (err) {
        out.hidden = false; out.className = "alert error"; out.textContent = err.message;
      }
    });
  });
})();
