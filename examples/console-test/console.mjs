// The operator console in a real browser (Debian's chromium, driven by playwright-core),
// against a running gateway: log in; watch the request rate move while a client calls
// the API; publish a bad keyset through the API and watch the guard's automatic rollback
// appear on the timeline; stage a canary and promote it from the page; paste a token,
// revoke it, and see the API answer 401; axe-core finds no serious violation on any view;
// no Content-Security-Policy violation anywhere. Screenshots go to $SHOTS.
//
// Environment: ADMIN_URL, API_URL, ADMIN_KEY, BAD_JWKS, NAME (axum or actix), SHOTS, and
// AUDIT=1 when the gateway keeps its trail in PostgreSQL (--audit-db).
import { chromium } from 'playwright-core';
import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';

const { ADMIN_URL, API_URL, ADMIN_KEY, BAD_JWKS, NAME, SHOTS, AUDIT } = process.env;
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
mkdirSync(SHOTS, { recursive: true });

const fail = (why) => { console.error(`${NAME}: ${why}`); process.exit(1); };
const admin = async (method, path, body, type = 'application/json') => {
  const res = await fetch(ADMIN_URL + path, {
    method, headers: { Authorization: `Bearer ${ADMIN_KEY}`, 'Content-Type': type }, body,
  });
  const text = await res.text();
  return { status: res.status, data: text ? JSON.parse(text) : null };
};
const api = async (token) => (await fetch(API_URL + '/orders', { headers: { Authorization: `Bearer ${token}` } })).status;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
const cspViolations = [];
page.on('console', (m) => { if (/Content.Security.Policy|Refused to/i.test(m.text())) cspViolations.push(m.text()); });
page.on('pageerror', (e) => fail(`page error: ${e.message}`));
page.on('dialog', (d) => d.accept());

async function axe(view) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ['violations'] }));
  const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (serious.length) fail(`axe on ${view}: ${serious.map((v) => `${v.id} (${v.nodes.length}): ${v.help}`).join('; ')}`);
}

