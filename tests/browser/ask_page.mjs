// The ask page (issue 46) in a real headless browser: Debian's chromium,
// driven by playwright-core (installed by scripts/setup --browser; never a
// downloaded browser). Run by the black-box case
// the_admin_page_shows_questions_and_its_buttons_answer_them, which starts
// the proxy and gives:
//   ADMIN=127.0.0.1:PORT  TOKEN=...  PROXY=127.0.0.1:PORT (a forward route in
//   ask mode)  ORIGIN_PORT=PORT (an origin every *.test name resolves to)
//   ROUTES_FILE=PATH
// Clients are node's own http module, through the proxy. The page must load
// without a console error or a CSP violation, show a held request (a
// hostile path as text), and each answer button must release or refuse the
// client held on its question. Prints "ask page: all answers checked".
import { chromium } from "playwright-core";
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import assert from "node:assert/strict";

const { ADMIN, TOKEN, PROXY, ORIGIN_PORT, ROUTES_FILE } = process.env;
const [proxyHost, proxyPort] = PROXY.split(":");

// A plain request through the proxy: { status, body } once it ends.
function through(host, target) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: proxyHost, port: Number(proxyPort), method: "GET", path: `http://${host}:${ORIGIN_PORT}${target}`, headers: { Host: `${host}:${ORIGIN_PORT}` }, timeout: 30000 });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`${host}${target}: no answer in 30 s`)));
    req.on("error", reject);
    req.end();
  });
}

// The same, that must not end within `ms`: it is held.
async function held(promise, ms, what) {
  const early = await Promise.race([promise.then(() => "ended", () => "ended"), new Promise((r) => setTimeout(() => r("held"), ms))]);
  assert.equal(early, "held", `${what} ended before anyone answered`);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wasiter-browser-"));
const context = await chromium.launchPersistentContext(dir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const page = context.pages()[0] ?? (await context.newPage());
  // A failed load is told by its response below, with its address: the
  // browser's own favicon request may 404 (the page names no icon).
  page.on("console", (m) => {
    if ((m.type() === "error" || m.type() === "warning") && !m.text().startsWith("Failed to load resource")) problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400 && new URL(r.url()).pathname !== "/favicon.ico") problems.push(`${r.status()} for ${r.url()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(`http://${ADMIN}/#token=${TOKEN}`);
  await page.waitForSelector("#board:not([hidden])", { timeout: 15000 });
  assert.equal(new URL(page.url()).hash, "", "the token left the address bar");

  // A question for a request whose path would be markup: shown as text.
  const hostilePath = `/x"><script>window.__pwned=1</script><img/src=x/onerror=window.__pwned=2>'%22`;
  const hostile = through("hostile.test", hostilePath);
  await held(hostile, 300, "the hostile request");
  const row = page.locator("tr[data-question]", { hasText: "hostile.test" });
  await row.waitFor({ timeout: 15000 });
  assert.equal(await row.locator("td.request").textContent(), `GET ${hostilePath}`, "the path as text, whole");
  assert.equal(await page.locator("#questions img, #questions script, main script").count(), 0, "no element came from the path");
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "no script of the path ran");
  for (const a of ["once", "session", "forever", "deny", "deny-forever"]) {
    assert.equal(await row.locator(`button[data-answer="${a}"]`).count(), 1, `a ${a} button`);
  }
  await row.locator('button[data-answer="once"]').click();
  const r = await hostile;
  assert.equal(r.status, 200, r.body);
  await row.waitFor({ state: "detached", timeout: 15000 });

  // Each answer on a fresh question: what happens to its client.
  const click = async (host, answer) => {
    const client = through(host, "/" + answer);
    const q = page.locator("tr[data-question]", { hasText: `${host}:` });
    await q.waitFor({ timeout: 15000 });
    await held(client, 100, host);
    await q.locator(`button[data-answer="${answer}"]`).click();
    const got = await client;
    await q.waitFor({ state: "detached", timeout: 15000 });
    return got;
  };
  let got = await click("once.test", "once");
  assert.equal(got.status, 200, got.body);
  assert.equal(got.body, "origin /once\n");
  got = await click("session.test", "session");
  assert.equal(got.status, 200, got.body);
  got = await through("session.test", "/again");
  assert.equal(got.status, 200, "session: not asked again");
  got = await click("forever.test", "forever");
  assert.equal(got.status, 200, got.body);
  assert.match(fs.readFileSync(ROUTES_FILE, "utf8"), /to=listed\.test,forever\.test;/, "forever is in the routes file");
  got = await click("deny.test", "deny");
  assert.equal(got.status, 403);
  assert.match(got.body, /rule ask-denied/);
  got = await click("never.test", "deny-forever");
  assert.equal(got.status, 403);
  assert.match(fs.readFileSync(ROUTES_FILE, "utf8"), /not-to=never\.test/, "deny forever is in the routes file");

  // The recent decisions show every answer given, newest first.
  await page.waitForFunction(() => document.querySelectorAll("#recent tbody tr").length >= 6, null, { timeout: 15000 });
  const recent = await page.locator("#recent tbody").textContent();
  for (const host of ["hostile.test", "once.test", "session.test", "forever.test", "deny.test", "never.test"]) {
    assert.ok(recent.includes(host), `${host} in the recent decisions: ${recent}`);
  }
  const violations = await page.evaluate(() => window.__violations);
  problems.push(...violations.map((v) => `CSP violation: ${v}`));
} finally {
  await context.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
assert.deepEqual(problems, [], "no console error, page error or CSP violation");
console.log("ask page: all answers checked");
