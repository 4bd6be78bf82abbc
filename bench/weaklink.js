// The browser half of bench/weaklink.py: a publisher with the y4m fake camera (whose
// frames carry a counter, see counter_band() in weaklink.py) and a receiver that reads the
// counter from the decoded picture. Injected into a blank page served from 127.0.0.1.
window.wl = (() => {
  const COLS = 12, ROWS = 2, BITS = 24, BAND = 8; // band = top 1/BAND of the height
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const state = { local: [], frames: [], audio: [], sent: [], pc: null, errors: [] };
  let stream = null;
  let sentBase = 0; // bytes sent by publish connections already replaced (republish)

  function check(n) {
    return (n ^ (n >> 8) ^ 0xa5) & 0xff;
  }

  function read(video) {
    const w = video.videoWidth, h = video.videoHeight;
    if (!w || !h) return null;
    const band = Math.floor(h / BAND);
    if (canvas.width !== w || canvas.height !== band) {
      canvas.width = w;
      canvas.height = band;
    }
    ctx.drawImage(video, 0, 0, w, h, 0, 0, w, h);
    const data = ctx.getImageData(0, 0, w, band).data;
    let value = 0;
    for (let bit = 0; bit < BITS; bit++) {
      const row = Math.floor(bit / COLS), col = bit % COLS;
      const x = Math.floor(((col + 0.5) * w) / COLS);
      const y = Math.floor(((row + 0.5) * band) / ROWS);
      const i = (y * w + x) * 4;
      const luma = 0.299 * data[i] + 0.587 * data[i + 1] + 0.114 * data[i + 2];
      if (luma > 128) value |= 1 << (BITS - 1 - bit);
    }
    const n = value >>> 8;
    return (value & 0xff) === check(n) ? n : null;
  }

  function watch(video, into) {
    const step = () => {
      const n = read(video);
      if (n !== null) into.push([Date.now(), n]);
      video.requestVideoFrameCallback(step);
    };
    video.requestVideoFrameCallback(step);
  }

  function videoElement(stream) {
    const video = document.createElement("video");
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.srcObject = stream;
    document.body.appendChild(video);
    video.play().catch((e) => state.errors.push(String(e)));
    return video;
  }

  async function gathered(pc) {
    await pc.setLocalDescription();
    if (pc.iceGatheringState !== "complete") {
      await new Promise((resolve) => {
        pc.addEventListener("icegatheringstatechange", () => {
          if (pc.iceGatheringState === "complete") resolve();
        });
        setTimeout(resolve, 5000);
      });
    }
    return pc.localDescription.sdp;
  }

  async function sentStats() {
    const pc = state.pc;
    let bytes = sentBase, available = null, width = null, fps = null, limit = null;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "outbound-rtp") {
        bytes += (r.bytesSent || 0) + (r.headerBytesSent || 0);
        if (r.kind === "video") {
          width = r.frameWidth ?? width;
          fps = r.framesPerSecond ?? fps;
          limit = r.qualityLimitationReason ?? limit;
        }
      }
      if (r.type === "candidate-pair" && r.nominated && r.availableOutgoingBitrate)
        available = r.availableOutgoingBitrate;
    });
    state.sent.push([Date.now(), bytes, available, width, fps, limit]);
  }

  async function audioStats(pc, last) {
    let packets = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "audio") packets += r.packetsReceived || 0;
    });
    if (packets > last) state.audio.push(Date.now());
    return packets;
  }

  return {
    state,
    async publish(width, height, fps) {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width, height, frameRate: fps },
      });
      watch(videoElement(stream), state.local);
      const pc = (state.pc = new RTCPeerConnection({ iceServers: [] }));
      for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
      setInterval(() => sentStats().catch((e) => state.errors.push(String(e))), 500);
      return await gathered(pc);
    },
    // What the phone page does when its WebSocket comes back after an outage (live.js
    // publish()): close the publish connection and offer a new one with the same tracks.
    async republish() {
      const old = state.pc;
      const last = state.sent.length ? state.sent[state.sent.length - 1][1] : 0;
      const pc = new RTCPeerConnection({ iceServers: [] });
      for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
      sentBase = last;
      state.pc = pc;
      old.close();
      return await gathered(pc);
    },
    // The direct call's equivalent: an ICE restart offer on the same connection.
    async restart() {
      state.pc.restartIce();
      return await gathered(state.pc);
    },
    async reoffer(sdp) {
      await state.pc.setRemoteDescription({ type: "offer", sdp });
      return await gathered(state.pc);
    },
    async accept(sdp) {
      await state.pc.setRemoteDescription({ type: "answer", sdp });
    },
    async receive(sdp) {
      const pc = (state.pc = new RTCPeerConnection({ iceServers: [] }));
      const stream = new MediaStream();
      pc.addEventListener("track", (e) => {
        stream.addTrack(e.track);
        if (e.track.kind === "video") watch(videoElement(stream), state.frames);
      });
      await pc.setRemoteDescription({ type: "offer", sdp });
      let last = 0;
      setInterval(async () => {
        last = await audioStats(pc, last);
      }, 50);
      return await gathered(pc);
    },
    connection() {
      return state.pc ? state.pc.connectionState : null;
    },
    take(name) {
      const out = state[name];
      state[name] = [];
      return out;
    },
  };
})();
