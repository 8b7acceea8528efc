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
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
