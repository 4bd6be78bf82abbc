// Signing page: read to the end, tick consent, sign with a finger, submit.
// Pointer events cover mouse, pen and touch alike; the canvas is scaled by devicePixelRatio
// so strokes stay sharp on phones. The server checks the image again (PNG, size, ink).
"use strict";
(function () {
  const root = document.getElementById("letter");
  const form = document.getElementById("sign-form");
  if (!root || !form) return;
  const letterId = root.dataset.letterId;
  const body = document.getElementById("letter-body");
  const consent = document.getElementById("consent");
  const hint = document.getElementById("scroll-hint");
  const wrap = document.getElementById("pad-wrap");
  const canvas = document.getElementById("pad");
  const clear = document.getElementById("pad-clear");
  const submit = document.getElementById("pad-submit");
  const error = document.getElementById("sign-error");
  const busy = document.getElementById("sign-busy");
  const messages = document.getElementById("sign-messages").dataset;
  const ctx = canvas.getContext("2d");
  let drawing = false;
  let last = null;
  let box = null; // bounding box of the ink, CSS pixels
  let length = 0; // total stroke length, CSS pixels

  function readToEnd() {
    return body.scrollTop + body.clientHeight >= body.scrollHeight - 8;
  }
  function unlockConsent() {
    if (readToEnd()) {
      consent.disabled = false;
      hint.hidden = true;
    }
  }
  body.addEventListener("scroll", unlockConsent, { passive: true });
  unlockConsent();

  function resize() {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.lineWidth = 3;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#111";
    reset();
  }
  function reset() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    box = null;
    length = 0;
    submit.disabled = true;
  }
  function point(event) {
    const rect = canvas.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }
  function grow(p) {
    box = box
      ? { l: Math.min(box.l, p.x), t: Math.min(box.t, p.y), r: Math.max(box.r, p.x), b: Math.max(box.b, p.y) }
      : { l: p.x, t: p.y, r: p.x, b: p.y };
  }
  function enough() {
    return box && box.r - box.l >= 40 && box.b - box.t >= 12 && length >= 80;
  }

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    drawing = true;
    last = point(event);
    grow(last);
    ctx.beginPath();
    ctx.arc(last.x, last.y, 1.5, 0, Math.PI * 2);
    ctx.fillStyle = "#111";
    ctx.fill();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) {
      const p = point(e);
      ctx.beginPath();
      ctx.moveTo(last.x, last.y);
      ctx.lineTo(p.x, p.y);
      ctx.stroke();
      length += Math.hypot(p.x - last.x, p.y - last.y);
      last = p;
      grow(p);
    }
    submit.disabled = !enough();
  });
  function stop() {
    drawing = false;
    submit.disabled = !enough();
  }
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  clear.addEventListener("click", reset);

  consent.addEventListener("change", () => {
    wrap.hidden = !consent.checked;
    if (consent.checked) {
      resize();
      wrap.scrollIntoView({ behavior: "smooth", block: "center" });
    }
  });
  window.addEventListener("resize", () => { if (!wrap.hidden && !box) resize(); });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (!enough()) {
      error.textContent = messages.tooSmall;
      error.hidden = false;
      return;
    }
    submit.disabled = true;
    clear.disabled = true;
    busy.hidden = false;
    try {
      const letter = await window.yk.api("POST", `/api/v1/letters/${letterId}/sign`, {
        signature: canvas.toDataURL("image/png"),
        consent: consent.checked,
      });
      if (window.parent !== window) {
        window.parent.postMessage({ type: "yunkan:letter-signed", letter: letter.id, status: letter.status }, location.origin);
      }
      window.location.reload();
    } catch (err) {
      error.textContent = err.message || messages.failed;
      error.hidden = false;
      submit.disabled = !enough();
      clear.disabled = false;
    } finally {
      busy.hidden = true;
    }
  });
})();