try {
  // Log in.
  await page.goto(ADMIN_URL + '/console');
  await axe('login');
  await page.fill('#admin-key', 'a wrong key');
  await page.click('#login-form button');
  await page.waitForSelector('#login-error:has-text("refused")');
  await page.fill('#admin-key', ADMIN_KEY);
  await page.click('#login-form button');
  await page.waitForSelector('#overview:not([hidden])');
  await page.waitForSelector('#live:has-text("live")');

  // Six users signed in; their calls move the rate.
  const tokens = [];
  for (let i = 0; i < 6; i++) {
    const r = await admin('POST', '/tokens', JSON.stringify({ subject: `user-${i}`, scope: 'orders:read' }));
    if (r.status !== 200) fail(`mint: ${r.status}`);
    tokens.push(r.data.access_token);
  }
  const callAll = () => Promise.all(tokens.map(api));
  // A steady client load for the whole story: the chart shows it before, during and
  // after the bad deploy.
  let calling = true;
  const load = (async () => { while (calling) { await callAll(); await new Promise((r) => setTimeout(r, 100)); } })();
  await page.waitForFunction(() => Number(document.getElementById('rate-accepted').textContent) > 0, null, { timeout: 10000 });
  await axe('overview');
  await page.waitForTimeout(4000);

  // A bad deploy through the API: the guard rolls it back by itself, and the page shows it.
  const bad = await admin('POST', '/keysets?label=bad-deploy&keep_signing=false', BAD_JWKS);
  if (bad.status !== 201) fail(`bad deploy: ${bad.status}`);
  await page.waitForSelector('#timeline li:has-text("automatic_rollback")', { timeout: 10000 });
  await page.waitForSelector('#alerts li:has-text("automatic_rollback")');
  await page.waitForTimeout(4000); // the chart after the rollback
  calling = false;
  await load;
  if ((await callAll()).some((s) => s !== 200)) fail('the API does not answer 200 after the rollback');
  await page.screenshot({ path: `${SHOTS}/overview-${NAME}.png`, fullPage: true });

  // Stage a canary and promote it, from the page.
  await page.click('nav a[data-view="keysets"]');
  await page.waitForSelector('#versions tr');
  await axe('keysets');
  const jwks = await (await fetch(ADMIN_URL + '/.well-known/jwks.json')).text();
  await page.fill('#stage-jwks', jwks);
  await page.fill('#stage-share', '25');
  await page.fill('#stage-label', 'canary-from-console');
  await page.click('#stage-form button');
  await page.waitForSelector('#keysets-result:has-text("Done")');
  const staged = await admin('GET', '/keysets/rollout');
  if (!JSON.stringify(staged.data).includes('canary')) fail(`no canary staged: ${JSON.stringify(staged.data)}`);
  await page.click('#promote');
  await page.waitForSelector('#timeline li:has-text("promote")', { state: 'attached' });
  const after = await admin('GET', '/keysets');
  const current = after.data.keysets.find((k) => k.current);
  if (current.label !== 'canary-from-console') fail(`promote did not make the canary current: ${JSON.stringify(current)}`);
  await page.waitForSelector('#versions td:has-text("canary-from-console")');
  await page.screenshot({ path: `${SHOTS}/keysets-${NAME}.png`, fullPage: true });

  // Paste a token, revoke it, and the API refuses it.
  await page.click('nav a[data-view="tokens"]');
  await axe('tokens');
  await page.fill('#token-input', tokens[3]);
  await page.click('#inspect-form button');
  await page.waitForSelector('#token-claims:has-text("\\"active\\": true")');
  if (AUDIT) await page.waitForSelector('#token-trail:has-text("token_issued")');
  else await page.waitForSelector('#token-trail:has-text("--audit-db")');
  await page.waitForFunction(() => document.getElementById('revoke-value').value.length > 0);
  await page.click('#revoke-form button');
  await page.waitForSelector('#tokens-result:has-text("Done")');
  if (await api(tokens[3]) !== 401) fail('the revoked token is still accepted');
  // A subject instead of a token: its records (or how to keep them).
  await page.fill('#token-input', 'user-3');
  await page.click('#inspect-form button');
  if (AUDIT) await page.waitForSelector('#token-trail:has-text("token_issued  ok  user-3")');
  else await page.waitForSelector('#token-trail:has-text("--audit-db")');
  if (await api(tokens[4]) !== 200) fail('another token was refused');

  // The audit view says how to turn the store on; the providers view that none is set.
  await page.click('nav a[data-view="audit"]');
  if (AUDIT) {
    // user-3's tokens, then the admin actions — the revocation made from the page among
    // them — from the database.
    await page.fill('#audit-subject', 'user-3');
    await page.click('#audit-form button');
    await page.waitForSelector('#audit-rows td:has-text("token_issued")');
    await page.fill('#audit-subject', '');
    await page.fill('#audit-action', 'admin');
    await page.click('#audit-form button');
    await page.waitForSelector('#audit-rows td:has-text("revoke jti")');
    if (await page.locator('#audit-rows td:has-text("token_issued")').count() !== 0) fail('the action filter let other actions through');
    await page.screenshot({ path: `${SHOTS}/audit-${NAME}.png`, fullPage: true });
  } else {
    await page.click('#audit-form button');
    await page.waitForSelector('#audit-note:has-text("--audit-db")');
  }
  await axe('audit');
  await page.click('nav a[data-view="fleet"]');
  await page.waitForSelector('#remote:has-text("No remote key source")');
  await page.waitForSelector('#fleet-status:has-text("not in a fleet")');
  await axe('fleet');

  // The page never shows the admin key, and logging out forgets it.
  if ((await page.content()).includes(ADMIN_KEY)) fail('the page shows the admin key');
  await page.click('#logout');
  await page.waitForSelector('#login:not([hidden])');
  if (await page.evaluate(() => sessionStorage.length) !== 0) fail('the key outlived the logout');
  if (cspViolations.length) fail(`CSP violations: ${cspViolations.join('; ')}`);
  console.log(`${NAME}: the console passed`);
} catch (e) {
  await page.screenshot({ path: `${SHOTS}/failure-${NAME}.png`, fullPage: true }).catch(() => {});
  fail(e.stack || String(e));
} finally {
  await browser.close();
}
