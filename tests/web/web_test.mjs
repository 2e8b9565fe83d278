// Drives the web page of two kith nodes in headless Chromium (started by
// web_test.sh): post through the UI and see it arrive live on the other
// node's page, follow through the UI, edit the profile and see the name
// change on the other page, reply, read the thread, mentions, tags and the
// peers panel, check that user text is never markup, and take screenshots.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.KITH_WEB_MODULES, 'index.js'));
const { chromium } = require('playwright-core');

const { A_URL, B_URL, A_ID, B_ID, B_PEER, SHOTS, CHROMIUM } = process.env;
const T = 15000; // per wait
let failures = 0;
const problems = [];

function check(cond, what) {
  if (!cond) { failures++; console.log(`FAIL: ${what}`); } else console.log(`ok: ${what}`);
}

async function step(what, fn) {
  try {
    await fn();
    console.log(`ok: ${what}`);
  } catch (e) {
    failures++;
    console.log(`FAIL: ${what}: ${String(e.message || e).split('\n')[0]}`);
  }
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
try {
  const ctxA = await browser.newContext({ viewport: { width: 1000, height: 820 } });
  const ctxB = await browser.newContext({ viewport: { width: 1000, height: 820 } });
  await ctxA.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: A_URL });
  const a = await ctxA.newPage();
  const b = await ctxB.newPage();
  for (const [name, p] of [['A', a], ['B', b]]) {
    p.on('pageerror', (e) => problems.push(`${name} page error: ${e.message}`));
    p.on('console', (m) => {
      if (m.type() === 'error' && !/404 \(Not Found\)/.test(m.text())) problems.push(`${name} console: ${m.text()}`);
    });
  }
  // The same origin serves the page and the API: nothing else is loaded.
  const foreign = [];
  for (const p of [a, b]) p.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin !== new URL(A_URL).origin && u.origin !== new URL(B_URL).origin && u.protocol !== 'data:') foreign.push(r.url());
  });

  await a.goto(`${A_URL}/#/feed`);
  await b.goto(`${B_URL}/#/feed`);
  await step('both pages load and show their node id', async () => {
    await a.waitForFunction((id) => document.getElementById('me-id').title === id, A_ID, { timeout: T });
    await b.waitForFunction((id) => document.getElementById('me-id').title === id, B_ID, { timeout: T });
  });
  await step('both pages receive the live event stream', async () => {
    await a.waitForSelector('#live[data-state="live"]', { timeout: T });
    await b.waitForSelector('#live[data-state="live"]', { timeout: T });
  });
  await step('copy id puts the id on the clipboard', async () => {
    await a.click('#copy-id');
    const text = await a.evaluate(() => navigator.clipboard.readText());
    if (text !== A_ID) throw new Error(`clipboard holds '${text}'`);
  });

  // 1. A posts through the UI; B (which follows A) sees it without reload.
  await b.evaluate(() => { window.__noReload = true; });
  const first = 'Hello from A, first light of the #kith #WebUI';
  await step('A posts a status through the compose form', async () => {
    await a.fill('main .compose textarea', first);
    await a.click('main .compose button[type=submit]');
    await a.locator('.posts .post .text', { hasText: first }).waitFor({ timeout: T });
  });
  await step('the status appears on B’s page live, without a reload', async () => {
    await b.locator('.posts .post .text', { hasText: first }).waitFor({ timeout: T });
    if (!(await b.evaluate(() => window.__noReload === true))) throw new Error('B reloaded');
  });
  await step('the #tag renders as a link to the tag view', async () => {
    const href = await a.locator('.posts .post .text', { hasText: first }).locator('a.tag').first().getAttribute('href');
    if (href !== '#/tag/kith') throw new Error(`tag link is ${href}`);
  });

  // 2. A follows B through the UI (with B's address).
  await step('A follows B through the People view', async () => {
    await a.click('nav a[data-view=people]');
    await a.fill('#follow-id', B_ID);
    await a.fill('#follow-address', B_PEER);
    await a.click('form[aria-label="Follow someone"] button[type=submit]');
    await a.locator(`.people li[data-id="${B_ID}"]`).waitFor({ timeout: T });
  });

  // 3. A edits the profile; B's page shows the new name live.
  await step('A edits the profile (name, bio, avatar URL)', async () => {
    await a.click('nav a[data-view=profile]');
    await a.waitForSelector('#p-name');
    await a.fill('#p-name', 'Ann Example');
    await a.fill('#p-bio', 'Writes the first posts. <b>not bold</b>');
    await a.fill('#p-avatar', 'https://example.com/ann.png');
    await a.click('form[aria-label="Your profile"] button[type=submit]');
    await a.waitForFunction(() => document.getElementById('me-name').textContent === 'Ann Example', null, { timeout: T });
  });
  await step('B’s page shows A’s new name on A’s status, live', async () => {
    await b.locator('.post', { hasText: first }).locator('a.author', { hasText: 'Ann Example' }).waitFor({ timeout: T });
  });

  // 4. B mentions A; A follows B now, so the status arrives on A's feed,
  // the mention shows A's name, and the Mentions badge counts it.
  await a.click('nav a[data-view=feed]');
  await step('B posts a status mentioning A, picked from the suggestions', async () => {
    const ta = b.locator('main .compose textarea');
    await ta.fill('Nice to meet you');
    await ta.pressSequentially(' @Ann');
    await b.locator('main .compose .suggest button', { hasText: '@Ann Example' }).click();
    if ((await ta.inputValue()) !== `Nice to meet you @${A_ID} `) throw new Error(`text is '${await ta.inputValue()}'`);
    await ta.pressSequentially('#kith');
    await b.click('main .compose button[type=submit]');
    await b.locator('.posts .post .text', { hasText: 'Nice to meet you' }).waitFor({ timeout: T });
  });
  await step('A’s feed gets B’s status live, the mention shown by profile name', async () => {
    const text = a.locator('.posts .post .text', { hasText: 'Nice to meet you' });
    await text.waitFor({ timeout: T });
    await text.locator('a.mention', { hasText: '@Ann Example' }).waitFor({ timeout: T });
  });
  await step('the Mentions tab counts the new mention', async () => {
    await a.waitForSelector('#badge:not([hidden])', { timeout: T });
  });
  // B gets a name too (through the API from B's page), for the pictures.
  await b.evaluate(() => fetch('/v1/docs/me/profile', { method: 'PUT', body: JSON.stringify({ doc: { name: 'Bo Builder' } }) }));

  // 5. Thread: A opens its status; B replies with the Reply button; the
  // reply shows in A's thread view live.
  await step('A opens the thread of its status', async () => {
    await a.locator('.post', { hasText: first }).locator('a', { hasText: 'Thread' }).click();
    await a.waitForSelector('.thread-root .post');
  });
  // GET /v1/thread may be missing on an older node (the page then shows
  // the status alone); asked from here, so the page's console stays clean.
  const probe = await fetch(`${A_URL}/v1/thread/${A_ID}/statuses/0-0`);
  const threadApi = !(probe.status === 404 && /no such route/.test(await probe.text()));
  const reply = 'Welcome! Replying from B';
  await step('B replies to A’s status with the Reply button', async () => {
    const post = b.locator('.post', { hasText: first });
    await post.locator('button', { hasText: 'Reply' }).click();
    const ta = post.locator('.reply-slot textarea');
    if (!(await ta.inputValue()).startsWith(`@${A_ID}`)) throw new Error('the reply does not start with the mention');
    await ta.fill(`${reply} @${A_ID}`);
    await post.locator('.reply-slot button[type=submit]').click();
    await b.locator('.posts .post .text', { hasText: reply }).waitFor({ timeout: T });
  });
  if (threadApi) {
    await step('the reply appears in A’s thread view live', async () => {
      await a.locator('.posts .post .text', { hasText: reply }).waitFor({ timeout: T });
    });
  } else {
    console.log('note: this node has no GET /v1/thread yet; the thread view shows the status alone');
  }
  const shot = async (name, opts = {}) => {
    await a.evaluate(() => { document.getElementById('toast').classList.remove('shown'); window.scrollTo(0, 0); });
    await a.waitForTimeout(400); // the toast's fade
    await a.screenshot({ path: path.join(SHOTS, name), ...opts });
  };
  await step('B’s new name reaches A’s page', async () => {
    await a.locator('a.author', { hasText: 'Bo Builder' }).first().waitFor({ timeout: T });
  });
  await shot('thread.png');
  await a.click('nav a[data-view=feed]');
  await a.locator('.posts .post .text', { hasText: reply }).waitFor({ timeout: T });
  await shot('feed.png');

  // 6. Mentions, tag, peers views.
  await step('the Mentions view lists B’s status and clears the badge', async () => {
    await a.click('nav a[data-view=mentions]');
    await a.locator('.posts .post .text', { hasText: 'Nice to meet you' }).waitFor({ timeout: T });
    await a.waitForSelector('#badge[hidden]', { state: 'attached', timeout: T });
  });
  await step('the tag view lists both #kith statuses', async () => {
    await a.goto(`${A_URL}/#/tag/kith`);
    await a.locator('.posts .post .text', { hasText: first }).waitFor({ timeout: T });
    await a.locator('.posts .post .text', { hasText: 'Nice to meet you' }).waitFor({ timeout: T });
  });
  await step('the peers panel shows B connected, with topics and bytes', async () => {
    await a.click('nav a[data-view=peers]');
    const row = a.locator('table').first().locator('tr', { hasText: 'connected' });
    await row.first().waitFor({ timeout: T });
    await a.locator('caption', { hasText: 'Topics' }).waitFor({ timeout: T });
    const bytes = await row.first().locator('td').nth(5).textContent();
    if (!/\d/.test(bytes)) throw new Error(`bytes in: '${bytes}'`);
  });
  await shot('peers.png');
  await a.click('nav a[data-view=profile]');
  await a.waitForFunction(() => document.getElementById('p-name')?.value === 'Ann Example', null, { timeout: T });
  await shot('profile.png');

  // 7. User text is never markup.
  await step('markup in a status is shown as text, never run', async () => {
    const evil = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> & <b>bold?</b>';
    await a.click('nav a[data-view=feed]');
    await a.fill('main .compose textarea', evil);
    await a.click('main .compose button[type=submit]');
    const t = a.locator('.posts .post .text', { hasText: '<img src=x' });
    await t.waitFor({ timeout: T });
    if ((await t.textContent()) !== evil) throw new Error('the text was changed');
    if ((await t.locator('img, script, b').count()) !== 0) throw new Error('markup became elements');
    if (await a.evaluate(() => window.__xss !== undefined)) throw new Error('script ran');
    await b.locator('.posts .post .text', { hasText: '<img src=x' }).waitFor({ timeout: T });
    if (await b.evaluate(() => window.__xss !== undefined)) throw new Error('script ran on B');
  });

  // 8. More: paging through older statuses.
  await step('the More button loads older statuses', async () => {
    await a.evaluate(async () => {
      for (let i = 0; i < 22; i++) {
        await fetch('/v1/posts', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ text: `filler ${i}` }) });
      }
    });
    await a.reload();
    await a.waitForSelector('.posts .post');
    await a.waitForFunction(() => document.querySelectorAll('.posts > li').length === 20, null, { timeout: T });
    await a.click('button.more');
    await a.waitForFunction(() => document.querySelectorAll('.posts > li').length > 20, null, { timeout: T });
    await a.locator('.posts .post .text', { hasText: first }).waitFor({ timeout: T });
  });

  check(foreign.length === 0, `no request left the node's origin${foreign.length ? `: ${foreign.join(', ')}` : ''}`);
  check(problems.length === 0, `no script errors${problems.length ? `: ${problems.join(' | ')}` : ''}`);
} finally {
  await browser.close();
}
console.log(failures ? `${failures} browser check(s) failed` : 'browser checks passed');
process.exit(failures ? 1 : 0);
