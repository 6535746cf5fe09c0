// The PMO dashboard in the browser: draws the charts from the figures the page carries, and
// keeps the page current: each event from the services (Server-Sent Events) re-reads the page
// and swaps its content in place, without a reload.
(function () {
  "use strict";
  window.pmoDashboard = { refreshes: 0, events: 0 };

  function drawCharts(root) {
    if (!window.Plotly) { return; }
    root.querySelectorAll("script[data-chart]").forEach(function (holder) {
      var target = document.getElementById(holder.dataset.chart);
      if (!target) { return; }
      var figure = JSON.parse(holder.textContent);
      window.Plotly.react(target, figure.data, figure.layout, { displaylogo: false, responsive: true });
      if (holder.dataset.chart === "bubble-chart") {
        target.on("plotly_click", function (event) {
          var id = event.points && event.points[0] && event.points[0].customdata;
          if (id) { window.location.href = "/projects/" + encodeURIComponent(id); }
        });
      }
    });
  }

  var pending = null;
  function refresh() {
    // One re-read for a burst of events.
    if (pending) { return; }
    pending = setTimeout(function () {
      pending = null;
      fetch(window.location.href, { headers: { "X-PMO-Live": "1" }, credentials: "same-origin" })
        .then(function (response) {
          if (response.redirected || !response.ok) { throw new Error("status " + response.status); }
          return response.text();
        })
        .then(function (html) {
          var next = new DOMParser().parseFromString(html, "text/html").getElementById("main");
          var main = document.getElementById("main");
          if (!next || !main) { return; }
          // Keep what the person is typing: pages with a form in use are not swapped.
          if (main.contains(document.activeElement) && document.activeElement.matches("input, textarea, select")) { return; }
          main.innerHTML = next.innerHTML;
          drawCharts(main);
          window.pmoDashboard.refreshes += 1;
        })
        .catch(function () { /* the next event tries again */ });
    }, 150);
  }

  function listen() {
    var status = document.getElementById("live-status");
    if (!status || !window.EventSource) { return; }
    var project = document.body.dataset.liveProject;
    var source = new EventSource("/events");
    source.addEventListener("ready", function () {
      status.textContent = "● live";
      status.classList.add("on");
      document.body.dataset.live = "ready";
    });
    source.addEventListener("pmo", function (message) {
      var event = JSON.parse(message.data);
      window.pmoDashboard.events += 1;
      var last = document.getElementById("last-event");
      if (last) {
        last.textContent = "Last event: " + event.type + (event.project_id ? " (" + event.project_id + ")" : "") +
          " at " + new Date().toLocaleTimeString();
      }
      if (!project || !event.project_id || event.project_id === project) { refresh(); }
    });
    source.onerror = function () {
      status.textContent = "● live: reconnecting";
      status.classList.remove("on");
      document.body.dataset.live = "lost";
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    if (document.body.dataset.signedIn === "yes") { listen(); }
  });
})();
