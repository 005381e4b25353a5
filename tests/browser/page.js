// Load a page in a real headless Chromium and print what it shows, as one JSON line:
// {"errors": [...], "texts": {selector: [innerText, ...]}, "counts": {selector: n}}.
// usage: node tests/browser/page.js URL WAIT_SELECTOR SELECTOR...
const chromium = require("@sparticuz/chromium").default;
const puppeteer = require("puppeteer-core");

(async () => {
  const [url, waitFor, ...selectors] = process.argv.slice(2);
  const browser = await puppeteer.launch({ args: chromium.args, executablePath: await chromium.executablePath(), headless: true });
  const errors = [];
  try {
    const page = await browser.newPage();
    // JavaScript errors and failed requests count as failures.
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });
    page.on("requestfailed", (r) => errors.push(`requestfailed: ${r.url()}`));
    await page.goto(url, { waitUntil: "networkidle0", timeout: 60000 });
    await page.waitForSelector(waitFor, { timeout: 30000 });
    const texts = {}, counts = {};
    for (const s of selectors) {
      texts[s] = await page.$$eval(s, (els) => els.map((e) => e.innerText));
      counts[s] = texts[s].length;
    }
    console.log(JSON.stringify({ errors, texts, counts }));
  } finally {
    await browser.close();
  }
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
