/* Pre-call test on the check page: 5 s of the phone's own media through the relay and
 * back (signaling/echo.py), a microphone level meter and a speaker tone. The figures are
 * the browser's getStats(), read with quality.js. docs/signaling.md, "Pre-call test". */
(function (global) {
  "use strict";
  var YK = global.YK, Q = global.YKQuality;

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  async function post(url, body, method) {
    var r = await fetch(url, {method: method || "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
      body: body === undefined ? undefined : JSON.stringify(body)});
    if (!r.ok) {
      var err = new Error("echo " + r.status);
      try { err.message = (await r.json()).message || err.message; } catch (e) { /* no body */ }
      throw err;
    }
    return r.status === 204 ? null : r.json();
  }

  function connected(pc, ms) {
    if (pc.connectionState === "connected") return Promise.resolve(true);
    return new Promise(function (resolve) {
      var t = setTimeout(function () { resolve(false); }, ms);
      pc.addEventListener("connectionstatechange", function () {
        if (pc.connectionState === "connected") { clearTimeout(t); resolve(true); }
        if (pc.connectionState === "failed") { clearTimeout(t); resolve(false); }
      });
    });
  }

  var sleep = function (ms) { return new Promise(function (r) { setTimeout(r, ms); }); };

  /* The loopback test: {rttMs, loss, kbpsSent, kbpsAvailable, kbpsBack, fpsBack, turn}. */
  async function echo(token, stream, seconds, onTick) {
    var base = "/api/v1/live/echo/" + encodeURIComponent(token);
    var start = await post(base, {});
    var url = base + "/" + encodeURIComponent(start.echo);
    var cfg = {iceServers: start.ice_servers, bundlePolicy: "max-bundle"};
    var up = new RTCPeerConnection(cfg), down = new RTCPeerConnection(cfg);
    try {
      stream.getTracks().forEach(function (t) { up.addTransceiver(t, {direction: "sendonly", streams: [stream]}); });
      await up.setLocalDescription(await up.createOffer());
      await YK.waitGathering(up);
      var sdp = await post(url + "/offer", {sdp: up.localDescription.sdp});
      await up.setRemoteDescription({type: "answer", sdp: sdp.answer});
      await down.setRemoteDescription({type: "offer", sdp: sdp.offer});
      await down.setLocalDescription(await down.createAnswer());
      await YK.waitGathering(down);
      await post(url + "/answer", {sdp: down.localDescription.sdp});
      if (!(await connected(up, 8000)) || !(await connected(down, 8000))) throw new Error("no_connection");
      var up0 = Q.read(await up.getStats()), down0 = Q.read(await down.getStats());
      var rtts = [], available = 0, upN = up0, downN = down0;
      for (var i = 0; i < seconds; i++) {
        await sleep(1000);
        upN = Q.read(await up.getStats()); downN = Q.read(await down.getStats());
        if (upN.rtt != null) rtts.push(upN.rtt * 1000);
        if (upN.available) available = Math.max(available, upN.available / 1000);
        if (onTick) onTick(i + 1);
      }
      var ms = upN.at - up0.at;
      var lost = downN.lost - down0.lost, got = downN.received - down0.received;
      rtts.sort(function (a, b) { return a - b; });
      return {
        rttMs: rtts.length ? rtts[Math.floor(rtts.length / 2)] : null,
        loss: Math.max(lost + got > 0 ? Math.max(0, lost) / (lost + got) : 0, upN.remoteLoss || 0),
        kbpsSent: (upN.outBytes - up0.outBytes) * 8 / ms,
        kbpsAvailable: available || null,
        kbpsBack: (downN.inBytes - down0.inBytes) * 8 / ms,
        fpsBack: (downN.framesDecoded - down0.framesDecoded) * 1000 / ms,
        turn: upN.localType === "relay"
      };
    } finally {
      up.close(); down.close();
      post(url, undefined, "DELETE").catch(function () { /* it ends by itself */ });
    }
  }

  /* Microphone level 0..1 (RMS of the AnalyserNode's waveform), reported every frame. */
  function micMeter(stream, onLevel) {
    var Ctx = global.AudioContext || global.webkitAudioContext;
    if (!Ctx || !stream.getAudioTracks().length) return function () {};
    var ctx = new Ctx(), source = ctx.createMediaStreamSource(stream), analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    var data = new Float32Array(analyser.fftSize), running = true;
    (function frame() {
      if (!running) return;
      analyser.getFloatTimeDomainData(data);
      var sum = 0;
      for (var i = 0; i < data.length; i++) sum += data[i] * data[i];
      onLevel(Math.min(1, Math.sqrt(sum / data.length) * 4));
      requestAnimationFrame(frame);
    })();
    if (ctx.state === "suspended") ctx.resume().catch(function () {});
    return function stop() { running = false; source.disconnect(); ctx.close().catch(function () {}); };
  }

  /* A 1 s, 660 Hz tone on the speaker. */
  function speakerTone() {
    var Ctx = global.AudioContext || global.webkitAudioContext;
    var ctx = new Ctx(), o = ctx.createOscillator(), g = ctx.createGain();
    o.frequency.value = 660; g.gain.value = 0.2;
    o.connect(g); g.connect(ctx.destination);
    o.start(); o.stop(ctx.currentTime + 1);
    return new Promise(function (resolve) { o.onended = function () { ctx.close(); resolve(); }; });
  }

  global.YKPrecall = {echo: echo, micMeter: micMeter, speakerTone: speakerTone};
})(window);
