// The year-end statements page in a real browser (run by tests/browser.rs,
// `statements_page_in_chromium`): the letters' settings filled in and saved, the bank left out
// as not a donor, a run for 2026 started and watched (screenshot statements-progress.png), the
// result shown (statements-done.png), and the print PDF and the ZIP downloaded into OUT_DIR.
// Prints one JSON line (`statements:` prefix) with what was seen.
//
// Environment: BASE_URL, APP_PASSWORD, OUT_DIR, CHROMIUM.

import { chromium } from 'playwright-core';
import path from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`statements.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};

const BASE = env('BASE_URL').replace(/\/$/, '');
const PASSWORD = env('APP_PASSWORD');
const OUT = env('OUT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

async function main() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
  const problems = [];
  const out = { progress: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`${BASE}/statements`);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${BASE}/statements`);

    // Nothing is written until the letters say who sends them.
    await page.locator('#st-ein-error').filter({ hasText: 'EIN' }).waitFor();
    await page.getByLabel('Organization').fill('Friends of Music');
    await page.getByLabel('Address').fill('1200 Oak Avenue\nPhiladelphia, PA 19103');
    await page.getByLabel('EIN').fill('12-3456789');
    await page.getByLabel('Signed by').fill('Ruth Alvarez');
    await page.locator('[data-testid=st-save]').click();
    await page.locator('#notice').filter({ hasText: 'Saved: the next letters say this.' }).waitFor();

    // The bank's interest is entered as receipts: it is not a donor.
    await page.locator('[data-testid=st-find-q]').fill('First National');
    await page.getByRole('button', { name: 'Find' }).click();
    await page.locator('[data-testid=st-exclude]').first().click();
    await page.locator('[data-testid=st-excluded-row]').filter({ hasText: 'First National Bank' }).waitFor();

    await page.locator('[data-testid=st-from]').fill('2026-01-01');
    await page.locator('[data-testid=st-to]').fill('2026-12-31');
    await page.locator('[data-testid=st-start]').click();
    // Watch it: gifts read, then donor i of n.
    const summary = page.locator('[data-testid=st-summary]');
    let shot = false;
    const deadline = Date.now() + 180_000;
    while (!(await summary.isVisible())) {
      // Read in one step: the line is redrawn on every poll and gone once the run ends.
      const text = await page.evaluate(() => {
        const el = document.querySelector('[data-testid=st-progress-line]');
        return el ? el.textContent : '';
      });
      if (text) {
        if (!out.progress.includes(text)) out.progress.push(text);
        if (!shot && /donor \d/.test(text)) {
          await page.screenshot({ path: path.join(OUT, 'statements-progress.png'), fullPage: true });
          shot = true;
        }
      }
      if (Date.now() > deadline) throw new Error('the run did not end');
      await page.waitForTimeout(150);
    }
    out.summary = await summary.textContent();
    await page.screenshot({ path: path.join(OUT, 'statements-done.png'), fullPage: true });

    for (const kind of ['pdf', 'zip']) {
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.locator(`[data-testid=st-download-${kind}]`).click(),
      ]);
      const file = path.join(OUT, `statements.${kind}`);
      await download.saveAs(file);
      out[kind] = download.suggestedFilename();
    }
    await page.locator('#notice').filter({ hasText: 'The letters are ready.' }).waitFor();
    out.no_address = await page.locator('[data-testid=st-no-address] li').count();
  } catch (e) {
    problems.push(String(e && e.stack ? e.stack : e));
  } finally {
    await browser.close();
  }
  console.log(`statements: ${JSON.stringify(out)}`);
  if (problems.length) {
    console.error(problems.join('\n'));
    process.exit(1);
  }
}

main();
