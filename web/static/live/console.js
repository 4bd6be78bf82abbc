/* Inspector (and expert/observer) console: waiting list with sound, tiles with spotlight and
   full screen, requests to the phone with their answers in words, chat. The case workbench
   (checklist, snapshots, decision, documents) is web/static/evidence/console.js. */
(function () {
  "use strict";
  var YK = window.YK, el = YK.el;
  var root = document.getElementById("live");
  var config = JSON.parse(root.dataset.config);
  var T = JSON.parse(root.dataset.text);
  var isStaff = config.role === "inspector";
  // Observers and supervisors watch hidden: the hub refuses their offer, so never ask for
  // the camera or microphone at all.
  var receiveOnly = !!config.receive_only;
  var $ = function (id) { return document.getElementById(id); };
  var names = {}, seenWaiting = {}, stream = null;
  var previews = {};  // participant -> latest waiting-room still (memory only, never stored)
  var away = {};      // participant -> true while presence says connected: false

  function fmt(template, params) {
    return template.replace(/%\((\w+)\)s/g, function (_, k) { return params[k] != null ? params[k] : ""; });
  }

  var live = new YK.LiveSession(config, {
    welcome: function () { $("banner").hidden = true; $("status").textContent = T.live; },
    state: function (state) { if (state !== "admitted" && state !== "waiting") { $("status").textContent = T.ended; } },
    reconnecting: function () { $("banner").hidden = false; $("status").textContent = T.reconnecting; },
    outage: function (on) { $("banner").hidden = !on; },
    quality: showQuality,
    audioOnly: function (on) { if ($("weak-audio-only")) $("weak-audio-only").hidden = !on; },
    closed: function () { $("status").textContent = T.ended; },
    presence: render,
    remote: function (publisher, s) { addTools(YK.tile($("tiles"), publisher, names[publisher] || publisher, s, false)); },
    remoteGone: function (publisher) { var t = $("tile-" + publisher); if (t) t.remove(); spotlightCheck(); },
    chat: function (m) { $("chat-log").appendChild(el("li", {}, m.name + ": " + m.text)); },
    response: onResponse,
    preview: onPreview,
    error: function (m) { $("answers").appendChild(el("li", {"class": "bad"}, m.message || m.code)); }
  });

  /* Each tile says what its picture is worth: the other side's network is down, the
     picture stands still ("画面已停滞 8 秒", counting up), only audio comes, or it is late;
     and a badge with the level and figures of that connection (quality.js). */
  function tileState(id, f) {
    var stalled = f && f.frozen ? fmt(T.frozen, {s: Math.floor(f.frozenMs / 1000)}) : "";
    if (away[id]) return ["disconnected", T.peer_down + (stalled ? " · " + stalled : "")];
    if (stalled) return ["frozen", stalled];
    if (f && f.audioOnly) return ["audio-only", T.audio_only];
    if (f && f.late) return ["late", fmt(T.late, {s: f.lateS.toFixed(1)})];
    return ["", ""];
  }
  function tileLevel(state, f) {
    if (state === "disconnected") return "down";
    if (!f) return "unknown";
    if (state === "frozen") return "poor";
    var L = window.YKQuality.LIMITS;
    if (f.lossIn >= L.fair.loss || (f.rttMs || 0) >= L.fair.rttMs) return "poor";
    if (f.lossIn >= L.good.loss || (f.rttMs || 0) >= L.good.rttMs || state === "late") return "fair";
    return "good";
  }
  function paintTile(box, f) {
    var id = box.dataset.participant, st = tileState(id, f), level = tileLevel(st[0], f);
    var note = box.querySelector(".tile-state");
    if (!note) { note = el("span", {"class": "tile-state", role: "status"}); box.appendChild(note); }
    var badge = box.querySelector(".tile-quality");
    if (!badge) { badge = el("span", {"class": "tile-quality"}); box.appendChild(badge); }
    box.dataset.state = st[0];
    note.textContent = st[1];
    note.hidden = !st[1];
    badge.dataset.level = level;
    var parts = [T[level] || "—"];
    if (f && level !== "down") {
      if (!f.audioOnly) parts.push(Math.round(f.fps) + " fps");
      parts.push(Math.round(f.kbpsIn) + " kbit/s");
      parts.push(T.loss + " " + (f.lossIn * 100).toFixed(1) + " %");
      if (f.freezeCount) parts.push(fmt(T.freezes, {n: f.freezeCount, s: f.freezeS.toFixed(1)}));
    }
    badge.textContent = parts.join(" · ");
    if (f) { box.dataset.fps = f.fps.toFixed(1); box.dataset.kbps = String(Math.round(f.kbpsIn)); }
  }
  function showQuality(q) {
    document.querySelectorAll("#tiles .tile").forEach(function (box) { paintTile(box, q.subs[box.dataset.participant]); });
    var mine = $("quality");
    if (mine) {
      mine.dataset.level = q.level;
      mine.querySelector("b").textContent = window.YKQuality.describe(q, T);
    }
  }

  /* A waiting person's still: shown beside their row, replaced by the next one. */
  function onPreview(m) {
    if (!/^data:image\/jpeg;base64,/.test(m.image || "")) return;
    previews[m.participant] = m.image;
    document.querySelectorAll("li[data-participant='" + m.participant + "'] img.still").forEach(function (img) {
      img.src = m.image; img.hidden = false;
      var av = img.parentNode.querySelector(".avatar"); if (av) av.hidden = true;
    });
  }
  function still(p, li) {
    var img = el("img", {"class": "still", width: "80", height: "60", alt: fmt(T.preview_alt, {name: p.name})});
    var av = el("span", {"class": "avatar", "aria-hidden": "true"}, (p.name || "?").slice(0, 1));
    if (previews[p.id]) { img.src = previews[p.id]; av.hidden = true; } else { img.hidden = true; }
    li.appendChild(img); li.appendChild(av);
  }

  /* The phone's answer, in words: "陈经理 switched to the rear camera". */
  function onResponse(m) {
    var who = names[m.from] || m.from, data = m.data || {}, text;
    if (!m.ok) {
      var reason = T["reason_" + data.reason] || data.reason || "";
      var what = m.kind === "torch" ? T.torch : (T[m.kind] || m.kind);
      text = fmt(T.answer_refused, {name: who, what: what, reason: reason});
    } else if (m.kind === "location" && data.lat != null) {
      var where = Number(data.lat).toFixed(5) + ", " + Number(data.lon).toFixed(5) + (data.accuracy != null ? " ±" + Math.round(data.accuracy) + " m" : "");
      text = fmt(T.answer_location, {name: who, where: where});
      if (window.ykWorkbench) window.ykWorkbench.locationShared(data);
    } else if (m.kind === "zoom") {
      text = fmt(T.answer_zoom, {name: who, zoom: data.zoom || 2});
    } else if (m.kind === "torch") {
      text = fmt(pendingTorch.last === false ? T.answer_torch_off : T.answer_torch, {name: who});
    } else {
      text = fmt(T["answer_" + m.kind] || "%(name)s", {name: who});
    }
    var log = $("answers");
    log.appendChild(el("li", {"class": m.ok ? "ok" : "bad", "data-kind": m.kind}, text));
    log.scrollTop = log.scrollHeight;  // newest answer in view
  }
  var pendingTorch = {};

  function addTools(box) {
    if (box.querySelector(".tile-tools")) return;
    var b = el("button", {"class": "button small tile-tools", type: "button", onclick: function () { spotlight(box); }}, T.spotlight);
    box.appendChild(b);
    box.addEventListener("dblclick", function () { spotlight(box); });
  }
  function spotlight(box) {
    var grid = $("tiles"), on = !box.classList.contains("spotlit");
    grid.querySelectorAll(".tile.spotlit").forEach(function (t) { t.classList.remove("spotlit"); t.querySelector(".tile-tools").textContent = T.spotlight; });
    if (on) { box.classList.add("spotlit"); box.querySelector(".tile-tools").textContent = T.unspotlight; }
    grid.classList.toggle("has-spotlight", on);
  }
  function spotlightCheck() { var g = $("tiles"); if (!g.querySelector(".spotlit")) g.classList.remove("has-spotlight"); }

  $("btn-fullscreen").addEventListener("click", function () {
    var stage = $("stage");
    if (document.fullscreenElement) document.exitFullscreen(); else if (stage.requestFullscreen) stage.requestFullscreen().catch(function () {});
  });

  function render(list) {
    var people = $("people"); people.innerHTML = "";
    var requestBars = [];
    var waiting = $("waiting-list"); if (waiting) waiting.innerHTML = "";
    var declined = $("declined-list"); if (declined) declined.innerHTML = "";
    var n = 0, arrived = false, nDeclined = 0, here = {};
    list.forEach(function (p) {
      here[p.id] = true;
      names[p.id] = p.name;
      var label = p.name + " · " + (T[p.role] || p.role) + (p.connected ? "" : " · " + T.reconnecting);
      var tile = $("tile-" + p.id);
      if (p.connected) delete away[p.id]; else away[p.id] = true;
      if (tile) {
        tile.classList.toggle("reconnecting", !p.connected); tile.querySelector("figcaption").textContent = p.name;
        paintTile(tile, live.lastQuality && live.lastQuality.subs[p.id]);
      }
      if (p.state === "waiting") {
        n++;
        if (!seenWaiting[p.id]) { seenWaiting[p.id] = Date.now(); arrived = true; }
        if (!waiting) return;
        var since = new Date(seenWaiting[p.id]);
        var li = el("li", {"class": "waiting", "data-participant": p.id});
        still(p, li);
        var who = el("span", {"class": "who"});
        who.appendChild(el("strong", {}, p.name));
        who.appendChild(el("span", {"class": "hint"}, " · " + (T[p.role] || p.role) + " · " + since.toTimeString().slice(0, 5)));
        li.appendChild(who);
        li.appendChild(el("button", {"class": "button primary admit", type: "button", onclick: function () { live.send({type: "admit", participant: p.id}); }}, T.admit));
        li.appendChild(el("button", {"class": "button secondary decline", type: "button", onclick: function () {
          var reason = prompt(T.reason, ""); if (reason === null) return;
          live.send({type: "decline", participant: p.id, reason: reason});
        }}, T.decline));
        waiting.appendChild(li);
        return;
      }
      if (p.state === "declined") {
        if (!declined) return;
        nDeclined++;
        var dl = el("li", {"class": "waiting declined", "data-participant": p.id});
        still(p, dl);
        var dwho = el("span", {"class": "who"});
        dwho.appendChild(el("strong", {}, p.name));
        dwho.appendChild(el("span", {"class": "hint"}, " · " + (p.reason ? fmt(T.declined_because, {reason: p.reason}) : T.declined_no_reason)));
        dl.appendChild(dwho);
        dl.appendChild(el("button", {"class": "button primary readmit", type: "button", onclick: function () { live.send({type: "readmit", participant: p.id}); }}, T.readmit));
        declined.appendChild(dl);
        return;
      }
      delete seenWaiting[p.id];
      delete previews[p.id];  // in the call now: the video is there, the still goes
      var row = el("li", {"data-participant": p.id, "class": p.connected ? "" : "reconnecting"}, label + " ");
      if (isStaff && p.id !== config.participant) {
        var req = function (kind, value, text) {
          return el("button", {"class": "button small", type: "button", "data-request": kind, onclick: function () {
            live.send({type: "request", kind: kind, to: p.id, value: value});
            if (kind === "torch") pendingTorch.last = value;
          }}, text);
        };
        var tools = el("span", {"class": "tools"});
        if (p.role === "applicant") {
          // The requests to the phone sit under the video (#requests) where the answers
          // appear; without that bar (older layout) they stay on the participant's row.
          var bar = $("requests") ? el("span", {"class": "tools", "data-participant": p.id}) : tools;
          if ($("requests")) bar.appendChild(el("span", {"class": "hint"}, p.name + ": "));
          bar.appendChild(req("rear_camera", null, T.rear_camera));
          bar.appendChild(req("front_camera", null, T.front_camera));
          bar.appendChild(req("torch", true, T.torch_on));
          bar.appendChild(req("torch", false, T.torch_off));
          bar.appendChild(req("zoom", 2, T.zoom));
          bar.appendChild(req("location", null, T.location));
          if (bar !== tools) requestBars.push(bar);
        }
        tools.appendChild(el("button", {"class": "button small danger", type: "button", "data-action": "remove", onclick: function () {
          if (confirm(fmt(T.confirm_remove, {name: p.name}))) live.send({type: "remove", participant: p.id});
        }}, T.remove));
        row.appendChild(tools);
      }
      people.appendChild(row);
    });
    if ($("requests")) { $("requests").innerHTML = ""; requestBars.forEach(function (b) { $("requests").appendChild(b); }); }
    if ($("waiting-count")) $("waiting-count").textContent = n;
    if ($("declined-box")) $("declined-box").hidden = nDeclined === 0;
    Object.keys(previews).forEach(function (id) { if (!here[id]) delete previews[id]; });
    if (arrived && isStaff) YK.beep();
    if (window.ykWorkbench) window.ykWorkbench.presence(list);
  }

  $("chat-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = $("chat-text").value.trim();
    if (text && live.send({type: "chat", text: text})) $("chat-text").value = "";
  });
  if ($("btn-mic")) $("btn-mic").addEventListener("click", function () {
    var a = stream && stream.getAudioTracks()[0]; if (!a) return;
    a.enabled = !a.enabled; this.textContent = a.enabled ? T.mute : T.unmute;
  });
  if ($("btn-end")) $("btn-end").addEventListener("click", function () { if (confirm(T.confirm_end)) live.send({type: "end"}); });

  if (receiveOnly) {
    live.connect();
  } else {
    navigator.mediaDevices.getUserMedia({video: {width: {ideal: 640}, height: {ideal: 480}}, audio: true})
      .then(function (s) { stream = s; $("self").srcObject = s; live.start(s); })
      .catch(function () { /* experts without a camera still watch */ })
      .finally(function () { live.connect(); });
  }
  live.watchQuality(1000);
  window.ykLive = live;
  window.ykFmt = fmt;
})();
