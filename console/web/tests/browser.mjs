// Drives the console in Debian's Chromium (headless, fresh profile) for
// console/tests/browser.rs, which owns NATS, the responder and the console.
// Line protocol: this script prints `READY`, `SEEN <id>`, `QUARANTINED`,
// `VIEWS-OK`, `READONLY-OK` as it gets there and reads `PUBLISHED <id>` on
// stdin. The finding it is told about is critical, tagged
// mitre_credential_access and T1003.008, with the output field fd.name.
// Any failure exits non-zero with the reason and a screenshot.
import { mkdirSync } from "node:fs";
import { launch } from "./browser-launch.mjs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const url = process.env.CONSOLE_URL;
const shots = process.env.SCREENSHOT_DIR ?? "screenshots";
mkdirSync(shots, { recursive: true });

const lines = createInterface({ input: process.stdin });
const waiting = [];
lines.on("line", (line) => waiting.shift()?.(line));
const nextLine = () => new Promise((resolve) => waiting.push(resolve));

async function login(page, user, password) {
  await page.goto(url);
  await page.getByTestId("login-username").fill(user);
  await page.getByTestId("login-password").fill(password);
  await page.getByTestId("login-submit").click();
  await page.getByTestId("live-status").filter({ hasText: "live" }).waitFor({ timeout: 10000 });
}

