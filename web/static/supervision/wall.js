// The live wall re-renders its list every few seconds (durations, people, network).
(function () {
  "use strict";
  const wall = document.getElementById("wall");
  if (!wall) return;
  const every = Number(wall.dataset.refresh || 5) * 1000;
  async function refresh() {
    try {
      const response = await fetch(wall.dataset.partial, { credentials: "same-origin" });
      if (response.ok) wall.innerHTML = await response.text();
    } catch (err) {
      // offline for a moment: the next refresh tries again
    }
    window.setTimeout(refresh, every);
  }
  window.setTimeout(refresh, every);
})();
