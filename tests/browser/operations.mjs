// The operations page while the worker scales (run by tests/browser.rs,
// `operations_page_during_scaling`): the documents are queued before this starts; the page
// is watched until at least three worker processes are busy at once (screenshot
// operations-scaling.png), then until the queue is empty and the extra processes have
// stopped (operations-after.png). A failed job is retried and old jobs purged from the page.
// Prints one JSON line (`operations:` prefix) with what was seen.
//
// Environment: BASE_URL, APP_PASSWORD, OUT_DIR, CHROMIUM, DOCUMENTS (how many were queued).

import { chromium } from 'playwright-core';
import path from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`operations.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};

const BASE = env('BASE_URL').replace(/\/$/, '');
const PASSWORD = env('APP_PASSWORD');
const OUT = env('OUT_DIR');
const DOCUMENTS = Number(env('DOCUMENTS'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** What the page shows now (read from its data attributes). */
async function seen(page) {
  return page.evaluate(() => {
    const rows = [...document.querySelectorAll('[data-testid=ops-child]')];
    const jobs = [...document.querySelectorAll('[data-testid=ops-job]')];
    const dyno = document.querySelector('[data-testid=ops-dyno]');
    return {
      live: rows.filter((r) => r.dataset.live === '1').length,
      busy: rows.filter((r) => r.dataset.live === '1' && r.dataset.busy === '1').length,
      charted: rows.filter((r) => Number(r.dataset.samples) > 0).length,
      stopped: rows.filter((r) => r.dataset.live === '0').length,
      done: jobs.filter((j) => j.dataset.state === 'done').length,
      failed: jobs.filter((j) => j.dataset.state === 'failed' || j.dataset.state === 'dead').length,
      dynoChildren: dyno ? Number(dyno.dataset.children) : 0,
      sparklines: document.querySelectorAll('svg.spark polyline').length,
    };
  });
}

/** Reloads the page until `ok(seen)`, at most `ms`; returns the last view. */
async function until(page, ok, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    await page.reload();
    await page.locator('[data-testid=ops-updated]').filter({ hasText: 'Updated' }).waitFor();
    const s = await seen(page);
    if (ok(s)) return s;
    if (Date.now() > deadline) throw new Error(`${what}: not seen in ${ms / 1000} s; last ${JSON.stringify(s)}`);
    await sleep(700);
  }
}

async function main() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
  const problems = [];
  const out = {};
  try {
    const page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
    page.setDefaultTimeout(20_000);
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`${BASE}/operations`);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${BASE}/operations`);

    // The scaling, as it happens: three or more processes busy at once, each with its chart.
    const busy = await until(page, (s) => s.busy >= 3, 90_000, 'three busy worker processes');
    out.busy = busy.busy;
    out.live_while_busy = busy.live;
    await page.screenshot({ path: path.join(OUT, 'operations-scaling.png'), fullPage: true });

    // Every document read; the extra processes retire, and stay listed as stopped with their
    // hour of memory.
    const after = await until(page, (s) => s.done >= DOCUMENTS && s.live === 1 && s.stopped >= 2, 120_000, 'the queue emptied and the processes back to one');
    out.after = after;
    await page.screenshot({ path: path.join(OUT, 'operations-after.png'), fullPage: true });

    // The damaged file's job is dead (it can never be read as it is): retried from the page,
    // it is queued again, and ends dead again.
    const failedRow = page.locator('[data-testid=ops-job][data-state=dead]').first();
    await failedRow.waitFor();
    await failedRow.locator('[data-testid=ops-retry]').click();
    await page.locator('#notice').filter({ hasText: 'is queued again' }).waitFor();
    out.retried = true;
    await until(page, (s) => s.failed >= 1, 60_000, 'the retried job read again');

    // Purge everything finished (0 days): the done and dead jobs go.
    await page.locator('[data-testid=ops-purge-days]').fill('0');
    await page.locator('[data-testid=ops-purge]').click();
    await page.locator('#notice').filter({ hasText: /Purged \d+ finished or dead job/ }).waitFor();
    out.purged = await page.locator('#notice').textContent();
    const left = await until(page, (s) => s.done === 0, 20_000, 'the finished jobs purged');
    out.done_after_purge = left.done;
  } catch (e) {
    problems.push(String(e && e.stack ? e.stack : e));
  } finally {
    await browser.close();
  }
  console.log(`operations: ${JSON.stringify(out)}`);
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
}

main();
