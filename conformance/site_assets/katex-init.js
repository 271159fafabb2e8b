// Render the math that pymdownx.arithmatex (generic mode) marked: <span|div class="arithmatex">\(...\)</span>.
// KaTeX is shipped with the site (assets/katex/), no CDN. document$ is mkdocs-material's page-load observable.
(function () {
  function render(root) {
    root.querySelectorAll(".arithmatex").forEach(function (el) {
      var tex = el.textContent.trim();
      var display = tex.startsWith("\\[");
      tex = tex.replace(/^\\[\(\[]/, "").replace(/\\[\)\]]$/, "");
      katex.render(tex, el, { displayMode: display, throwOnError: false });
    });
  }
  if (typeof document$ !== "undefined") {
    document$.subscribe(function () { render(document.body); });
  } else {
    document.addEventListener("DOMContentLoaded", function () { render(document.body); });
  }
})();
