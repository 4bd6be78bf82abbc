// Live booking views: the applicant's queue ticket and the staff day view.
// Both listen to Server-Sent Events (EventSource reconnects by itself on a flaky link).
"use strict";
(function () {
  const ticket = document.getElementById("ticket");
  if (ticket) {
    const position = ticket.querySelector(".position");
    const eta = ticket.querySelector(".eta");
    const join = document.getElementById("join-video");
    let wasWaiting = false;
    const source = new EventSource(ticket.dataset.events);
    source.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (data.status === "waiting") {
        wasWaiting = true;
        position.textContent = position.dataset.waiting.replace("{n}", data.position);
        eta.textContent = eta.dataset.template.replace("{n}", data.eta_minutes);
      } else {
        position.textContent = data.status === "serving" ? position.dataset.served : position.dataset.left;
        eta.textContent = "";
        source.close();
        if (data.join_url) {
          // Stay on the origin this page came from (the API's link uses the public URL).
          const link = new URL(data.join_url, window.location.href);
          join.href = link.pathname + link.search;
          join.parentElement.hidden = false;
          // Called while waiting on this page: go in, as a waiting room would. A page
          // loaded after the call only shows the button, so leaving the call and coming
          // back here does not throw the applicant straight back in.
          if (wasWaiting) window.location.assign(join.href);
        }
      }
    };
  }
  const live = document.getElementById("staff-live");
  if (live) {
    let pending = null;
    const refresh = async () => {
      // Someone choosing an officer in a row's select: do not yank it from under them.
      const focused = document.activeElement;
      if (focused && focused.tagName === "SELECT" && live.contains(focused)) {
        pending = setTimeout(refresh, 2000);
        return;
      }
      pending = null;
      const response = await fetch(live.dataset.partial, { credentials: "same-origin" });
      if (response.ok) live.innerHTML = await response.text();
    };
    const source = new EventSource(live.dataset.events);
    source.onmessage = (event) => {
      if (JSON.parse(event.data).type === "hello") return;
      if (!pending) pending = setTimeout(refresh, 300); // coalesce bursts of updates
    };
  }
})();
