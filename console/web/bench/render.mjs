// Measures the feed in Debian's Chromium for bench/src/bin/console_render.rs,
// which has loaded CONSOLE_FINDINGS findings into a running console.
// Prints one JSON line: medians in ms of
//   load   - navigation to every finding counted and the first rows drawn,
//   scroll - one scroll step (each replaces every visible row) to the next
//            painted frame (quantised by the
//            frame interval: it shows whether frames are dropped),
//   scrollWork - main-thread work per scroll step (Chrome's TaskDuration:
//            script, style, layout, paint), the finer measure,
//   filter - a priority filter change to the updated count,
//   search - free text typed into the search box to the updated count,
//   attack - the ATT&CK view opened from the feed to its technique counts,
//   charts - the charts opened from the feed to their first bars (the chart
//            library is loaded on first use: round 1 includes loading it).
import { launch } from "../tests/browser-launch.mjs";

const url = process.env.CONSOLE_URL;
const expected = Number(process.env.CONSOLE_FINDINGS);
const rounds = Number(process.env.ROUNDS ?? 5);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

async function main() {
  const { context, cleanup } = await launch();
  const page = context.pages()[0] ?? (await context.newPage());
  try {
    await page.goto(url);
    await page.getByTestId("login-username").fill("bench");
    await page.getByTestId("login-password").fill(process.env.BENCH_PASSWORD);
    await page.getByTestId("login-submit").click();
    const loaded = `${expected} of ${expected}`;
    await page.getByTestId("feed-count").filter({ hasText: loaded }).waitFor({ timeout: 60000 });

    const cdp = await context.newCDPSession(page);
    await cdp.send("Performance.enable");
    const taskSeconds = async () =>
      (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === "TaskDuration").value;
    const load = [];
    const scroll = [];
    const scrollWork = [];
    const filter = [];
    const search = [];
    const attack = [];
    const charts = [];
    const timed = async (into, act, done) => {
      const t = performance.now();
      await act();
      await done();
      into.push(performance.now() - t);
    };
    const backToFeed = async () => {
      await page.getByTestId("tab-findings").click();
      await page.getByTestId("feed-count").filter({ hasText: loaded }).waitFor();
    };
    for (let round = 0; round < rounds; round++) {
      const start = performance.now();
      await page.reload();
      await page.getByTestId("feed-count").filter({ hasText: loaded }).waitFor({ timeout: 60000 });
      await page.getByTestId("feed-row").first().waitFor();
      load.push(performance.now() - start);

      const before = await taskSeconds();
      scroll.push(
        ...(await page.evaluate(async () => {
          const feed = document.querySelector("[data-testid=feed]");
          const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
          const steps = [];
          for (let i = 1; i <= 20; i++) {
            const t = performance.now();
            // Every step jumps more than a screen (top, then past the middle),
            // so each replaces all visible rows, whatever the feed's length.
            const max = feed.scrollHeight - feed.clientHeight;
            feed.scrollTop = i % 2 === 1 ? 0 : max * (0.5 + i / 40);
            feed.dispatchEvent(new Event("scroll"));
            await frame();
            steps.push(performance.now() - t);
          }
          return steps;
        })),
      );
      scrollWork.push(((await taskSeconds()) - before) * 1000 / 20);

      const t = performance.now();
      await page.getByTestId("filter-priority").selectOption("critical");
      await page.getByTestId("feed-count").filter({ hasNotText: loaded }).waitFor();
      filter.push(performance.now() - t);
      await page.getByTestId("filter-priority").selectOption("debug");
      await page.getByTestId("feed-count").filter({ hasText: loaded }).waitFor();

      // One pod of 40 (pod-7, not pod-17 or pod-37).
      await timed(
        search,
        () => page.getByTestId("search").fill("POD-7"),
        () => page.getByTestId("feed-count").filter({ hasNotText: loaded }).waitFor(),
      );
      await page.getByTestId("search").fill("");
      await page.getByTestId("feed-count").filter({ hasText: loaded }).waitFor();

      await timed(
        attack,
        () => page.getByTestId("tab-attack").click(),
        () => page.getByTestId("attack-technique").first().waitFor(),
      );
      await backToFeed();
      await timed(
        charts,
        () => page.getByTestId("tab-charts").click(),
        () => page.locator("[data-testid=chart-rule] .recharts-bar-rectangle").first().waitFor(),
      );
      await backToFeed();
    }
    const rows = await page.getByTestId("feed-row").count();
    console.log(JSON.stringify({
        load: median(load),
        scroll: median(scroll),
        scrollWork: median(scrollWork),
        filter: median(filter),
        search: median(search),
        attack: median(attack),
        charts: median(charts),
        rows,
      }),);
  } finally {
    await context.close();
    cleanup();
  }
}

main().catch((error) => {
  console.error(error?.stack ?? String(error));
  process.exit(1);
});
