// Debian's Chromium, headless, with a fresh profile and no background
// networking (this machine's network is closed; never a downloaded browser).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "vigil-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
  return { context, cleanup: () => rmSync(profile, { recursive: true, force: true }) };
}