async function main() {
  const { context, cleanup } = await launch();
  // Record the notifications the page raises (the browser's own would go
  // nowhere in headless mode), keeping the real API underneath.
  await context.addInitScript(() => {
    const Real = window.Notification;
    if (!Real) return;
    window.__notified = [];
    class Recording extends Real {
      constructor(title, options) {
        window.__notified.push(title);
        super(title, options);
      }
    }
    window.Notification = Recording;
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const origin = new URL(url).origin;
  const at = (path) => new URL(path, url).toString();
  const count = (text) => page.getByTestId("feed-count").filter({ hasText: text }).waitFor({ timeout: 5000 });
  try {
    // Responder: watch the feed, then act.
    await login(page, "ann", process.env.ANN_PASSWORD);
    // Notifications are asked for on a click, never on load.
    await context.grantPermissions(["notifications"], { origin });
    await page.getByTestId("notify-button").click();
    await page.getByTestId("notify-on").waitFor({ timeout: 5000 });
    await page.screenshot({ path: join(shots, "1-feed-empty.png") });
    console.log("READY");
    const published = (await nextLine()).split(" ")[1];
    const row = page.locator(`[data-testid=feed-row][data-id="${published}"]`);
    await row.waitFor({ timeout: 5000 });
    console.log(`SEEN ${published}`);
    await page.screenshot({ path: join(shots, "2-feed-finding.png") });
    const notified = await page.evaluate(() => window.__notified);
    if (!notified.some((title) => title.includes("critical") && title.includes("Read sensitive file"))) {
      throw new Error(`no notification for the critical finding: ${JSON.stringify(notified)}`);
    }

    // Filters: a critical finding is hidden at "alert and above", kept by its tactic.
    await page.getByTestId("filter-priority").selectOption("alert");
    await count("0 of 1");
    if (!page.url().includes("priority=alert")) throw new Error(`the filter is not in the URL: ${page.url()}`);
    await page.getByTestId("filter-priority").selectOption("debug");
    await page.getByTestId("filter-tactic").selectOption("credential_access");
    await count("1 of 1");
    // Free text over output fields and process; the search is in the URL.
    await page.getByTestId("search").fill("no-such-thing");
    await count("0 of 1");
    await page.getByTestId("search").fill("TAIL -F");
    await count("1 of 1");
    // Export of the filtered view: the gateway's answer has the same finding.
    const exported = await page.evaluate(async () => {
      const href = (id) => document.querySelector(`[data-testid=${id}]`).getAttribute("href");
      const csv = await (await fetch(href("export-csv"))).text();
      const json = await (await fetch(href("export-json"))).json();
      return { csv, href: href("export-csv"), ids: json.map((f) => f.id) };
    });
    if (!exported.href.includes("q=TAIL+-F") || !exported.href.includes("tactic=credential_access")) {
      throw new Error(`the export link lacks the filters: ${exported.href}`);
    }
    const csvRows = exported.csv.trim().split("\r\n");
    if (csvRows.length !== 2 || !csvRows[1].includes(published) || exported.ids.join() !== published) {
      throw new Error(`export of the filtered view: ${JSON.stringify(exported)}`);
    }
    // A shared link reproduces the view.
    await page.goto(at(`/findings?q=shadow&tactic=credential_access&priority=critical`));
    await count("1 of 1");
    if ((await page.getByTestId("search").inputValue()) !== "shadow") throw new Error("the link's search is not shown");
    await page.screenshot({ path: join(shots, "3-search-link.png") });

    // Finding detail: output fields and the raw event, then its incident.
    await row.click();
    await page.waitForURL(`**/findings/${published}`);
    await page.getByTestId("output-fields").filter({ hasText: "fd.name" }).waitFor({ timeout: 5000 });
    await page.getByTestId("raw-event").filter({ hasText: 'comm: "tail"' }).waitFor({ timeout: 5000 });
    await page.screenshot({ path: join(shots, "4-finding-detail.png") });
    await page.getByTestId("finding-incident").click();
    await page.getByTestId("incident-view").waitFor();
    // A rehearsal first: the responder answers dry_run, and nothing may read "contained".
    await page.getByTestId("dry-run").check();
    await page.getByTestId("quarantine-button").click();
    await page.getByTestId("notice").filter({ hasText: "quarantine: dry_run" }).waitFor({ timeout: 10000 });
    await page.getByTestId("containment").filter({ hasText: "dry-run: would quarantine" }).waitFor({ timeout: 10000 });
    const rehearsed = await page.getByTestId("containment").textContent();
    if (/contained/.test(rehearsed ?? "")) throw new Error(`a dry run reads as contained: ${rehearsed}`);
    const listed = page.getByTestId("incident").first();
    await listed.getByTestId("dry-run-badge").waitFor({ timeout: 10000 });
    if (/contained/.test((await listed.textContent()) ?? "")) {
      throw new Error(`the incident list shows a dry run as ${await listed.textContent()}`);
    }
    await page.screenshot({ path: join(shots, "5-dry-run.png") });
    await page.getByTestId("dry-run").uncheck();
    await page.getByTestId("quarantine-button").click();
    await page.getByTestId("notice").filter({ hasText: "quarantine: succeeded" }).waitFor({ timeout: 10000 });
    await page.getByTestId("containment").filter({ hasText: "contained" }).waitFor({ timeout: 10000 });
    await page.screenshot({ path: join(shots, "6-quarantined.png") });
    console.log("QUARANTINED");

    // The incident's own link survives a reload.
    const incidentUrl = page.url();
    await page.reload();
    await page.getByTestId("incident-view").waitFor({ timeout: 10000 });
    if (!incidentUrl.includes("/incidents/shop.web-1")) throw new Error(`incident URL ${incidentUrl}`);

    // MITRE ATT&CK: the technique under its tactic, drilling down to the finding.
    await page.getByTestId("tab-attack").click();
    const technique = page.locator('[data-testid=attack-tactic][data-tactic=credential_access] [data-technique="T1003.008"]');
    await technique.filter({ hasText: /^T1003\.008 1$/ }).waitFor({ timeout: 5000 });
    await page.screenshot({ path: join(shots, "7-attack.png") });
    await technique.click();
    await count("1 of 1");
    if ((await page.getByTestId("filter-technique").inputValue()) !== "T1003.008") {
      throw new Error(`drill-down did not filter by technique: ${page.url()}`);
    }

    // Charts by priority and by rule, drawn by the chart library.
    await page.getByTestId("tab-charts").click();
    const byPriority = page.getByTestId("chart-priority");
    await byPriority.locator(".recharts-bar-rectangle").first().waitFor({ timeout: 10000 });
    await page.getByTestId("chart-rule").filter({ hasText: "Read sensitive file untrusted" }).waitFor({ timeout: 5000 });
    await page.screenshot({ path: join(shots, "8-charts.png") });

    // Links to what does not exist: a clear not-found view, not a blank page.
    for (const [path, text] of [
      ["/incidents/shop.nope", 'no incident "shop.nope"'],
      ["/findings/f-nope", 'no finding "f-nope"'],
      ["/nowhere", "this page"],
    ]) {
      await page.goto(at(path));
      await page.getByTestId("not-found").filter({ hasText: text }).waitFor({ timeout: 10000 });
    }
    await page.goto(at("/incidents/shop.nope"));
    await page.getByTestId("not-found").waitFor({ timeout: 10000 });
    await page.screenshot({ path: join(shots, "9-not-found.png") });
    console.log("VIEWS-OK");

    // Read-only: sees the incident, cannot quarantine (button and API).
    await page.getByRole("button", { name: "log out" }).click();
    await login(page, "rob", process.env.ROB_PASSWORD);
    await page.getByTestId("tab-incidents").click();
    await page.getByTestId("incident").first().click();
    await page.getByTestId("read-only-note").waitFor();
    if (!(await page.getByTestId("quarantine-button").isDisabled())) {
      throw new Error("the quarantine button is enabled for a read-only user");
    }
    const status = await page.evaluate(async (id) => {
      const session = await (await fetch("/api/session")).json();
      const response = await fetch(`/api/incidents/${id}/quarantine`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": session.csrf },
        body: "{}",
      });
      return response.status;
    }, await page.getByTestId("incident").first().getAttribute("data-id"));
    if (status !== 403) throw new Error(`read-only quarantine answered ${status}, not 403`);
    await page.screenshot({ path: join(shots, "10-read-only.png") });
    console.log("READONLY-OK");
  } catch (error) {
    await page.screenshot({ path: join(shots, "failure.png") }).catch(() => undefined);
    throw error;
  } finally {
    await context.close();
    cleanup();
    lines.close();
  }
}

main().catch((error) => {
  console.error(error?.stack ?? String(error));
  process.exit(1);
});
