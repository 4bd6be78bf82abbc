/* The inspector's workbench beside the video (templates/cases/_console_evidence.html):
   the matter's checklist with a snapshot per item, the snapshot strip, annotation on a
   canvas (saved as a separate image; the original stays), the location check, the
   decision, issuing and co-signing the documents, and the invite dialog. Every write goes
   through the existing JSON API; nothing here is kept only in the page. */
"use strict";
(function () {
  var panel = document.getElementById("evidence");
  if (!panel) return;
  var YK = window.YK, el = YK.el, fmt = window.ykFmt;
  // app.js (window.yk) is deferred; this script is not: look it up at call time.
  var api = function (method, url, body) { return window.yk.api(method, url, body); };
  var T = JSON.parse(panel.dataset.text);
  var wb = JSON.parse(panel.dataset.workbench);
  var room = panel.dataset.room, caseId = wb.case_id;
  var $ = function (id) { return document.getElementById(id); };
  var shots = {};             // id -> snapshot JSON
  var items = wb.checklist;   // [{item, result, note, snapshot_ids}]

  /* -- tabs ------------------------------------------------------------------------ */
  panel.querySelectorAll(".tab").forEach(function (tab) {
    tab.addEventListener("click", function () { showTab(tab.dataset.tab); });
  });
  function showTab(id) {
    panel.querySelectorAll(".tab").forEach(function (t) { t.classList.toggle("active", t.dataset.tab === id); });
    panel.querySelectorAll(".tab-panel").forEach(function (p) { p.hidden = p.id !== id; });
  }
  document.querySelectorAll("dialog [data-close]").forEach(function (b) {
    b.addEventListener("click", function () { b.closest("dialog").close(); });
  });
  function errorText(err) {
    var e = err && err.data && err.data.error;
    if (e && e.details && e.details.missing) return fmt(T.missing, {items: e.details.missing.join("、")});
    if (e && e.fields) return Object.keys(e.fields).map(function (k) { return e.fields[k]; }).join("；") || e.message;
    return (e && e.message) || String(err.message || err);
  }

  /* -- snapshots and the strip -------------------------------------------------------- */
  function thumb(shot) {
    var li = el("li", {"class": "shot", "data-snapshot": shot.id});
    var img = el("img", {src: shot.watermarked.url, alt: "#" + shot.id, title: T.original});
    li.appendChild(img);
    if (shot.annotated) li.appendChild(el("img", {"class": "annotated", src: shot.annotated.url + "?v=" + shot.annotated.sha256.slice(0, 8), alt: T.annotation, title: T.annotation}));
    li.appendChild(el("span", {"class": "cap"}, "#" + shot.id + " " + (shot.checklist_item || "")));
    li.addEventListener("click", function () { openAnnotate(shot.id); });
    return li;
  }
  function drawShot(shot) {
    shots[shot.id] = shot;
    var strip = $("snapshot-strip");
    var old = strip.querySelector("[data-snapshot='" + shot.id + "']");
    var li = thumb(shot);
    if (old) old.replaceWith(li); else strip.prepend(li);
    var row = itemRow(shot.checklist_item);
    if (row) {
      var list = row.querySelector(".item-shots");
      var small = list.querySelector("[data-snapshot='" + shot.id + "']");
      var t = el("li", {"data-snapshot": shot.id});
      t.appendChild(el("img", {src: (shot.annotated || shot.watermarked).url, alt: fmt(T.item_photo, {item: shot.checklist_item})}));
      t.addEventListener("click", function () { openAnnotate(shot.id); });
      if (small) small.replaceWith(t); else list.appendChild(t);
    }
  }
  function itemRow(name) {
    var found = null;
    panel.querySelectorAll(".check-item").forEach(function (li) { if (li.dataset.item === name) found = li; });
    return found;
  }
  wb.snapshots.forEach(drawShot);

  /* A snapshot for item ``index`` (or for no item: index null, from the strip's button). */
  async function snapshot(index, row) {
    var button = row ? row.querySelector("[data-action=snapshot]") : $("snapshot-any");
    var status = $("snapshot-status");
    button.disabled = true;
    status.textContent = T.taking;
    try {
      var body = index === null ? {} : {checklist_item: items[index].item};
      var shot = await api("POST", "/api/v1/sessions/" + encodeURIComponent(room) + "/snapshots", body);
      drawShot(shot);
      status.textContent = T.taken + " #" + shot.id;
      if (index === null) return;
      items[index].snapshot_ids.push(shot.id);
      if (items[index].result) await saveItem(index, row);
    } catch (err) {
      status.textContent = errorText(err);
    } finally {
      button.disabled = false;
    }
  }

  /* -- checklist --------------------------------------------------------------------- */
  async function saveItem(index, row) {
    var it = items[index], status = row.querySelector(".item-status");
    var checked = row.querySelector("input[type=radio]:checked");
    if (!checked) return;
    it.result = checked.value;
    it.note = row.querySelector("input.note").value.trim();
    status.textContent = T.saving;
    try {
      var out = await api("POST", "/api/v1/cases/" + caseId + "/checklist", {item: it.item, result: it.result, note: it.note, snapshot_ids: it.snapshot_ids});
      row.className = "check-item done result-" + out.result;
      row.dataset.saved = out.result;
      status.textContent = T.saved + " · " + T[out.result];
    } catch (err) {
      status.textContent = errorText(err);
    }
  }
  panel.querySelectorAll(".check-item").forEach(function (row) {
    var index = Number(row.dataset.index);
    row.querySelectorAll("input[type=radio]").forEach(function (r) { r.addEventListener("change", function () { saveItem(index, row); }); });
    row.querySelector("input.note").addEventListener("change", function () { saveItem(index, row); });
    row.querySelector("[data-action=snapshot]").addEventListener("click", function () { snapshot(index, row); });
  });

  $("snapshot-any").addEventListener("click", function () { snapshot(null, null); });

  /* -- annotation ---------------------------------------------------------------------- */
  var canvas = $("annotate-canvas"), ctx = canvas.getContext("2d");
  var current = null, image = null, shapes = [], drag = null;
  function tool() { return document.querySelector("#annotate input[name=tool]:checked").value; }
  function openAnnotate(id) {
    current = shots[id]; shapes = []; $("annotate-save").disabled = true; $("annotate-status").textContent = "";
    $("annotate-title").textContent = "#" + id + " " + (current.checklist_item || "");
    $("annotate-original").src = current.watermarked.url;
    image = new Image();
    image.onload = function () { canvas.width = image.naturalWidth; canvas.height = image.naturalHeight; redraw(); };
    image.src = current.watermarked.url;
    var d = $("annotate"); if (!d.open) d.showModal();
  }
  function pos(ev) {
    var r = canvas.getBoundingClientRect();
    var x = (ev.clientX - r.left) * canvas.width / r.width, y = (ev.clientY - r.top) * canvas.height / r.height;
    return [Math.max(0, Math.min(canvas.width, Math.round(x))), Math.max(0, Math.min(canvas.height, Math.round(y)))];
  }
  function paint(s) {
    ctx.strokeStyle = ctx.fillStyle = "#ff2d2d";
    ctx.lineWidth = Math.max(2, Math.round(Math.min(canvas.width, canvas.height) / 160));
    ctx.beginPath();
    if (s.type === "arrow") {
      var a = s.from, b = s.to, ang = Math.atan2(b[1] - a[1], b[0] - a[0]), h = Math.max(10, ctx.lineWidth * 4);
      ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(b[0], b[1]);
      ctx.lineTo(b[0] - h * Math.cos(ang - 0.45), b[1] - h * Math.sin(ang - 0.45));
      ctx.lineTo(b[0] - h * Math.cos(ang + 0.45), b[1] - h * Math.sin(ang + 0.45));
      ctx.closePath(); ctx.fill();
    } else if (s.type === "rect") {
      ctx.strokeRect(Math.min(s.from[0], s.to[0]), Math.min(s.from[1], s.to[1]), Math.abs(s.to[0] - s.from[0]), Math.abs(s.to[1] - s.from[1]));
    } else if (s.type === "circle") {
      ctx.arc(s.center[0], s.center[1], s.radius, 0, Math.PI * 2); ctx.stroke();
    } else if (s.type === "text") {
      ctx.font = Math.max(14, Math.round(Math.min(canvas.width, canvas.height) / 20)) + "px sans-serif";
      ctx.textBaseline = "top"; ctx.fillText(s.text, s.at[0], s.at[1]);
    }
  }
  function redraw(extra) {
    if (!image) return;
    ctx.drawImage(image, 0, 0);
    shapes.forEach(paint);
    if (extra) paint(extra);
  }
  function shapeOf(a, b) {
    var t = tool();
    if (t === "circle") return {type: "circle", center: a, radius: Math.max(1, Math.round(Math.hypot(b[0] - a[0], b[1] - a[1])))};
    return {type: t, from: a, to: b};
  }
  canvas.addEventListener("pointerdown", function (ev) {
    if (!image) return;
    ev.preventDefault();
    var p = pos(ev);
    if (tool() === "text") {
      var text = prompt(T.text_prompt, "");
      if (text && text.trim()) { shapes.push({type: "text", at: p, text: text.trim().slice(0, 200)}); redraw(); $("annotate-save").disabled = false; }
      return;
    }
    canvas.setPointerCapture(ev.pointerId);
    drag = p;
  });
  canvas.addEventListener("pointermove", function (ev) { if (drag) redraw(shapeOf(drag, pos(ev))); });
  canvas.addEventListener("pointerup", function (ev) {
    if (!drag) return;
    var p = pos(ev), s = shapeOf(drag, p);
    drag = null;
    if (Math.hypot(p[0] - (s.from || s.center)[0], p[1] - (s.from || s.center)[1]) < 4) { redraw(); return; }
    shapes.push(s); redraw(); $("annotate-save").disabled = false;
  });
  $("annotate-undo").addEventListener("click", function () { shapes.pop(); redraw(); $("annotate-save").disabled = !shapes.length; });
  $("annotate-save").addEventListener("click", async function () {
    this.disabled = true;
    $("annotate-status").textContent = T.saving;
    try {
      var shot = await api("POST", "/api/v1/snapshots/" + current.id + "/annotations", {shapes: shapes});
      drawShot(shot);
      $("annotate-status").textContent = T.annotated;
      $("annotate-status").dataset.saved = String(shot.id);
    } catch (err) {
      $("annotate-status").textContent = errorText(err);
      this.disabled = false;
    }
  });

  /* -- location -------------------------------------------------------------------------- */
  function showLocation(loc) {
    var p = $("location"); if (!p || !loc) return;
    var where = fmt(T.located, {where: Number(loc.lat).toFixed(5) + ", " + Number(loc.lon).toFixed(5) + (loc.accuracy_m != null ? " ±" + Math.round(loc.accuracy_m) + " m" : "")});
    p.innerHTML = "";
    p.appendChild(el("span", {}, where + " · "));
    if (loc.distance_m == null) {
      p.appendChild(el("span", {"class": "hint"}, T.no_site));
    } else {
      p.appendChild(el("span", {}, fmt(T.distance, {distance: Math.round(loc.distance_m), limit: Math.round(loc.threshold_m)}) + " "));
      p.appendChild(el("strong", {"class": loc.flagged ? "flag" : "ok", id: "location-flag", "data-flagged": loc.flagged ? "true" : "false"}, loc.flagged ? "⚑ " + T.far : "✓ " + T.near));
    }
    p.hidden = false;
  }
  if (wb.locations.length) showLocation(wb.locations[wb.locations.length - 1]);
  async function locationShared(data) {
    // The hub files the answer on the case (server/evidence/recording.py) just after
    // relaying it; read the case until the new fix with its distance check is there.
    for (var i = 0; i < 20; i++) {
      var view = await api("GET", "/api/v1/cases/" + caseId).catch(function () { return null; });
      var loc = view && view.locations[view.locations.length - 1];
      if (loc && Math.abs(loc.lat - data.lat) < 1e-9 && Math.abs(loc.lon - data.lon) < 1e-9) { showLocation(loc); return; }
      await new Promise(function (r) { setTimeout(r, 300); });
    }
  }

  $("site-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var f = new FormData(this);
    try {
      await api("PUT", "/api/v1/cases/" + caseId + "/site", {address: wb.site_address || "", lat: Number(f.get("lat")), lon: Number(f.get("lon"))});
      $("site-status").textContent = T.saved;
      $("site-status").dataset.saved = "1";
    } catch (err) { $("site-status").textContent = errorText(err); }
  });

  /* -- decision ------------------------------------------------------------------------- */
  var form = $("console-decision");
  if (form) form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var f = new FormData(form), box = $("decision-error");
    box.hidden = true;
    var body = {outcome: f.get("outcome") || "", reason: f.get("reason") || "", requirements: f.get("requirements") || ""};
    if (f.get("rectify_days")) body.rectify_days = Number(f.get("rectify_days"));
    if (f.get("reviewer_id")) body.reviewer_id = Number(f.get("reviewer_id"));
    if (!body.outcome) delete body.outcome;
    try {
      var out = await api("POST", "/api/v1/cases/" + caseId + "/decision", body);
      wb.decision = {outcome: out.outcome, reason: out.reason, requirements: out.requirements, deadline: out.deadline};
      var now = $("decision-now");
      now.className = "decision decision-" + out.outcome;
      now.textContent = fmt(T.decided, {outcome: T[out.outcome]}) + (out.deadline ? " · " + fmt(T.record_deadline, {date: out.deadline}) : "");
      now.dataset.state = out.state;
      form.hidden = true;
    } catch (err) {
      box.textContent = errorText(err);
      box.hidden = false;
    }
  });

  /* -- documents ------------------------------------------------------------------------ */
  var letters = wb.letters;
  function renderLetters() {
    var list = $("documents"); list.innerHTML = "";
    letters.slice().reverse().forEach(function (d) {
      var li = el("li", {"data-letter": d.id, "data-status": d.status, "data-kind": d.kind});
      li.appendChild(el("strong", {}, d.title + " "));
      li.appendChild(el("span", {"class": "hint"}, fmt(T.version, {n: d.version}) + " · " + (d.status === "signed" ? T.signed_all : d.status === "superseded" ? T.superseded : fmt(T.waiting_for, {name: d.waiting_for || ""}))));
      var who = el("div", {"class": "signers"});
      d.signers.forEach(function (s, i) { who.appendChild(el("span", {"class": s.signed ? "signed" : "pending"}, (i ? "、" : "") + s.name + "（" + s.role_label + "）" + (s.signed ? " ✓" : ""))); });
      li.appendChild(who);
      if (d.your_turn) li.appendChild(el("button", {"class": "button primary small sign", type: "button", onclick: function () { openSign(d.id); }}, d.kind === "record" ? T.cosign : T.sign));
      if (d.pdf_sha256) li.appendChild(el("a", {href: d.pdf_url, target: "_blank", rel: "noopener"}, "PDF"));
      list.appendChild(li);
    });
  }
  renderLetters();
  async function refreshLetters() {
    try { letters = (await api("GET", "/api/v1/cases/" + caseId + "/letters")).letters; renderLetters(); } catch (e) { /* next round */ }
  }
  // Co-signers work from their own consoles: see each other's signatures as they come.
  setInterval(function () { if (!$("sign-dialog").open) refreshLetters(); }, 4000);

  function openSign(id) {
    $("sign-frame").src = "/letters/" + id + "?embed=1";
    $("sign-dialog").showModal();
  }
  window.addEventListener("message", function (ev) {
    if (ev.origin !== location.origin || !ev.data || ev.data.type !== "yunkan:letter-signed") return;
    $("sign-dialog").close();
    $("sign-frame").src = "about:blank";
    refreshLetters();
  });

  function facts() {
    var f = {matter_title: wb.matter};
    if (wb.site_address) f.site_address = wb.site_address;
    return f;
  }
  async function issue(body) {
    var box = $("doc-error"); box.hidden = true;
    try {
      var letter = await api("POST", "/api/v1/cases/" + caseId + "/letters", body);
      await refreshLetters();
      if (letter.your_turn) openSign(letter.id);
    } catch (err) {
      box.textContent = errorText(err);
      box.hidden = false;
    }
  }
  $("issue-commitment").addEventListener("click", function () { issue({kind: "commitment", fields: facts()}); });
  $("issue-record").addEventListener("click", async function () {
    // The record states the case: the checklist as recorded and the decision as drafted.
    var view = await api("GET", "/api/v1/cases/" + caseId);
    var d = view.decision;
    if (!d) { var box = $("doc-error"); box.textContent = T.need_decision; box.hidden = false; return; }
    // The letters domain writes the record from the case itself; what the screen shows is
    // sent as statements, so a stale console is refused (record_contradicts_case).
    var body = {
      kind: "record",
      inspectors: wb.inspectors.map(function (i) { return i.id; }),
      checklist: view.checklist.map(function (r) { return {item: r.item, result: wb.result_to_record[r.result] || r.result, note: r.note || ""}; }),
      outcome: d.outcome
    };
    if (d.outcome === "rectify" && d.deadline) body.deadline = d.deadline;
    var prior = letters.filter(function (l) { return l.kind === "record" && !l.superseded_by_id; }).pop();
    if (prior) body.supersedes = prior.id;
    issue(body);
  });

  /* -- invite ---------------------------------------------------------------------------- */
  var inviteBtn = $("btn-invite");
  if (inviteBtn) inviteBtn.addEventListener("click", function () {
    $("invite-result").hidden = true; $("invite-form").hidden = false; $("invite-error").hidden = true;
    $("invite-dialog").showModal();
  });
  $("invite-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var f = new FormData(this), body = {role: f.get("role"), name: String(f.get("name") || "").trim()};
    var mobile = String(f.get("mobile") || "").trim();
    if (mobile) body.mobile = mobile;
    try {
      var out = await api("POST", "/api/v1/live/rooms/" + encodeURIComponent(room) + "/invite", body);
      $("invite-link").value = out.url;
      $("invite-qr").innerHTML = out.qr_svg || "";
      $("invite-status").textContent = out.sms_to ? fmt(T.sms_sent, {mobile: out.sms_to}) : "";
      $("invite-result").hidden = false;
      this.hidden = true;
    } catch (err) {
      $("invite-error").textContent = errorText(err);
      $("invite-error").hidden = false;
    }
  });
  $("invite-copy").addEventListener("click", async function () {
    var input = $("invite-link");
    try { await navigator.clipboard.writeText(input.value); } catch (e) { input.select(); document.execCommand("copy"); }
    $("invite-status").textContent = T.copied;
  });

  window.ykWorkbench = {locationShared: locationShared, presence: function () {}, showTab: showTab};
})();
