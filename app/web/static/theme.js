// Loaded in <head>, before the first paint, so a stored theme never flashes the other one.
// No stored choice: the page follows prefers-color-scheme. The toggle stores an explicit choice.
(function () {
  "use strict";
  var KEY = "chat-orchestrator.theme";
  var root = document.documentElement;
  var dark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value === "light" || value === "dark" ? value : null;
    } catch (error) {
      return null;
    }
  }

  function effective() {
    return root.dataset.theme || (dark && dark.matches ? "dark" : "light");
  }

  function label(button) {
    var next = effective() === "dark" ? "light" : "dark";
    button.setAttribute("aria-label", "Switch to the " + next + " theme");
    button.title = "Switch to the " + next + " theme";
    button.setAttribute("aria-pressed", String(effective() === "dark"));
  }

  function followSystem() {
    root.dataset.systemTheme = dark && dark.matches ? "dark" : "light";
  }

  var choice = stored();
  if (choice) root.dataset.theme = choice;
  followSystem();
  if (dark && dark.addEventListener) dark.addEventListener("change", followSystem);

  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    label(button);
    button.addEventListener("click", function () {
      var next = effective() === "dark" ? "light" : "dark";
      root.dataset.theme = next;
      try {
        window.localStorage.setItem(KEY, next);
      } catch (error) {
        // Storage refused: the choice lasts for this page only.
      }
      label(button);
    });
    if (dark && dark.addEventListener) {
      dark.addEventListener("change", function () { label(button); });
    }
  });
})();
