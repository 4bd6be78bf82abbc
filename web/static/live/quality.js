/* Call quality from the browser's own figures: RTCPeerConnection.getStats() on every
 * connection of the page, once a second. Levels and thresholds: docs/signaling.md,
 * "Quality and outages". Nothing here trusts a WebSocket ping alone: the level comes from
 * bytes and frames actually arriving. */
(function (global) {
  "use strict";

  var LIMITS = {
    silentMs: 3000,               // no byte from the relay on any connection: down
    good: {loss: 0.02, rttMs: 300},
    fair: {loss: 0.08, rttMs: 700},
    frozenMs: 2000,               // framesDecoded stood still while connected: frozen tile
    lateS: 1.0,                   // mean jitter-buffer delay over the last second: late tile
    audioOnlyMs: 3000             // audio flows, not one video frame yet: audio only
  };

  /* One connection's report as totals (counters are cumulative; deltas come later). */
  function read(report) {
    var r = {at: performance.now(), inBytes: 0, outBytes: 0, lost: 0, received: 0,
      audioBytesIn: 0, framesDecoded: 0, freezeCount: 0, freezeS: 0,
      jbDelay: 0, jbCount: 0, remoteLoss: null, rtt: null, pairBytesIn: 0,
      localType: null, available: null};
    var pairs = {}, locals = {}, selected = null;
    report.forEach(function (s) {
      if (s.type === "inbound-rtp") {
        r.inBytes += s.bytesReceived || 0;
        r.lost += Math.max(0, s.packetsLost || 0);
        r.received += s.packetsReceived || 0;
        if (s.kind === "video") {
          r.framesDecoded += s.framesDecoded || 0;
          r.freezeCount += s.freezeCount || 0;
          r.freezeS += s.totalFreezesDuration || 0;
          r.jbDelay += s.jitterBufferDelay || 0;
          r.jbCount += s.jitterBufferEmittedCount || 0;
        } else {
          r.audioBytesIn += s.bytesReceived || 0;
        }
      } else if (s.type === "outbound-rtp") {
        r.outBytes += s.bytesSent || 0;
      } else if (s.type === "remote-inbound-rtp") {
        // the relay's receiver reports on what we send: loss of the last report interval
        if (s.fractionLost != null) r.remoteLoss = Math.max(r.remoteLoss || 0, s.fractionLost);
      } else if (s.type === "transport" && s.selectedCandidatePairId) {
        selected = s.selectedCandidatePairId;
      } else if (s.type === "candidate-pair") {
        pairs[s.id] = s;
      } else if (s.type === "local-candidate") {
        locals[s.id] = s;
      }
    });
    var pair = selected ? pairs[selected] : null;
    if (!pair) Object.keys(pairs).forEach(function (id) { if (pairs[id].nominated && pairs[id].state === "succeeded") pair = pairs[id]; });
    if (pair) {
      r.pairBytesIn = pair.bytesReceived || 0;
      if (pair.currentRoundTripTime != null) r.rtt = pair.currentRoundTripTime;
      if (pair.availableOutgoingBitrate != null) r.available = pair.availableOutgoingBitrate;
      var local = locals[pair.localCandidateId];
      if (local) r.localType = local.candidateType;
    }
    return r;
  }

  function kbps(bytes, ms) { return ms > 0 ? Math.max(0, bytes) * 8 / ms : 0; }

  /* Per connection: the previous totals and when bytes / frames last moved. */
  function Track(pc, now) {
    this.pc = pc; this.prev = null; this.since = now;
    this.heardAt = now;           // a new connection gets the silence limit to come up
    this.frameAt = null; this.audioAt = null; this.hadFrames = false;
  }

  Track.prototype.update = function (cur, now) {
    var p = this.prev, f = {kbpsIn: 0, kbpsOut: 0, lossIn: 0, fps: 0, lateS: 0};
    if (p) {
      var ms = cur.at - p.at;
      if (cur.pairBytesIn > p.pairBytesIn || cur.inBytes > p.inBytes) this.heardAt = now;
      if (cur.framesDecoded > p.framesDecoded) { this.frameAt = now; this.hadFrames = true; }
      if (cur.audioBytesIn > p.audioBytesIn) this.audioAt = now;
      f.kbpsIn = kbps(cur.inBytes - p.inBytes, ms);
      f.kbpsOut = kbps(cur.outBytes - p.outBytes, ms);
      var dl = cur.lost - p.lost, dr = cur.received - p.received;
      f.lossIn = dl > 0 && dl + dr > 0 ? dl / (dl + dr) : 0;
      f.fps = ms > 0 ? Math.max(0, cur.framesDecoded - p.framesDecoded) * 1000 / ms : 0;
      var dc = cur.jbCount - p.jbCount;
      f.lateS = dc > 0 ? (cur.jbDelay - p.jbDelay) / dc : 0;
    }
    this.prev = cur;
    // "Claims to be up": it was connected (frames came) and has not failed or closed; a
    // short "disconnected" of ICE on a loaded link is still a frozen picture.
    var state = this.pc.connectionState;
    var up = state === "connected" || state === "disconnected";
    f.frozenMs = up && this.hadFrames && this.frameAt != null ? now - this.frameAt : 0;
    // Chrome lists a video inbound-rtp only once video packets came: audio flowing and not
    // one frame since the connection opened is a publisher without a camera.
    f.audioOnly = !this.hadFrames && this.audioAt != null &&
      now - this.audioAt < LIMITS.audioOnlyMs && now - this.since > LIMITS.audioOnlyMs;
    f.freezeCount = cur.freezeCount; f.freezeS = cur.freezeS;
    f.rttMs = cur.rtt != null ? cur.rtt * 1000 : null;
    f.remoteLoss = cur.remoteLoss; f.localType = cur.localType; f.available = cur.available;
    f.heardAt = this.heardAt;
    return f;
  };

  /* The page's level from every connection's figures and the session's own signals. */
  function level(q, outage) {
    if (outage) return "down";
    if (q.heardAt == null) return "unknown";                 // no connection yet
    if (q.now - q.heardAt >= LIMITS.silentMs) return "down";
    if (q.ice === "disconnected" || q.ice === "failed") return "down";
    var rtt = q.rttMs || 0;
    if (q.loss >= LIMITS.fair.loss || rtt >= LIMITS.fair.rttMs || q.frozen) return "poor";
    if (q.loss >= LIMITS.good.loss || rtt >= LIMITS.good.rttMs) return "fair";
    return "good";
  }

  /* Sample every connection of a LiveSession: {level, rttMs, loss, kbpsIn, kbpsOut, subs}. */
  async function sample(live, tracks) {
    var now = performance.now();
    var q = {now: now, heardAt: null, upHeardAt: null, anyHeardAt: null, rttMs: null, loss: 0, kbpsIn: 0, kbpsOut: 0, subs: {},
      frozen: false, ice: null, relayOnly: false};
    var pcs = [];
    if (live.publishPc) pcs.push(["", live.publishPc]);
    Object.keys(live.subs).forEach(function (p) { pcs.push([p, live.subs[p]]); });
    var keep = {};
    for (var i = 0; i < pcs.length; i++) {
      var key = pcs[i][0], pc = pcs[i][1];
      if (pc.connectionState === "closed") continue;
      keep[key] = true;
      var t = tracks[key];
      if (!t || t.pc !== pc) t = tracks[key] = new Track(pc, now);
      var f;
      try { f = t.update(read(await pc.getStats()), now); } catch (e) { continue; }
      // The relay reports on our upstream every second (RTCP), whoever else is there: when
      // we publish, that is the measure of *our* link; a remote publisher's silence is
      // theirs (their tile says so). Receive-only pages have only the remote streams.
      if (key === "") q.upHeardAt = f.heardAt;
      q.anyHeardAt = q.anyHeardAt == null ? f.heardAt : Math.max(q.anyHeardAt, f.heardAt);
      if (f.rttMs != null && (key === "" || q.rttMs == null)) q.rttMs = f.rttMs;
      q.kbpsIn += f.kbpsIn;
      q.kbpsOut += f.kbpsOut;
      q.loss = Math.max(q.loss, f.lossIn, f.remoteLoss || 0);
      if (key === "") { q.ice = pc.iceConnectionState; q.relayOnly = f.localType === "relay"; q.available = f.available; }
      else {
        f.frozen = f.frozenMs >= LIMITS.frozenMs;
        f.late = !f.frozen && f.lateS >= LIMITS.lateS;
        if (f.frozen) q.frozen = true;
        q.subs[key] = f;
      }
    }
    Object.keys(tracks).forEach(function (k) { if (!keep[k]) delete tracks[k]; });
    q.heardAt = q.upHeardAt != null ? q.upHeardAt : q.anyHeardAt;
    return q;
  }

  /* "良好 · 12 ms · ↑ 480 ↓ 510 kbit/s · 丢包 0.4 %" from the page's words. */
  function describe(q, T) {
    var parts = [T[q.level] || q.level];
    if (q.level !== "down" && q.level !== "unknown") {
      // no-break spaces: a figure never wraps away from its unit on a phone
      if (q.rttMs != null) parts.push(Math.round(q.rttMs) + "\u00a0ms");
      parts.push("↑\u00a0" + Math.round(q.kbpsOut) + " ↓\u00a0" + Math.round(q.kbpsIn) + "\u00a0kbit/s");
      parts.push((T.loss || "loss") + "\u00a0" + (q.loss * 100).toFixed(1) + "\u00a0%");
    }
    return parts.join(" · ");
  }

  global.YKQuality = {LIMITS: LIMITS, read: read, sample: sample, level: level, describe: describe};
})(window);
