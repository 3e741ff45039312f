// Drives the console in Debian's Chromium (headless, fresh profile) for
// console/tests/browser.rs, which owns NATS, the responder and the console.
// Line protocol: this script prints `READY`, `SEEN <id>`, `QUARANTINED`,
// `READONLY-OK` as it gets there and reads `PUBLISHED <id>` on stdin.
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
  const page = context.pages()[0] ?? (await context.newPage());
  try {
    // Responder: watch the feed, then act.
    await login(page, "ann", process.env.ANN_PASSWORD);
    await page.screenshot({ path: join(shots, "1-feed-empty.png") });
    console.log("READY");
    const published = (await nextLine()).split(" ")[1];
    await page.locator(`[data-testid=feed-row][data-id="${published}"]`).waitFor({ timeout: 5000 });
    console.log(`SEEN ${published}`);
    await page.screenshot({ path: join(shots, "2-feed-finding.png") });
    // Filters: a critical finding is hidden at "alert and above", kept by its tactic.
    await page.getByTestId("filter-priority").selectOption("alert");
    await page.getByTestId("feed-count").filter({ hasText: "0 of 1" }).waitFor({ timeout: 5000 });
    await page.getByTestId("filter-priority").selectOption("debug");
    await page.getByTestId("filter-tactic").selectOption("credential_access");
    await page.getByTestId("feed-count").filter({ hasText: "1 of 1" }).waitFor({ timeout: 5000 });

    await page.locator(`[data-testid=feed-row][data-id="${published}"]`).click();
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
    await page.screenshot({ path: join(shots, "3-dry-run.png") });
    await page.getByTestId("dry-run").uncheck();
    await page.getByTestId("quarantine-button").click();
    await page.getByTestId("notice").filter({ hasText: "quarantine: succeeded" }).waitFor({ timeout: 10000 });
    await page.getByTestId("containment").filter({ hasText: "contained" }).waitFor({ timeout: 10000 });
    await page.screenshot({ path: join(shots, "4-quarantined.png") });
    console.log("QUARANTINED");

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
    await page.screenshot({ path: join(shots, "5-read-only.png") });
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
