// Draw every chart the page embeds (plotly figure JSON in <script type="application/json" data-chart>).
(function () {
  "use strict";
  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  // On a phone the filter panel starts folded, so the page's figures are on the first screen.
  var panel = document.querySelector("details[data-filter-panel]");
  if (panel && window.matchMedia && window.matchMedia("(max-width: 640px)").matches) panel.open = false;
  function draw() {
    document.querySelectorAll("script[data-chart]").forEach(function (el) {
      var target = document.getElementById(el.dataset.chart);
      if (!target || typeof Plotly === "undefined") return;
      var fig = JSON.parse(el.textContent);
      if (dark) {  // follow the system's dark mode: transparent backgrounds, light text and grid
        var axis = { color: "#c9d0db", gridcolor: "#2f3745", zerolinecolor: "#2f3745" };
        fig.layout = Object.assign({}, fig.layout, {
          paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { color: "#e3e7ee" },
          xaxis: Object.assign({}, fig.layout.xaxis, axis), yaxis: Object.assign({}, fig.layout.yaxis, axis)
        });
      }
      Plotly.newPlot(target, fig.data, fig.layout, { responsive: true, displaylogo: false });
    });
  }
  // Filter pickers: one open at a time; a click elsewhere or Escape closes them.
  function closePickers(except) {
    document.querySelectorAll("details.pick[open]").forEach(function (d) { if (d !== except) d.open = false; });
  }
  document.addEventListener("click", function (e) { closePickers(e.target.closest ? e.target.closest("details.pick") : null); });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") closePickers(null); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
