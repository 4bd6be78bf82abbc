/* Inspector (and expert/observer) console: waiting list with sound, tiles, requests, chat. */
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

  var live = new YK.LiveSession(config, {
    welcome: function () { $("banner").hidden = true; $("status").textContent = T.live; },
    state: function (state) { if (state !== "admitted" && state !== "waiting") { $("status").textContent = T.ended; } },
    reconnecting: function () { $("banner").hidden = false; $("status").textContent = T.reconnecting; },
    closed: function () { $("status").textContent = T.ended; },
    presence: render,
    remote: function (publisher, s) { YK.tile($("tiles"), publisher, names[publisher] || publisher, s, false); },
    remoteGone: function (publisher) { var t = $("tile-" + publisher); if (t) t.remove(); },
    chat: function (m) { $("chat-log").appendChild(el("li", {}, m.name + ": " + m.text)); },
    response: function (m) {
      var data = m.data && m.data.lat != null ? " (" + m.data.lat.toFixed(5) + ", " + m.data.lon.toFixed(5) + " ±" + Math.round(m.data.accuracy) + " m)" : "";
      $("answers").appendChild(el("li", {"class": m.ok ? "ok" : "bad"}, (names[m.from] || m.from) + " · " + (T[m.kind] || m.kind) + " · " + (m.ok ? T.accepted : T.refused) + data + (!m.ok && m.data && m.data.reason ? " (" + (T["reason_" + m.data.reason] || m.data.reason) + ")" : "")));
    },
    error: function (m) { $("answers").appendChild(el("li", {"class": "bad"}, m.code + ": " + m.message)); }
  });

  function render(list) {
    var people = $("people"); people.innerHTML = "";
    var waiting = $("waiting-list"); if (waiting) waiting.innerHTML = "";
    var n = 0, arrived = false;
    list.forEach(function (p) {
      names[p.id] = p.name;
      var label = p.name + " · " + (T[p.role] || p.role) + (p.connected ? "" : " · " + T.reconnecting);
      var tile = $("tile-" + p.id);
      if (tile) tile.classList.toggle("reconnecting", !p.connected);
      if (p.state === "waiting") {
        n++;
        if (!seenWaiting[p.id]) { seenWaiting[p.id] = true; arrived = true; }
        if (!waiting) return;
        var li = el("li", {"class": "waiting", "data-participant": p.id}, label + " ");
        li.appendChild(el("button", {"class": "button primary admit", type: "button", onclick: function () { live.send({type: "admit", participant: p.id}); }}, T.admit));
        li.appendChild(el("button", {"class": "button secondary decline", type: "button", onclick: function () {
          var reason = prompt(T.reason, ""); if (reason === null) return;
          live.send({type: "decline", participant: p.id, reason: reason});
        }}, T.decline));
        waiting.appendChild(li);
        return;
      }
      delete seenWaiting[p.id];
      var row = el("li", {"data-participant": p.id, "class": p.connected ? "" : "reconnecting"}, label + " ");
      if (isStaff && p.id !== config.participant) {
        var req = function (kind, value, text) {
          return el("button", {"class": "button small", type: "button", "data-request": kind, onclick: function () {
            live.send({type: "request", kind: kind, to: p.id, value: value});
          }}, text);
        };
        var tools = el("span", {"class": "tools"});
        tools.appendChild(req("rear_camera", null, T.rear_camera));
        tools.appendChild(req("front_camera", null, T.front_camera));
        tools.appendChild(req("torch", true, T.torch_on));
        tools.appendChild(req("torch", false, T.torch_off));
        tools.appendChild(req("zoom", 2, T.zoom));
        tools.appendChild(req("location", null, T.location));
        tools.appendChild(el("button", {"class": "button small danger", type: "button", onclick: function () { live.send({type: "remove", participant: p.id}); }}, T.remove));
        row.appendChild(tools);
      }
      people.appendChild(row);
    });
    if ($("waiting-count")) $("waiting-count").textContent = n;
    if (arrived && isStaff) YK.beep();
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
  window.ykLive = live;
})();
