// authgate hosted pages: progressive enhancement only; every page works without this script.
(function () {
  "use strict";

  // Move focus to the error summary so screen readers announce it and keyboard users start there.
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }

  // 429: count down the wait and keep the form's submit buttons disabled until it is over.
  var waiting = document.querySelector("[data-retry-after]");
  if (waiting) {
    var left = parseInt(waiting.getAttribute("data-retry-after"), 10) || 0;
    var line = waiting.querySelector(".wait");
    var template = line ? line.textContent : "";
    var buttons = document.querySelectorAll("main form button[type=submit]");
    var setDisabled = function (value) {
      for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = value; }
    };
    if (left > 0) {
      setDisabled(true);
      var timer = window.setInterval(function () {
        left -= 1;
        if (line) { line.textContent = template.replace(/\d+/, String(Math.max(left, 0))); }
        if (left <= 0) { window.clearInterval(timer); setDisabled(false); }
      }, 1000);
    }
  }

  // Destructive admin actions ask first.
  document.addEventListener("submit", function (event) {
    var button = event.submitter || (event.target && event.target.querySelector("[data-confirm]"));
    var question = button && button.getAttribute && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });
})();
