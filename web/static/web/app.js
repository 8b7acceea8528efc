// Draw every chart the page embeds (plotly figure JSON in <script type="application/json" data-chart>).
(function () {
  "use strict";
  function draw() {
    document.querySelectorAll("script[data-chart]").forEach(function (el) {
      var target = document.getElementById(el.dataset.chart);
      if (!target || typeof Plotly === "undefined") return;
      var fig = JSON.parse(el.textContent);
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
