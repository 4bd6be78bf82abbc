/* Yunkan live session: the browser side of docs/signaling.md. No build step, no framework.
 *
 * One WebSocket; one upstream RTCPeerConnection that we offer; one downstream connection per
 * remote publisher that the server offers. The server is aiortc (half-trickle), so every
 * SDP is sent only after ICE gathering completed. On any drop we rejoin with the session id
 * and NEW peer connections (aiortc has no ICE restart). */
(function (global) {
  "use strict";

  function waitGathering(pc, timeoutMs) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (resolve) {
      var done = function () { pc.removeEventListener("icegatheringstatechange", check); resolve(); };
      var check = function () { if (pc.iceGatheringState === "complete") done(); };
      pc.addEventListener("icegatheringstatechange", check);
      setTimeout(done, timeoutMs || 3000);
    });
  }

  function LiveSession(config, handlers) {
    this.config = config;             // {token, ws, role, participant, name}
    this.h = handlers || {};
    this.ws = null;
    this.session = sessionStorage.getItem("yk-session:" + config.token) || null;
    this.iceServers = [];
    this.state = "connecting";
    this.localStream = null;
    this.publishPc = null;
    this.subs = {};                   // publisher -> RTCPeerConnection
    this.final = false;               // ended / removed: never reconnect (declined waits on)
    this.attempt = 0;
    this.reconnectTimer = null;
    this.heardAt = 0;                 // last message from the server (pong or any other)
    this.pingedAt = 0;
    this.heartbeat = null;
    this.outages = {};                // reason -> true: "heartbeat", "offline", "ice", "socket", "media"
    this.tracks = {};                 // YKQuality per-connection state
    this.level = "unknown";
    var self = this;
    global.addEventListener("offline", function () { self.setOutage("offline", true); });
    global.addEventListener("online", function () { self.setOutage("offline", false); });
  }

  /* Heartbeat (docs/signaling.md, "Quality and outages"): a ping every second; no answer
     for HEARTBEAT_SILENT_MS is an outage shown at once; after HEARTBEAT_GIVE_UP_MS the
     socket is given up and we rejoin (the server has dropped it after 3 s anyway). */
  var HEARTBEAT_MS = 1000, HEARTBEAT_SILENT_MS = 2000, HEARTBEAT_GIVE_UP_MS = 8000;
  var MEDIA_GIVE_UP_MS = 10000;       // no byte on any connection: new connections

  LiveSession.prototype.setOutage = function (reason, on) {
    var was = this.inOutage();
    if (on) this.outages[reason] = true; else delete this.outages[reason];
    var now = this.inOutage();
    if (was !== now) this.emit("outage", now, Object.keys(this.outages));
  };
  LiveSession.prototype.inOutage = function () { return Object.keys(this.outages).length > 0; };

  LiveSession.prototype.beat = function (ws) {
    if (this.ws !== ws || ws.readyState !== WebSocket.OPEN) return;
    var now = performance.now();
    if (now - this.pingedAt >= HEARTBEAT_MS) { this.pingedAt = now; ws.send('{"type":"ping"}'); }
    var silent = now - this.heardAt;
    if (silent > HEARTBEAT_SILENT_MS) this.setOutage("heartbeat", true);
    if (silent > HEARTBEAT_GIVE_UP_MS) this.abandon();
  };

  /* Give up a socket that no longer answers: its close may take a minute to arrive. */
  LiveSession.prototype.abandon = function () {
    var ws = this.ws;
    this.ws = null;
    clearInterval(this.heartbeat);
    if (ws) { try { ws.close(); } catch (e) { /* already closing */ } }
    this.closeMedia();
    if (!this.final) this.scheduleReconnect();
  };

  LiveSession.prototype.emit = function (name) {
    var fn = this.h[name];
    if (fn) fn.apply(null, Array.prototype.slice.call(arguments, 1));
  };

  LiveSession.prototype.wsUrl = function () {
    var u = this.config.ws;
    if (/^wss?:/.test(u)) return u;
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + u;
  };

  LiveSession.prototype.connect = function () {
    var self = this;
    var ws = this.ws = new WebSocket(this.wsUrl());
    clearInterval(this.heartbeat);
    ws.onopen = function () {
      self.heardAt = performance.now();
      clearInterval(self.heartbeat);
      self.heartbeat = setInterval(function () { self.beat(ws); }, 250);
      var join = {type: "join", token: self.config.token};
      if (self.session) join.session = self.session;
      ws.send(JSON.stringify(join));
    };
    ws.onmessage = function (ev) {
      if (self.ws !== ws) return;
      self.heardAt = performance.now();
      self.setOutage("heartbeat", false);
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      self.handle(msg).catch(function (err) { console.error("live:", msg.type, err); });
    };
    ws.onclose = function (ev) {
      if (self.ws !== ws) return;
      clearInterval(self.heartbeat);
      self.closeMedia();
      if (self.final || ev.code === 4401 || ev.code === 4403 || ev.code >= 4410 && ev.code <= 4413) {
        self.final = true;
        self.emit("closed", ev.code, ev.reason);
        return;
      }
      if (ev.code === 4409) return;     // wrong node: handle() already moved us
      self.scheduleReconnect();
    };
  };

  LiveSession.prototype.scheduleReconnect = function () {
    var self = this;
    this.state = "reconnecting";
    this.setOutage("socket", true);
    this.emit("reconnecting", this.attempt);
    var delay = Math.min(1000 * Math.pow(1.6, this.attempt++), 5000);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(function () { self.connect(); }, delay);
  };

  LiveSession.prototype.send = function (msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  };

  LiveSession.prototype.handle = async function (msg) {
    switch (msg.type) {
      case "welcome":
        this.session = msg.session;
        sessionStorage.setItem("yk-session:" + this.config.token, msg.session);
        this.iceServers = msg.ice_servers || [];
        this.attempt = 0;
        this.setOutage("socket", false);
        this.emit("welcome", msg);
        break;
      case "waiting":
        this.state = "waiting"; this.emit("state", "waiting"); break;
      case "admitted":
        if (msg.ice_servers) this.iceServers = msg.ice_servers;  // fresh TURN credentials
        this.state = "admitted"; this.emit("state", "admitted");
        if (this.localStream) await this.publish();
        break;
      case "declined":                  // still connected: staff may re-admit
        this.state = "declined"; this.emit("state", "declined", msg.reason || ""); break;
      case "preview":                   // a waiting person's still (staff who may admit)
        this.emit("preview", msg); break;
      case "removed": case "ended":
        this.final = true; this.state = msg.type;
        sessionStorage.removeItem("yk-session:" + this.config.token);
        this.emit("state", msg.type, msg.reason || "");
        break;
      case "answer":
        if (this.publishPc) await this.publishPc.setRemoteDescription({type: "answer", sdp: msg.sdp});
        break;
      case "offer":
        if (msg.ice_servers) this.iceServers = msg.ice_servers;  // fresh TURN credentials
        await this.subscribe(msg.publisher, msg.sdp); break;
      case "unpublished":
        this.dropSub(msg.publisher); break;
      case "presence":
        this.emit("presence", msg.participants); break;
      case "chat":
        this.emit("chat", msg); break;
      case "request":
        this.emit("request", msg); break;
      case "response":
        this.emit("response", msg); break;
      case "pong": break;               // heardAt is already updated
      case "audio_only":                // the relay carries only audio to us for now
        this.emit("audioOnly", !!msg.on, msg.reason || ""); break;
      case "error":
        if (msg.code === "wrong_node" && msg.details && msg.details.url) {
          this.config.ws = msg.details.url.replace(/^http/, "ws").replace(/\/$/, "") + "/live/ws";
          this.connect();
          return;
        }
        this.emit("error", msg);
        break;
    }
  };

  LiveSession.prototype.newPc = function () {
    return new RTCPeerConnection({iceServers: this.iceServers, bundlePolicy: "max-bundle"});
  };

  LiveSession.prototype.publish = async function () {
    if (this.publishPc) { this.publishPc.close(); }
    var pc = this.publishPc = this.newPc();
    var self = this;
    this.localStream.getTracks().forEach(function (t) {
      pc.addTransceiver(t, {direction: "sendonly", streams: [self.localStream]});
    });
    pc.oniceconnectionstatechange = function () {
      if (pc !== self.publishPc) return;
      var s = pc.iceConnectionState;
      if (s === "disconnected" || s === "failed") self.setOutage("ice", true);
      else if (s === "connected" || s === "completed") self.setOutage("ice", false);
    };
    pc.onconnectionstatechange = function () {
      self.emit("upstream", pc.connectionState);
      if (pc === self.publishPc && pc.connectionState === "failed" && !self.final && self.ws) {
        self.ws.close();                // rejoin with new connections
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathering(pc);
    this.send({type: "offer", sdp: pc.localDescription.sdp});
  };

  LiveSession.prototype.start = function (stream) {
    this.localStream = stream;
    if (this.state === "admitted") return this.publish();
  };

  /* Swap the camera (rear/front) without renegotiating: replaceTrack on the sender. */
  LiveSession.prototype.replaceVideo = async function (track) {
    var old = this.localStream.getVideoTracks()[0];
    if (old) { this.localStream.removeTrack(old); old.stop(); }
    this.localStream.addTrack(track);
    if (!this.publishPc) return;
    var sender = this.publishPc.getSenders().find(function (s) { return s.track === null || (s.track && s.track.kind === "video"); });
    if (sender) await sender.replaceTrack(track);
  };

  LiveSession.prototype.subscribe = async function (publisher, sdp) {
    this.dropSub(publisher);
    var pc = this.subs[publisher] = this.newPc();
    var self = this;
    var stream = new MediaStream();
    pc.ontrack = function (ev) {
      stream.addTrack(ev.track);
      self.emit("remote", publisher, stream);
    };
    await pc.setRemoteDescription({type: "offer", sdp: sdp});
    await pc.setLocalDescription(await pc.createAnswer());
    await waitGathering(pc);
    this.send({type: "answer", publisher: publisher, sdp: pc.localDescription.sdp});
  };

  LiveSession.prototype.dropSub = function (publisher) {
    var pc = this.subs[publisher];
    if (pc) { pc.close(); delete this.subs[publisher]; this.emit("remoteGone", publisher); }
  };

  LiveSession.prototype.closeMedia = function () {
    if (this.publishPc) { this.publishPc.close(); this.publishPc = null; }
    this.setOutage("ice", false);         // the next connection reports its own state
    this.setOutage("media", false);
    for (var p in this.subs) this.dropSub(p);
  };

  LiveSession.prototype.leave = function () {
    this.final = true;
    clearInterval(this.heartbeat);
    this.send({type: "leave"});
    this.closeMedia();
    if (this.ws) this.ws.close();
  };

  /* The call's quality now (quality.js): level from media actually flowing, figures from
     getStats(). A silence of every connection is an outage like a lost heartbeat. */
  LiveSession.prototype.quality = async function () {
    var q = await global.YKQuality.sample(this, this.tracks);
    // Only our own upstream's silence is our outage (see quality.js): a receive-only page
    // whose one publisher went quiet must not rejoin in a loop.
    var silent = q.upHeardAt != null ? q.now - q.upHeardAt : 0;
    this.setOutage("media", silent >= global.YKQuality.LIMITS.silentMs);
    if (silent >= MEDIA_GIVE_UP_MS && this.ws && !this.final) this.abandon();
    q.level = global.YKQuality.level(q, this.inOutage());
    this.level = q.level;
    this.lastQuality = q;
    this.emit("quality", q);
    return q;
  };

  LiveSession.prototype.watchQuality = function (ms) {
    var self = this, busy = false;
    return setInterval(function () {
      if (busy) return;
      busy = true;
      self.quality().catch(function (e) { console.error("quality:", e); }).finally(function () { busy = false; });
    }, ms || 1000);
  };

  /* Beep for arrivals (console) without an audio file. */
  function beep() {
    try {
      var ctx = beep.ctx || (beep.ctx = new (global.AudioContext || global.webkitAudioContext)());
      var o = ctx.createOscillator(), g = ctx.createGain();
      o.frequency.value = 880; g.gain.value = 0.15;
      o.connect(g); g.connect(ctx.destination);
      o.start(); o.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no audio: the list still shows the arrival */ }
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === "class") e.className = attrs[k]; else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), attrs[k]); else e.setAttribute(k, attrs[k]);
    }
    if (text != null) e.textContent = text;
    return e;
  }

  function tile(container, id, label, stream, muted) {
    var box = document.getElementById("tile-" + id);
    if (!box) {
      box = el("figure", {"class": "tile", id: "tile-" + id, "data-participant": id});
      var v = el("video", {autoplay: "", playsinline: ""});
      v.muted = !!muted;
      box.appendChild(v);
      box.appendChild(el("figcaption", {}, label));
      container.appendChild(box);
    }
    var video = box.querySelector("video");
    if (video.srcObject !== stream) video.srcObject = stream;
    video.play().catch(function () {});
    return box;
  }

  global.YK = {LiveSession: LiveSession, beep: beep, el: el, tile: tile, waitGathering: waitGathering};
})(window);
