// The kith web page: talks only to this node's local API (docs/api.md),
// same origin; docs/web.md describes it.

import { api, ApiError, authorOf, isStatus } from './api.js';
import { h, shortId, toast, copyText, refreshTimes } from './dom.js';
import { state, profile, refreshFollowed, knownName } from './state.js';
import * as views from './views.js';

const main = document.getElementById('view');
const live = document.getElementById('live');
const badge = document.getElementById('badge');
let current = null;
let unseenMentions = 0;
const counted = new Set();

// --- routing ----------------------------------------------------------------

function parseRoute() {
  const hash = location.hash.replace(/^#\/?/, '');
  const slash = hash.indexOf('/');
  const name = slash < 0 ? hash : hash.slice(0, slash);
  let arg = slash < 0 ? '' : hash.slice(slash + 1);
  try { arg = decodeURIComponent(arg); } catch { arg = ''; }
  return { name: name || 'feed', arg };
}

function make({ name, arg }) {
  switch (name) {
    case 'thread': return arg ? views.threadView(arg) : views.feedView();
    case 'mentions': return views.mentionsView();
    case 'tag': return views.tagView(arg);
    case 'people': return views.peopleView();
    case 'user': return arg ? views.userView(arg) : views.peopleView();
    case 'peers': return views.peersView();
    case 'profile': return views.profileView();
    default: return views.feedView();
  }
}

function navigate(focus) {
  const r = parseRoute();
  if (current && current.dispose) current.dispose();
  current = make(r);
  main.replaceChildren(current.el);
  main.dataset.view = r.name;
  document.title = `${current.title} · kith`;
  for (const a of document.querySelectorAll('nav.tabs a')) {
    if (a.dataset.view === r.name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (r.name === 'mentions') setBadge(0);
  if (focus) {
    const h1 = main.querySelector('h1');
    if (h1) h1.focus();
  }
}

function setBadge(n) {
  unseenMentions = n;
  badge.hidden = n === 0;
  badge.textContent = n ? String(n) : '';
  badge.setAttribute('aria-label', `${n} new`);
}

// --- live updates -------------------------------------------------------------

// One write changes several predicates of a status (text, time, tags, ...);
// the events for one subject are folded into one read.
const pending = new Map();
let flushTimer = 0;

function queueStatus(subject, topic) {
  pending.set(subject, topic);
  if (!flushTimer) flushTimer = setTimeout(flush, 120);
}

async function flush() {
  flushTimer = 0;
  const batch = [...pending];
  pending.clear();
  for (const [subject, topic] of batch) {
    let p = null;
    try {
      p = await api.doc(subject, topic);
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) continue;
      p = null; // deleted
    }
    if (p) noteMention(p);
    if (current && current.onPost) current.onPost(p, subject);
  }
}

function noteMention(p) {
  const doc = p.doc || {};
  const author = authorOf(p.subject);
  if (author === state.me || counted.has(p.subject)) return;
  const mentioned = (Array.isArray(doc.mentions) && doc.mentions.includes(state.me)) ||
    (typeof doc.reply_to === 'string' && authorOf(doc.reply_to) === state.me);
  if (!mentioned) return;
  counted.add(p.subject);
  if (main.dataset.view !== 'mentions') {
    setBadge(unseenMentions + 1);
    toast(`${knownName(author) || shortId(author)} mentioned you.`);
  }
}

function onChange(ev) {
  const subject = typeof ev.subject === 'string' ? ev.subject : '';
  if (!subject) return;
  if (isStatus(subject)) return queueStatus(subject, ev.topic);
  const author = authorOf(subject);
  if (subject === `${author}/profile`) {
    profile(author, { fresh: true }).catch(() => {});
    return;
  }
  if (author === state.me && subject.startsWith(`${author}/follows`)) refreshFollowed();
}

let everOpen = false;
let lost = false;

function connectEvents() {
  const es = new EventSource('/v1/events');
  es.addEventListener('open', () => {
    setLive('live', 'live');
    if (everOpen && lost && current && current.onReconnect) current.onReconnect(); // events are not replayed
    everOpen = true;
    lost = false;
  });
  es.addEventListener('error', () => {
    lost = true;
    setLive('down', es.readyState === EventSource.CLOSED ? 'disconnected' : 'reconnecting…');
    if (es.readyState === EventSource.CLOSED) setTimeout(connectEvents, 5000);
  });
  const parse = (e) => { try { return JSON.parse(e.data); } catch { return null; } };
  es.addEventListener('change', (e) => { const ev = parse(e); if (ev) onChange(ev); });
  es.addEventListener('peer', (e) => {
    const ev = parse(e);
    if (ev && current && current.onPeer) current.onPeer(ev);
  });
}

function setLive(s, text) {
  live.dataset.state = s;
  live.textContent = text;
  live.title = s === 'live' ? 'Receiving live updates from the node' : 'Not receiving live updates';
}

// --- start ----------------------------------------------------------------------

async function start() {
  document.getElementById('copy-id').addEventListener('click', async () => {
    toast((await copyText(state.me)) ? 'Your id is copied.' : 'Select the id and copy it.');
  });
  try {
    const s = await api.status();
    state.me = s.id;
  } catch (e) {
    main.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Cannot reach the node: ${e.message}`));
    return;
  }
  const meName = document.getElementById('me-name');
  meName.dataset.nameOf = state.me;
  meName.dataset.fallback = 'set your name';
  meName.textContent = 'set your name';
  document.getElementById('me-id').textContent = shortId(state.me);
  document.getElementById('me-id').title = state.me;
  document.body.dataset.me = state.me;
  profile(state.me).catch(() => {});
  await refreshFollowed();
  for (const id of state.followed) profile(id).catch(() => {});
  window.addEventListener('hashchange', () => navigate(true));
  navigate(false);
  connectEvents();
  setInterval(() => refreshTimes(), 30000);
}

start();
