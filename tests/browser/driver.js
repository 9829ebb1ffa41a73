// Drives Debian's Chromium for tests/browser/test_setup_page.py: one browser for the whole test,
// commands as JSON lines on stdin, answers as JSON lines on stdout.
//
//   in:  {"id": 1, "op": "goto", "ctx": "admin", "url": "http://127.0.0.1:1234/"}
//   out: {"id": 1, "ok": true, "value": {...}}   or   {"id": 1, "ok": false, "error": "..."}
//
// Commands run concurrently (each line starts its own task), so the test can start a
// `waitFor` on the page, then make the peer act, then read the answer: the time between is what
// a user sees. The test keeps the assertions; this file only does what the browser does.
//
// Each named context is a browser context with its own cookies and one page (a person at
// their own browser). `playwright.launch` gives the browser a fresh temporary profile
// (--user-data-dir) that it removes on close.
"use strict";

const fs = require("fs");
const readline = require("readline");
const { chromium } = require("playwright-core");

// headless: true below adds --headless.
const ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

let browser;
const contexts = new Map(); // name → { context, page }

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function page(name) {
  const c = contexts.get(name);
  if (!c) throw new Error(`no context ${name}`);
  return c.page;
}

// The main document's answer of a navigation: status, URL, the headers a test looks at.
function answer(resp, p) {
  return {
    status: resp ? resp.status() : null,
    url: p.url(),
    retry_after: resp ? resp.headers()["retry-after"] || null : null,
  };
}

const ops = {
  async context(m) {
    if (contexts.has(m.ctx)) await contexts.get(m.ctx).context.close();
    const context = await browser.newContext({
      viewport: m.viewport || { width: 1280, height: 800 },
      // Only for the axe run: the pages' CSP (script-src 'self') blocks the inline script
      // that page.addScriptTag({path}) makes of axe.min.js. Every other context keeps the CSP,
      // so the flow and the screenshots see the pages as a browser enforces them.
      bypassCSP: !!m.bypassCSP,
    });
    const p = await context.newPage();
    p.setDefaultTimeout(m.timeout_ms || 10000);
    const errors = [];
    p.on("pageerror", (e) => errors.push(String(e)));
    p.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
    contexts.set(m.ctx, { context, page: p, errors });
    return {};
  },

  async close(m) {
    const c = contexts.get(m.ctx);
    if (c) await c.context.close();
    contexts.delete(m.ctx);
    return {};
  },

  // Console errors and uncaught exceptions of a context's page since the last call (a CSP
  // violation shows here).
  async errors(m) {
    const c = contexts.get(m.ctx);
    const out = c.errors.splice(0);
    return { errors: out };
  },

  async viewport(m) {
    await page(m.ctx).setViewportSize(m.viewport);
    return {};
  },

  async goto(m) {
    const p = page(m.ctx);
    // "load", not "networkidle": the live pages keep their event stream open.
    const resp = await p.goto(m.url, { waitUntil: "load" });
    return answer(resp, p);
  },

  async fill(m) {
    const p = page(m.ctx);
    for (const [sel, value] of Object.entries(m.fields)) {
      const el = p.locator(sel);
      if ((await el.evaluate((e) => e.tagName)) === "SELECT") await el.selectOption(value);
      else await el.fill(value);
    }
    return {};
  },

  // Clicks and waits for the navigation the click causes (a form that posts and redirects).
  async submit(m) {
    const p = page(m.ctx);
    const [resp] = await Promise.all([
      p.waitForNavigation({ waitUntil: "load" }),
      p.locator(m.selector).click(),
    ]);
    // The first answer of a redirect chain is the POST's; the test wants the final page's
    // status unless the POST itself was answered with a page (a refusal).
    return answer(resp, p);
  },

  async click(m) {
    await page(m.ctx).locator(m.selector).click();
    return {};
  },

  async text(m) {
    const p = page(m.ctx);
    const els = p.locator(m.selector);
    return { texts: (await els.allInnerTexts()).map((t) => t.trim()) };
  },

  async count(m) {
    return { count: await page(m.ctx).locator(m.selector).count() };
  },

  async html(m) {
    return { html: await page(m.ctx).content() };
  },

  // Waits until the expression (a function body's return value) is truthy in the page; the
  // answer carries how long that took, measured here from when the wait began.
  async waitFor(m) {
    const p = page(m.ctx);
    const t0 = Date.now();
    const h = await p.waitForFunction(new Function("arg", m.expression), m.arg ?? null, {
      timeout: m.timeout_ms || 5000,
      polling: "raf", // every frame: the wait ends within ~16 ms of the change
    });
    return { value: await h.jsonValue(), waited_ms: Date.now() - t0 };
  },

  async screenshot(m) {
    fs.mkdirSync(require("path").dirname(m.path), { recursive: true });
    await page(m.ctx).screenshot({ path: m.path, fullPage: true });
    return { path: m.path };
  },

  // axe-core on the current page. Every violation comes back; the test decides what fails.
  async axe(m) {
    const p = page(m.ctx);
    const has = await p.evaluate(() => typeof window.axe !== "undefined");
    if (!has) await p.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
    const result = await p.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return r.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
      }));
    });
    return { violations: result };
  },
};

async function handle(line) {
  let m;
  try {
    m = JSON.parse(line);
  } catch (e) {
    send({ id: null, ok: false, error: `bad command: ${line}` });
    return;
  }
  try {
    const fn = ops[m.op];
    if (!fn) throw new Error(`unknown op ${m.op}`);
    send({ id: m.id, ok: true, value: await fn(m) });
  } catch (e) {
    send({ id: m.id, ok: false, error: String(e && e.stack ? e.stack : e) });
  }
}

(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ARGS,
  });
  send({ id: 0, ok: true, value: { ready: true, version: browser.version() } });
  const rl = readline.createInterface({ input: process.stdin });
  const pending = new Set();
  rl.on("line", (line) => {
    if (!line.trim()) return;
    const t = handle(line).finally(() => pending.delete(t));
    pending.add(t);
  });
  rl.on("close", async () => {
    await Promise.allSettled([...pending]);
    await browser.close();
    process.exit(0);
  });
})().catch((e) => {
  send({ id: 0, ok: false, error: String(e && e.stack ? e.stack : e) });
  process.exit(1);
});
