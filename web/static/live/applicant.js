/* Applicant page: device + network check, waiting room, call, in-call requests. */
(function () {
  "use strict";
  var YK = window.YK;
  var root = document.getElementById("live");
  var config = JSON.parse(root.dataset.config);
  var T = JSON.parse(root.dataset.text);
  var $ = function (id) { return document.getElementById(id); };
  var stream = null, facing = "user", names = {};

  function show(step) {
    ["check", "waiting", "call", "over"].forEach(function (s) { $(s).hidden = s !== step; });
  }
  function mark(id, ok) { var li = $(id); li.className = ok ? "ok" : "bad"; }

  function browserKind() {
    var ua = navigator.userAgent;
    if (!window.isSecureContext) return "insecure";
    if (/MicroMessenger/i.test(ua)) return "wechat";
    if (/iPhone|iPad|iPod/i.test(ua)) return "ios";
    if (/Android/i.test(ua)) return "android";
    return "desktop";
  }

  async function openCamera(deviceId) {
    var video = deviceId ? {deviceId: {exact: deviceId}} : {facingMode: facing, width: {ideal: 640}, height: {ideal: 480}};
    return navigator.mediaDevices.getUserMedia({video: video, audio: true});
  }

  /* Camera and microphone; when only the camera fails, the microphone alone (audio-only
     join: the inspector's tile says so). */
  var audioOnly = false;
  async function openMedia() {
    try {
      audioOnly = false;
      return await openCamera();
    } catch (err) {
      var s = await navigator.mediaDevices.getUserMedia({audio: true});
      audioOnly = true;
      return s;
    }
  }

  var stopMeter = null;
  function startMeter() {
    if (stopMeter) stopMeter();
    var bar = $("mic-level");
    stopMeter = window.YKPrecall.micMeter(stream, function (v) {
      bar.style.width = Math.round(v * 100) + "%";
      bar.dataset.level = v.toFixed(3);
      if (v > 0.02) $("mic-meter").dataset.heard = "1";
    });
  }

  function fmt(template, params) {
    return template.replace(/%\((\w+)\)s/g, function (_, k) { return params[k] != null ? params[k] : ""; });
  }

  /* The 5 s loopback through the relay: round trip, loss, bitrate, TURN or not. */
  var precallRunning = false;
  async function precall() {
    if (!stream || precallRunning) return;
    precallRunning = true;
    var box = $("precall");
    box.dataset.state = "running";
    $("btn-precall").disabled = true;
    $("precall-status").textContent = fmt(T.precall_running, {s: 5});
    try {
      var r = await window.YKPrecall.echo(config.token, stream, 5, function (i) {
        $("precall-status").textContent = fmt(T.precall_running, {s: 5 - i});
      });
      $("pc-rtt").textContent = r.rttMs != null ? Math.round(r.rttMs) + " ms" : "—";
      $("pc-loss").textContent = (r.loss * 100).toFixed(1) + " %";
      $("pc-bitrate").textContent = Math.round(r.kbpsSent) + " kbit/s" +
        (r.kbpsAvailable ? " (" + fmt(T.precall_estimate, {kbps: Math.round(r.kbpsAvailable)}) + ")" : "");
      $("pc-back").textContent = Math.round(r.kbpsBack) + " kbit/s" + (audioOnly ? "" : " · " + Math.round(r.fpsBack) + " fps");
      $("pc-turn").textContent = r.turn ? T.precall_turn_yes : T.precall_turn_no;
      var ok = r.loss < 0.08 && (r.rttMs == null || r.rttMs < 700) && r.kbpsBack > 0;
      $("precall-status").textContent = ok ? T.precall_ok : T.precall_weak;
      box.dataset.state = ok ? "ok" : "weak";
      mark("chk-net", ok);
      box.dataset.rtt = r.rttMs != null ? String(Math.round(r.rttMs)) : "";
      box.dataset.kbps = String(Math.round(r.kbpsSent));
    } catch (err) {
      $("precall-status").textContent = T.precall_failed + " " + (err && err.message || "");
      box.dataset.state = "failed";
      mark("chk-net", false);
    } finally {
      precallRunning = false;
      $("btn-precall").disabled = false;
    }
  }

  async function check() {
    $("perm-help").hidden = true;
    $("btn-retry").hidden = true;
    try {
      if (!navigator.mediaDevices) throw new Error("insecure");
      stream = await openMedia();
      $("preview").srcObject = stream;
      $("audio-only").hidden = !audioOnly;
      $("preview").hidden = audioOnly;
      startMeter();
      mark("chk-camera", stream.getVideoTracks().length > 0);
      mark("chk-mic", stream.getAudioTracks().length > 0);
      var devices = await navigator.mediaDevices.enumerateDevices();
      var sel = $("cam-select"); sel.innerHTML = "";
      devices.filter(function (d) { return d.kind === "videoinput"; }).forEach(function (d, i) {
        sel.appendChild(YK.el("option", {value: d.deviceId}, d.label || ("Camera " + (i + 1))));
      });
    } catch (err) {
      mark("chk-camera", false); mark("chk-mic", false);
      var kind = browserKind();
      $("perm-help").hidden = false;
      $("perm-help").querySelectorAll("[data-browser]").forEach(function (p) { p.hidden = p.dataset.browser !== kind; });
      $("btn-retry").hidden = false;
    }
    var t0 = performance.now();
    try {
      await fetch("/healthz", {cache: "no-store"});
      var ms = performance.now() - t0;
      mark("chk-net", ms < 1500);
      $("chk-net").dataset.ms = Math.round(ms);
    } catch (e) { mark("chk-net", false); }
    $("btn-join").disabled = !stream;
    if (stream) precall();
  }

  $("cam-select").addEventListener("change", async function () {
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = await openCamera(this.value);
    $("preview").srcObject = stream;
    audioOnly = false; $("audio-only").hidden = true; $("preview").hidden = false;
    startMeter();
  });
  $("btn-precall").addEventListener("click", precall);
  $("btn-speaker").addEventListener("click", async function () {
    this.disabled = true;
    await window.YKPrecall.speakerTone();
    this.disabled = false;
    $("speaker-note").hidden = false;
  });
  $("btn-retry").addEventListener("click", check);

  var lastError = "";
  var live = new YK.LiveSession(config, {
    welcome: function (msg) {
      $("banner").hidden = true;
      if (msg.observed) $("observed").hidden = false;
      if (msg.state === "admitted") enterCall();
    },
    state: function (state, reason) {
      if (state === "waiting" || state === "declined") waitRoom(state, reason);
      else if (state === "admitted") enterCall();
      else {
        $("over-title").textContent = T[state] || T.ended;
        $("over-reason").textContent = reason || "";
        if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
        show("over");
      }
    },
    reconnecting: function () { $("banner").hidden = false; },
    outage: function (on) { $("banner").hidden = !on; document.body.classList.toggle("outage", on); },
    quality: showQuality,
    audioOnly: function (on) { $("weak-audio-only").hidden = !on; },
    closed: function () { if (live.state !== "removed") { $("over-title").textContent = T.ended; $("over-reason").textContent = lastError; show("over"); } },
    // Server errors arrive already in the page's language (docs/signaling.md, "Errors").
    error: function (m) { lastError = m.message; $("chat-log").appendChild(YK.el("li", {"class": "bad"}, m.message)); },
    presence: function (list) { list.forEach(function (p) { names[p.id] = p.name; }); },
    remote: function (publisher, s) { YK.tile($("tiles"), publisher, names[publisher] || T.inspector, s, false); },
    remoteGone: function (publisher) { var t = $("tile-" + publisher); if (t) t.remove(); },
    chat: function (m) { $("chat-log").appendChild(YK.el("li", {}, m.name + ": " + m.text)); },
    request: onRequest
  });

  /* Waiting, or declined and still here (the inspector may let them in again). */
  function waitRoom(state, reason) {
    var declined = state === "declined";
    $("wait-title").textContent = declined ? T.declined : T.wait_title;
    $("wait-lead").textContent = declined ? T.declined_lead : T.wait_lead;
    $("wait-reason").textContent = reason || "";
    $("wait-reason").hidden = !(declined && reason);
    $("wait-spinner").hidden = declined;
    $("btn-wait-leave").hidden = !declined;
    $("waiting").dataset.state = state;
    if ($("wait-self").srcObject !== stream) $("wait-self").srcObject = stream;
    show("waiting");
    setTimeout(sendPreview, 800);  // the first still soon after arrival
  }

  /* A 160x120 JPEG still of the local camera preview, for the staff who may admit. The
     camera is only open after the person agreed to it; nothing is published before
     admission, and the server forwards the still without storing it. */
  var previewCanvas = document.createElement("canvas");
  previewCanvas.width = 160; previewCanvas.height = 120;
  function sendPreview() {
    if (live.state !== "waiting" && live.state !== "declined") return;
    var v = $("wait-self");
    if (!stream || !v.videoWidth) return;
    var ctx = previewCanvas.getContext("2d");
    // cover-crop to 4:3 so the face is not squashed
    var w = v.videoWidth, h = v.videoHeight, sw = Math.min(w, h * 4 / 3), sh = sw * 3 / 4;
    ctx.drawImage(v, (w - sw) / 2, (h - sh) / 2, sw, sh, 0, 0, 160, 120);
    var url = previewCanvas.toDataURL("image/jpeg", 0.6);
    if (url.length < 30000) live.send({type: "preview", image: url});
  }
  setInterval(sendPreview, 5000);

  var wasInCall = false;
  function enterCall() {
    wasInCall = true;
    show("call");
    $("self").srcObject = stream;
    $("call-audio-only").hidden = !audioOnly;
    $("self").hidden = audioOnly;
    $("btn-flip").hidden = audioOnly;
  }

  /* 一次一评: once the call is over, one tap rates the session (a second tap or the
     comment changes the same rating; the join token says who and which session). */
  var rated = null;
  function offerRating() {
    if (!wasInCall || config.role !== "applicant") return;
    $("rating-panel").hidden = false;
  }
  async function sendRating(level) {
    var body = {token: config.token, level: level};
    var comment = $("rating-comment").value.trim();
    if (comment) body.comment = comment;
    try {
      await window.yk.api("POST", "/api/v1/live/rating", body);
      rated = level;
      $("rating-panel").querySelectorAll(".rating-level").forEach(function (b) {
        b.setAttribute("aria-pressed", b.dataset.level === level ? "true" : "false");
      });
      $("rating-more").hidden = false;
      $("rating-status").textContent = $("rating-panel").dataset.thanks;
      $("rating-panel").dataset.sent = level;
      if (comment) $("rating-panel").dataset.comment = "sent";
    } catch (err) { $("rating-status").textContent = err.message; }
  }
  $("rating-panel").querySelectorAll(".rating-level").forEach(function (b) {
    b.addEventListener("click", function () { sendRating(b.dataset.level); });
  });
  $("rating-comment-send").addEventListener("click", function () { if (rated) sendRating(rated); });
  new MutationObserver(function () { if (!$("over").hidden) offerRating(); })
    .observe($("over"), {attributes: true, attributeFilter: ["hidden"]});

  $("btn-join").addEventListener("click", function () {
    $("btn-join").disabled = true;
    if (stopMeter) { stopMeter(); stopMeter = null; }
    live.start(stream);
    live.connect();
  });
  $("btn-leave").addEventListener("click", function () { live.leave(); $("over-title").textContent = T.ended; show("over"); });
  $("btn-wait-leave").addEventListener("click", function () {
    live.leave(); $("over-title").textContent = T.ended; $("over-reason").textContent = "";
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    show("over");
  });
  $("btn-mic").addEventListener("click", function () {
    var a = stream.getAudioTracks()[0]; if (!a) return;
    a.enabled = !a.enabled; this.textContent = a.enabled ? T.mute : T.unmute;
  });
  $("btn-flip").addEventListener("click", function () { switchCamera(facing === "user" ? "environment" : "user"); });
  $("chat-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = $("chat-text").value.trim();
    if (text && live.send({type: "chat", text: text})) $("chat-text").value = "";
  });

  async function switchCamera(mode) {
    var s = await navigator.mediaDevices.getUserMedia({video: {facingMode: {ideal: mode}, width: {ideal: 640}, height: {ideal: 480}}});
    facing = mode;
    await live.replaceVideo(s.getVideoTracks()[0]);
    $("self").srcObject = stream;
  }

  function ask(text) {
    return new Promise(function (resolve) {
      var d = $("ask");
      $("ask-text").textContent = text;
      var done = function (v) { return function () { d.close(); $("ask-yes").onclick = $("ask-no").onclick = null; resolve(v); }; };
      $("ask-yes").onclick = done(true); $("ask-no").onclick = done(false);
      if (d.showModal) d.showModal(); else d.setAttribute("open", "");
    });
  }

  async function onRequest(req) {
    var text = req.kind === "torch" ? (req.value === false ? T.torch_off : T.torch_on) : T[req.kind];
    var reply = function (ok, data) { live.send({type: "response", id: req.id, ok: ok, data: data || null}); };
    if (!(await ask(text))) return reply(false, {reason: "declined"});
    try {
      var track = stream.getVideoTracks()[0];
      var caps = track && track.getCapabilities ? track.getCapabilities() : {};
      if (req.kind === "rear_camera" || req.kind === "front_camera") {
        await switchCamera(req.kind === "rear_camera" ? "environment" : "user");
        reply(true);
      } else if (req.kind === "torch") {
        if (!caps.torch) return reply(false, {reason: "unsupported"});
        await track.applyConstraints({advanced: [{torch: req.value !== false}]});
        reply(true);
      } else if (req.kind === "zoom") {
        if (!caps.zoom) return reply(false, {reason: "unsupported"});
        var z = Math.min(Math.max(Number(req.value) || 2, caps.zoom.min), caps.zoom.max);
        await track.applyConstraints({advanced: [{zoom: z}]});
        reply(true, {zoom: z});
      } else if (req.kind === "location") {
        navigator.geolocation.getCurrentPosition(function (pos) {
          reply(true, {lat: pos.coords.latitude, lon: pos.coords.longitude, accuracy: pos.coords.accuracy});
        }, function (err) { reply(false, {reason: err.message}); }, {enableHighAccuracy: true, timeout: 15000});
      }
    } catch (err) { reply(false, {reason: String(err && err.message || err)}); }
  }

  /* The document panel: when the inspector issues a letter or a record and it is this
     applicant's turn, the signing page slides over the video (same origin, same session:
     no new login); the call, its audio and its video keep running underneath. */
  var docShown = null, docDone = {};
  function openDoc(letter) {
    docShown = letter.id;
    $("doc-title").textContent = letter.title;
    $("doc-note").textContent = T.doc_arrived;
    if ($("doc-frame").dataset.letter !== String(letter.id)) {
      $("doc-frame").dataset.letter = String(letter.id);
      $("doc-frame").src = "/letters/" + letter.id + "?embed=1";
    }
    $("doc-panel").classList.add("open");
    $("doc-panel").setAttribute("aria-hidden", "false");
    $("doc-open").hidden = true;
  }
  function closeDoc() {
    $("doc-panel").classList.remove("open");
    $("doc-panel").setAttribute("aria-hidden", "true");
    $("doc-open").hidden = !(docShown && !docDone[docShown]);
  }
  $("doc-back").addEventListener("click", closeDoc);
  $("doc-open").addEventListener("click", function () { $("doc-panel").classList.add("open"); $("doc-panel").setAttribute("aria-hidden", "false"); $("doc-open").hidden = true; });
  window.addEventListener("message", function (ev) {
    if (ev.origin !== location.origin || !ev.data || ev.data.type !== "yunkan:letter-signed") return;
    docDone[ev.data.letter] = true;
    $("doc-note").textContent = T.doc_done;
    setTimeout(function () { closeDoc(); $("doc-frame").src = "about:blank"; $("doc-frame").dataset.letter = ""; docShown = null; }, 1200);
  });
  async function watchLetters() {
    if (!config.case_id || !config.signed_in || live.state !== "admitted") return;
    try {
      var r = await fetch("/api/v1/cases/" + config.case_id + "/letters", {credentials: "same-origin"});
      if (!r.ok) return;
      var mine = (await r.json()).letters.filter(function (l) { return l.your_turn && !docDone[l.id]; }).pop();
      if (mine && docShown !== mine.id) openDoc(mine);
    } catch (e) { /* the next round */ }
  }
  setInterval(watchLetters, 3000);

  /* The level comes from media actually flowing (quality.js), not from the socket. */
  function showQuality(q) {
    var box = $("quality");
    box.dataset.level = q.level;
    box.dataset.rtt = q.rttMs != null ? String(Math.round(q.rttMs)) : "";
    box.dataset.kbpsIn = String(Math.round(q.kbpsIn));
    box.dataset.kbpsOut = String(Math.round(q.kbpsOut));
    box.dataset.loss = q.loss.toFixed(4);
    box.querySelector("b").textContent = window.YKQuality.describe(q, T);
  }
  live.watchQuality(1000);

  window.addEventListener("online", function () {
    if (live.state === "reconnecting") { clearTimeout(live.reconnectTimer); live.connect(); }
  });
  window.ykLive = live;
  check();
})();
