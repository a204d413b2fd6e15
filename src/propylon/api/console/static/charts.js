// Configures Chart.js (vendored: chart.umd.min.js) for the usage page: two stacked bar
// charts from the JSON the server rendered into #chart-data. No drawing code of our own.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const options = (unit) => ({
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { position: "bottom" } },
    scales: {
      x: { stacked: true, ticks: { maxRotation: 0, autoSkip: true } },
      y: { stacked: true, beginAtZero: true, title: { display: true, text: unit } },
    },
  });
  new Chart(document.getElementById("tokens-chart"), {
    type: "bar",
    data: { labels: data.labels, datasets: data.tokens },
    options: options("tokens"),
  });
  new Chart(document.getElementById("cost-chart"), {
    type: "bar",
    data: { labels: data.labels, datasets: data.cost },
    options: options("USD"),
  });
})();
