// The rlspec documentation site in headless Chromium (Debian's package, launched by its path; playwright-core
// downloads no browser). Run by tests/site_browser/test_site_browser.py, which builds the site, serves it with
// `python -m http.server` and passes a JSON job on stdin:
//   {base, pages: [paths relative to the site], chromium, searches: [{query, expect}]}
// Checks, per page: it loads (HTTP 200) without console errors or uncaught exceptions; every arithmatex element was
// rendered by KaTeX (no .katex-error, no raw \( \[ $$ left in the visible text); every <img> loaded (naturalWidth > 0);
// every same-site link resolves (the target answers 200; its #fragment exists there). Then the search box finds
// each algorithm by its paper title. Prints a JSON report; exit 1 when anything failed.
"use strict";
const { chromium } = require("playwright-core");

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString("utf-8"));
}

async function main() {
  const job = await readStdin();
  const t0 = Date.now();
  const browser = await chromium.launch({ executablePath: job.chromium, headless: true, args: FLAGS });
  const context = await browser.newContext();
  const failures = [];
  const ids = new Map();        // page url (no hash) -> Set of element ids
  const links = [];             // [from page, absolute href]
  let nMath = 0, nImages = 0;
  const page = await context.newPage();
  let errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => errors.push(`exception: ${e.message}`));
  // ERR_ABORTED is a request cut off by the next navigation (favicon, search worker), not a load failure;
  // a missing file is reported as a console error ("Failed to load resource: 404")
  page.on("requestfailed", (r) => {
    const why = r.failure() ? r.failure().errorText : "";
    if (why !== "net::ERR_ABORTED") errors.push(`request failed: ${r.url()} (${why})`);
  });

  for (const rel of job.pages) {
    const url = new URL(rel, job.base).href;
    errors = [];
    let resp;
    try {
      resp = await page.goto(url, { waitUntil: "load", timeout: 30000 });
    } catch (e) {
      failures.push(`${rel}: did not load (${e.message.split("\n")[0]})`);
      continue;
    }
    if (!resp || resp.status() !== 200) failures.push(`${rel}: HTTP ${resp ? resp.status() : "none"}`);
    // KaTeX renders on mkdocs-material's document$ (after load): wait until every arithmatex element holds .katex
    try {
      await page.waitForFunction(() => Array.from(document.querySelectorAll(".arithmatex"))
        .every((el) => el.querySelector(".katex, .katex-error")), null, { timeout: 10000 });
    } catch (e) { /* reported below */ }
    const r = await page.evaluate(() => {
      const math = Array.from(document.querySelectorAll(".arithmatex"));
      const unrendered = math.filter((el) => !el.querySelector(".katex")).map((el) => el.textContent.slice(0, 60));
      const katexErrors = Array.from(document.querySelectorAll(".katex-error")).map((el) => el.textContent.slice(0, 60));
      const body = document.querySelector(".md-content") || document.body;
      const clone = body.cloneNode(true);
      clone.querySelectorAll("code, pre, script, style, .katex-mathml, annotation").forEach((el) => el.remove());
      const text = clone.textContent;
      const raw = ["\\(", "\\[", "$$"].filter((s) => text.includes(s));
      const imgs = Array.from(document.images);
      const broken = imgs.filter((im) => !(im.complete && im.naturalWidth > 0)).map((im) => im.getAttribute("src"));
      const hrefs = Array.from(document.querySelectorAll("a[href]")).map((a) => a.href);
      const idset = Array.from(document.querySelectorAll("[id]")).map((el) => el.id);
      return { nMath: math.length, unrendered, katexErrors, raw, nImg: imgs.length, broken, hrefs, idset };
    });
    nMath += r.nMath; nImages += r.nImg;
    ids.set(url.split("#")[0], new Set(r.idset));
    for (const h of r.hrefs) links.push([rel, h]);
    if (r.unrendered.length) failures.push(`${rel}: ${r.unrendered.length} math elements not rendered, e.g. ${r.unrendered[0]}`);
    if (r.katexErrors.length) failures.push(`${rel}: KaTeX errors: ${r.katexErrors.join(" | ")}`);
    if (r.raw.length) failures.push(`${rel}: raw TeX delimiters in the page text: ${r.raw.join(" ")}`);
    if (r.broken.length) failures.push(`${rel}: images that did not load: ${r.broken.join(", ")}`);
    for (const e of errors) failures.push(`${rel}: ${e}`);
  }

  // internal links: the target answers 200 and, for a #fragment, has that id
  const base = new URL(job.base);
  const status = new Map();
  let nLinks = 0;
  for (const [from, href] of links) {
    const u = new URL(href);
    if (u.origin !== base.origin) continue;
    nLinks += 1;
    const target = u.href.split("#")[0];
    if (!status.has(target)) {
      if (ids.has(target)) status.set(target, 200);
      else {
        const res = await context.request.get(target).catch(() => null);
        status.set(target, res ? res.status() : 0);
      }
    }
    if (status.get(target) !== 200) { failures.push(`${from}: link to ${u.pathname} answers ${status.get(target)}`); continue; }
    const frag = decodeURIComponent(u.hash.slice(1));
    if (frag && ids.has(target) && !ids.get(target).has(frag)) failures.push(`${from}: link to ${u.pathname}#${frag}: no such id`);
  }

  // search: type the paper title in mkdocs-material's search box; the algorithm's page must be among the results
  const found = [];
  for (const s of job.searches || []) {
    errors = [];
    await page.goto(new URL("index.html", job.base).href, { waitUntil: "load" });
    await page.locator("input.md-search__input").click();  // the desktop header shows the box; typing runs the query
    // lunr reads - + : ~ ^ * as query operators ("MiniMax-M1" would prohibit "M1"): a reader types them as spaces
    await page.keyboard.type(s.query.replace(/[-+:~^*]/g, " "));
    // results come from a web worker and follow the typing: wait until the expected page is among the first
    // MAX_RANK result pages (one .md-search-result__item per page, its sections nested inside)
    const MAX_RANK = 5;
    const pagesOf = () => Array.from(document.querySelectorAll(".md-search-result__item > a"))
      .map((a) => new URL(a.href).pathname);
    try {
      await page.waitForFunction(([want, n, f]) => eval(f)().slice(0, n).some((p) => p.endsWith(want)),
        [s.expect, MAX_RANK, `(${pagesOf})`], { timeout: 15000 });
      const hits = await page.evaluate((f) => eval(f)(), `(${pagesOf})`);
      found.push({ query: s.query, expect: s.expect, rank: hits.findIndex((h) => h.endsWith(s.expect)) + 1 });
    } catch (e) {
      const hits = await page.evaluate((f) => eval(f)(), `(${pagesOf})`).catch(() => []);
      failures.push(`search ${JSON.stringify(s.query)}: ${s.expect} not among the first ${MAX_RANK} results `
        + `(${hits.slice(0, MAX_RANK).join(", ") || "none"})`);
    }
    for (const e of errors) failures.push(`search page: ${e}`);
  }
  await browser.close();
  const report = { pages: job.pages.length, math: nMath, images: nImages, links: nLinks, searches: found,
    seconds: (Date.now() - t0) / 1000, failures };
  process.stdout.write(JSON.stringify(report, null, 1) + "\n");
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => { process.stderr.write(String(e && e.stack || e) + "\n"); process.exit(2); });
