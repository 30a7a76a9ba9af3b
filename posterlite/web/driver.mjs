// Drives Debian's headless Chromium for posterlite/browser.py through playwright-core
// (no browser download: the executable is given). Reads one JSON request on stdin,
// writes one JSON answer on stdout; never throws past main() so Python always gets JSON.
//
// request: {executable, args: [...], device: "Pixel 7", base: "http://127.0.0.1:PORT/",
//           timeout_ms, jobs: [{kind: "bench", throttle, job: {...}, init_script?}
//                             | {kind: "page", throttle, poster, screenshot, init_script?}
//                             | {kind: "inspect", throttle, pages: [{path, poster?, probe_csp?}]}]}
// answer:  {ok, chromium, playwright, device: {...}, results: [{ok, ..., error}]}
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { chromium, devices } = require("playwright-core");
const playwrightVersion = require("playwright-core/package.json").version;

function firstLine(error) {
  const text = String((error && error.message) || error || "unknown error").trim();
  return text.split("\n")[0];
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

// A fresh phone-sized context: device metrics, touch, mobile UA (Chrome version of the
// browser actually running, so the UA does not claim another engine), CPU throttling.
async function phonePage(browser, request, spec) {
  const device = { ...devices[request.device] };
  const version = browser.version();
  device.userAgent = device.userAgent.replace(/Chrome\/[\d.]+/, `Chrome/${version}`);
  const context = await browser.newContext(device);
  // A verification aid run before any page script (e.g. no_relaxed_simd.js); never in a page.
  if (spec.init_script) await context.addInitScript({ path: spec.init_script });
  if (spec.kind === "inspect") await context.addInitScript(collectViolations);
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${firstLine(error)}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text().split("\n")[0]}`);
  });
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  const cdp = await context.newCDPSession(page);
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: spec.throttle });
  page.setDefaultTimeout(request.timeout_ms);
  return { context, page, problems, device };
}

async function benchJob(browser, request, spec) {
  const { context, page, problems } = await phonePage(browser, request, spec);
  try {
    await page.goto(new URL("bench.html", request.base).href, { waitUntil: "load" });
    await page.waitForFunction(() => typeof window.plPixels === "function");
    const fn = spec.fn || "plBench";
    const result = await page.evaluate(([name, job]) => window[name](job), [fn, spec.job]);
    return { ok: true, throttle: spec.throttle, problems, ...result };
  } catch (error) {
    return { ok: false, throttle: spec.throttle, error: firstLine(error), problems };
  } finally {
    await context.close();
  }
}

// The user page as a person meets it: a first visit (fills the HTTP cache), then a second
// visit timed from navigation to "ready", a poster chosen through the file input, timed
// until the genres are on screen, and a screenshot.
async function pageJob(browser, request, spec) {
  const { context, page, problems } = await phonePage(browser, request, spec);
  const url = new URL("index.html", request.base).href;
  try {
    await page.goto(url, { waitUntil: "load" });
    await page.waitForSelector("body[data-state=ready], body[data-state=error]");
    const visits = [];
    for (let visit = 0; visit < (spec.visits || 2); visit++) {
      if (visit > 0) {
        await page.goto(url, { waitUntil: "load" });
        await page.waitForSelector("body[data-state=ready], body[data-state=error]");
      }
      const state = await page.getAttribute("body", "data-state");
      if (state === "error") {
        const message = await page.textContent("#status");
        return { ok: false, error: firstLine(message), problems };
      }
      const readyMs = await page.evaluate(() => window.plTimes.ready);
      const times = await page.evaluate(() => window.plTimes);
      const start = Date.now();
      await page.setInputFiles("#file", spec.poster);
      await page.waitForSelector("body[data-state=shown], body[data-state=error]");
      const wallMs = Date.now() - start;
      const shown = await page.evaluate(() => window.plLast);
      visits.push({ ready_ms: readyMs, times, choose_to_genres_wall_ms: wallMs, ...shown });
    }
    if (spec.screenshot) await page.screenshot({ path: spec.screenshot, fullPage: true });
    const runtime = await page.evaluate(() => window.plRuntime || null);
    return { ok: true, throttle: spec.throttle, visits, runtime, problems };
  } catch (error) {
    return { ok: false, throttle: spec.throttle, error: firstLine(error), problems };
  } finally {
    await context.close();
  }
}

// What pages show and did, for the hostile-input tests (tests/test_browser.py): open each
// page, wait until it is ready (or shows an error), choose its poster if it is ready, with
// probe_csp try inline script in the page (the page's CSP must refuse it), and read back: the state, the text of every element that shows model-supplied text, any
// element or attribute the page never makes (markup that got parsed), window.plPwned (set
// by a payload that ran), CSP violations and requests to other origins.
function collectViolations() {
  window.plViolations = [];
  document.addEventListener("securitypolicyviolation", (e) => {
    window.plViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`);
  });
}

