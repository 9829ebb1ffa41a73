// First render of one page in Debian's Chromium for bench/pages.py: `node bench/render.js URL
// COOKIE_NAME COOKIE_VALUE LOADS`. Each load is a fresh browser context (cold cache, as a first
// visit), the session cookie set; prints one JSON line per load with the navigation timing
// (responseStart, domContentLoaded, load) and first-contentful-paint, in ms from navigation start.
"use strict";

const path = require("path");
const { chromium } = require(path.join(__dirname, "..", "tests", "browser", "node_modules", "playwright-core"));

const ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

(async () => {
  const [url, name, value, loadsArg] = process.argv.slice(2);
  const loads = Number(loadsArg || 10);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: ARGS,
  });
  try {
    for (let i = 0; i < loads; i++) {
      const context = await browser.newContext();
      if (name) await context.addCookies([{ name, value, url }]);
      const page = await context.newPage();
      const resp = await page.goto(url, { waitUntil: "load" });
      const t = await page.evaluate(() => new Promise((resolve) => {
        const read = () => {
          const nav = performance.getEntriesByType("navigation")[0];
          const fcp = performance.getEntriesByName("first-contentful-paint")[0];
          return { status: 0, response_start: nav.responseStart, dom_content_loaded: nav.domContentLoadedEventEnd,
                   load: nav.loadEventEnd, fcp: fcp ? fcp.startTime : null, transfer: nav.transferSize };
        };
        // first-contentful-paint is recorded shortly after the paint; give it a frame or two.
        requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => resolve(read()), 50)));
      }));
      t.status = resp ? resp.status() : 0;
      t.url = page.url();
      process.stdout.write(JSON.stringify(t) + "\n");
      await context.close();
    }
  } finally {
    await browser.close();
  }
})().catch((e) => { process.stderr.write(String(e.stack || e) + "\n"); process.exit(1); });
