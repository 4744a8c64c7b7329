// Renders /dashboard in headless Chromium and prints what a person would read off it, as JSON.
// Usage: node render.mjs <base-url> <admin-token> <screenshot.png>
import { createRequire } from "node:module";

const require = createRequire(new URL("../../../sdk/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const [base, token, shot] = process.argv.slice(2);
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ARGS });
const out = { foreign: [], consoleErrors: [] };
try {
  // 1. Without a token the page asks for one; a wrong token is refused in words, the right one opens it.
  const ctx1 = await browser.newContext();
  const p1 = await ctx1.newPage();
  await p1.goto(`${base}/dashboard`);
  await p1.waitForSelector("#login:not([hidden])", { timeout: 15000 });
  await p1.fill("#token", "wrong-token");
  await p1.click("#login button[type=submit]");
  await p1.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0, null, { timeout: 15000 });
  out.wrongTokenMessage = await p1.textContent("#login-error");
  await p1.fill("#token", token);
  await p1.click("#login button[type=submit]");
  await p1.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  out.loginFormOpens = await p1.isHidden("#login");
  await ctx1.close();

  // 2. The documented way in: the token in the URL fragment, which the page moves to sessionStorage.
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
  const page = await ctx.newPage();
  const statsRequests = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(base)) out.foreign.push(r.url());
    else if (r.url().includes("/v1/stats/")) statsRequests.push(r.url().slice(base.length));
  });
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => out.consoleErrors.push(String(e)));
  await page.goto(`${base}/dashboard#token=${encodeURIComponent(token)}`);
  await page.waitForSelector("body[data-ready='1'][data-live-ready='1']", { timeout: 20000 });
  out.url = page.url();
  out.tokenStored = await page.evaluate(() => sessionStorage.getItem("obsd.token") !== null);
  out.kpis = await page.$$eval("[data-kpi]", (els) => Object.fromEntries(els.map((e) => [e.dataset.kpi, e.textContent])));
  const rows = (sel) => page.$$eval(sel, (trs) => trs.map((tr) => ({
    key: tr.dataset.key, visitors: tr.querySelector("[data-col=visitors]")?.textContent,
    pageviews: tr.querySelector("[data-col=pageviews]")?.textContent, share: tr.querySelector("[data-col=share]")?.textContent,
  })));
  out.pages = await rows("#pages tbody tr[data-key]");
  out.referrers = await rows("#referrers tbody tr[data-key]");
  out.devices = {};
  for (const dim of ["device", "browser", "os"]) out.devices[dim] = await rows(`#devices table[data-dimension=${dim}] tr[data-key]`);
  out.vitals = await page.$$eval(".vital", (els) => els.map((e) => ({
    metric: e.dataset.metric, rating: e.dataset.rating, p75: Number(e.dataset.p75), text: e.querySelector(".p75").textContent,
    colour: getComputedStyle(e.querySelector(".p75")).color,
  })));
  out.errors = await page.$$eval("#errors tbody tr[data-key]", (trs) => trs.map((tr) => ({
    key: tr.dataset.key, message: tr.querySelector("summary").textContent,
    events: tr.querySelector("[data-col=events]").textContent, sessions: tr.querySelector("[data-col=sessions]").textContent,
  })));
  out.live = await page.$$eval("#live li[data-type]", (lis) => lis.map((li) => li.dataset.type));
  const svg = await page.$("#chart svg");
  out.chart = { buckets: Number(await svg.getAttribute("data-buckets")), max: Number(await svg.getAttribute("data-max")),
    ymax: await page.textContent("#chart text.ymax") };
  // Hover the highest point of the pageviews line and read the tooltip.
  const pts = (await page.getAttribute("#chart polyline.pageviews", "points")).split(" ").map((p) => p.split(",").map(Number));
  const top = pts.reduce((a, b) => (b[1] < a[1] ? b : a));
  const box = await svg.boundingBox();
  const vb = await svg.evaluate((s) => s.viewBox.baseVal.width);
  await page.mouse.move(box.x + (top[0] * box.width) / vb, box.y + box.height / 2);
  out.tooltip = await page.textContent("#chart .tip");
  // Switching the range to 7 days re-asks the API with daily buckets.
  await page.evaluate(() => { document.body.dataset.ready = "0"; });
  await page.click("#ranges button[data-since='7d']");
  await page.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  out.weekBuckets = Number(await page.getAttribute("#chart svg", "data-buckets"));
  out.weekUrl = page.url();
  await page.click("#ranges button[data-since='24h']");
  await page.waitForSelector("#chart svg[data-buckets='24']", { timeout: 20000 });
  // Visit tables, the funnel and release health as drawn.
  const visitRows = (sel) => page.$$eval(sel, (trs) => trs.map((tr) => ({ key: tr.dataset.key, filter: tr.dataset.filter,
    cells: Object.fromEntries([...tr.querySelectorAll("[data-col]")].map((td) => [td.dataset.col, td.textContent])) })));
  out.entry = await visitRows("#entry tbody tr[data-key]");
  out.sources = await visitRows("#sources tbody tr[data-key]");
  out.goals = await visitRows("#goals tbody tr[data-key]");
  out.funnel = await page.$$eval("#funnel .step", (els) => els.map((e) => ({ step: Number(e.dataset.step),
    visits: Number(e.dataset.visits), width: e.querySelector(".fbar").style.width })));
  out.errorColumns = await page.$$eval("#errors tbody tr[data-key]", (trs) => trs.map((tr) => ({
    protocols: tr.querySelector("[data-col=protocols]").textContent, releases: tr.querySelector("[data-col=releases]").textContent })));
  out.current = await page.textContent("[data-current]");
  // CSV: the button downloads the report the card shows, as a file.
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: 15000 }),
    page.click("button.csv[data-report='entry-pages']")]);
  const chunks = [];
  for await (const c of await download.createReadStream()) chunks.push(c);
  out.csv = { name: download.suggestedFilename(), text: Buffer.concat(chunks).toString("utf8") };
  // Tabbed cards: campaigns by campaign, then by medium (the header and the CSV follow the tab); countries.
  out.tabs = { campaign: await visitRows("#utm tbody tr[data-key]"), countries: await visitRows("#locations tbody tr[data-key]") };
  await page.evaluate(() => { document.body.dataset.ready = "0"; });
  await page.click(".tabs[data-tabs='utm'] button[data-by='utm_medium']");
  await page.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  out.tabs.medium = await visitRows("#utm tbody tr[data-key]");
  out.tabs.mediumLabel = await page.textContent("#utm th[data-label]");
  const [utmCsv] = await Promise.all([page.waitForEvent("download", { timeout: 15000 }),
    page.click("button.csv[data-report='utm']")]);
  const utmChunks = [];
  for await (const c of await utmCsv.createReadStream()) utmChunks.push(c);
  out.tabs.csv = Buffer.concat(utmChunks).toString("utf8");
  // Click a row: the whole page is filtered, the filter is in the address, and a chip shows it.
  await page.evaluate(() => { document.body.dataset.ready = "0"; });
  const clicked = await page.getAttribute("#pages tbody tr[data-filter]", "data-filter");
  await page.click("#pages tbody tr[data-filter]");
  await page.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  out.filtered = { clicked, url: page.url(), chips: await page.$$eval("#filters .chip", (cs) => cs.map((c) => c.dataset.filter)),
    kpis: await page.$$eval("[data-kpi]", (els) => Object.fromEntries(els.map((e) => [e.dataset.kpi, e.textContent]))),
    pages: await rows("#pages tbody tr[data-key]") };
  // The address reproduces the view: a fresh tab (its own sessionStorage, so the token comes in the fragment).
  const again = await ctx.newPage();
  await again.goto(`${page.url()}#token=${encodeURIComponent(token)}`);
  await again.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  out.reopened = { chips: await again.$$eval("#filters .chip", (cs) => cs.map((c) => c.dataset.filter)),
    visits: await again.textContent("[data-kpi=visits]") };
  await again.close();
  // Remove the filter with its chip; then compare with the previous period.
  await page.evaluate(() => { document.body.dataset.ready = "0"; });
  await page.click("#filters .chip");
  await page.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  out.unfilteredUrl = page.url();
  await page.evaluate(() => { document.body.dataset.ready = "0"; });
  statsRequests.length = 0;
  await page.click("#compare");
  await page.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  out.comparedRequests = [...statsRequests];
  out.compared = { url: page.url(), previousLine: (await page.$("#chart polyline.previous")) !== null,
    changes: await page.$$eval("[data-change]", (els) => Object.fromEntries(els.map((e) => [e.dataset.change, e.textContent]))) };
  await page.mouse.move(box.x + (top[0] * box.width) / vb, box.y + box.height / 2);
  await page.screenshot({ path: shot, fullPage: true });
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