function readPage() {
  const text = (id) => document.getElementById(id)?.textContent ?? null;
  // Tags index.html has, and inside each element that shows model text, the only tags
  // app.js builds there: anything else is markup that got parsed.
  const body = new Set(["H1", "P", "DIV", "LABEL", "INPUT", "SPAN", "IMG", "TABLE", "TBODY", "TR", "TD", "FOOTER", "SCRIPT"]);
  const head = new Set(["META", "TITLE", "LINK", "SCRIPT"]);
  const holders = { "#scores": ["TBODY", "TR", "TD", "DIV"], "#verdict": ["SPAN"], "#model": [], "#status": [], "#versions": [] };
  const odd = new Set();
  for (const node of document.querySelectorAll("*")) {
    const tag = node.tagName;
    let bad = !["HTML", "HEAD", "BODY"].includes(tag) && !(node.closest("head") ? head : body).has(tag);
    if (tag === "SCRIPT") bad ||= !node.src.startsWith(`${location.origin}/`) || node.text !== "";
    if (tag === "IMG") bad ||= node.id !== "preview";
    for (const attr of node.attributes) {
      if (attr.name.startsWith("on") || /javascript:/i.test(attr.value)) bad = true;
    }
    if (bad) odd.add(node);
  }
  for (const [holder, tags] of Object.entries(holders)) {
    for (const node of document.querySelectorAll(`${holder} *`)) if (!tags.includes(node.tagName)) odd.add(node);
  }
  return {
    state: document.body.dataset.state,
    texts: { model: text("model"), status: text("status"), verdict: text("verdict"), versions: text("versions") },
    genres: Array.from(document.querySelectorAll("#scores td.genre"), (td) => td.textContent),
    verdict_labels: Array.from(document.querySelectorAll("#verdict .label"), (s) => s.textContent),
    unexpected: Array.from(odd, (node) => node.outerHTML.slice(0, 200)),
    pwned: window.plPwned === undefined ? null : String(window.plPwned),
    violations: window.plViolations || [],
    runtime: window.plRuntime || null,
  };
}

async function inspectOne(page, request, item, problems, foreign) {
  const seen = { problems: problems.length, foreign: foreign.length };
  await page.goto(new URL(item.path, request.base).href, { waitUntil: "load" });
  await page.waitForSelector("body[data-state=ready], body[data-state=error]");
  if (item.poster && (await page.getAttribute("body", "data-state")) === "ready") {
    await page.setInputFiles("#file", item.poster);
    await page.waitForSelector("body[data-state=shown], body[data-state=error]");
  }
  const shown = await page.evaluate(readPage);
  let probe = null;
  if (item.probe_csp) {
    // Script run from DevTools is exempt from CSP; the markup and script element it
    // makes are the page's own and are not.
    probe = await page.evaluate(async () => {
      document.body.insertAdjacentHTML("beforeend", '<img src="probe-missing.png" onerror="window.plPwned=\'attribute\'">');
      const script = document.createElement("script");
      script.textContent = "window.plPwned = 'inline script';";
      document.body.append(script);
      await new Promise((resolve) => setTimeout(resolve, 500));
      return { pwned: window.plPwned === undefined ? null : String(window.plPwned), violations: window.plViolations.slice() };
    });
  }
  return {
    path: item.path,
    ...shown,
    probe,
    foreign_requests: foreign.slice(seen.foreign),
    problems: problems.slice(seen.problems),
  };
}

// spec.pages: [{path, poster?, probe_csp?}], visited one after another in one phone context.
async function inspectJob(browser, request, spec) {
  const { context, page, problems } = await phonePage(browser, request, spec);
  const origin = new URL(request.base).origin;
  const foreign = [];
  page.on("request", (r) => {
    const url = r.url();
    if (!url.startsWith(`${origin}/`) && !url.startsWith("blob:") && !url.startsWith("data:")) foreign.push(url);
  });
  try {
    const pages = [];
    for (const item of spec.pages) pages.push(await inspectOne(page, request, item, problems, foreign));
    return { ok: true, throttle: spec.throttle, pages, problems };
  } catch (error) {
    return { ok: false, throttle: spec.throttle, error: firstLine(error), problems };
  } finally {
    await context.close();
  }
}

async function main() {
  const request = await readStdin();
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: request.executable,
      headless: true,
      args: request.args,
      timeout: request.timeout_ms,
    });
  } catch (error) {
    return { ok: false, error: `cannot start Chromium (${request.executable}): ${firstLine(error)}` };
  }
  try {
    const results = [];
    for (const spec of request.jobs) {
      const run = { page: pageJob, inspect: inspectJob }[spec.kind] || benchJob;
      results.push(await run(browser, request, spec));
    }
    const device = devices[request.device];
    return {
      ok: true,
      chromium: browser.version(),
      playwright: playwrightVersion,
      device: {
        name: request.device,
        viewport: device.viewport,
        device_scale_factor: device.deviceScaleFactor,
        is_mobile: device.isMobile,
        has_touch: device.hasTouch,
        user_agent: device.userAgent.replace(/Chrome\/[\d.]+/, `Chrome/${browser.version()}`),
      },
      results,
    };
  } finally {
    await browser.close();
  }
}

main()
  .then((answer) => process.stdout.write(JSON.stringify(answer) + "\n"))
  .catch((error) => {
    process.stdout.write(JSON.stringify({ ok: false, error: firstLine(error) }) + "\n");
  });
