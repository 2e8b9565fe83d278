// Posts: rendering (text with #tags, @mentions and links, built node by
// node) and the compose form.

import { api, authorOf } from './api.js';
import { h, timeEl, shortId, toast } from './dom.js';
import { state, profile, knownName, knownPeople } from './state.js';

export const route = {
  thread: (subject) => `#/thread/${encodeURIComponent(subject)}`,
  user: (id) => `#/user/${encodeURIComponent(id)}`,
  tag: (tag) => `#/tag/${encodeURIComponent(tag)}`,
};

/** A span that shows `id`'s profile name, and follows later changes. */
export function nameEl(id, { tag = 'span', prefix = '', cls = 'name', href } = {}) {
  const fallback = id === state.me ? 'you' : shortId(id);
  const el = h(tag, { class: cls, href, title: id, dataset: { nameOf: id, fallback, prefix } });
  el.textContent = prefix + (knownName(id) || fallback);
  el.dataset.named = knownName(id) ? '1' : '0';
  if (!state.profiles.has(id)) profile(id).catch(() => {});
  return el;
}

function avatarEl(id) {
  const p = state.profiles.get(id);
  // Only images that need no request elsewhere: data: URLs (docs/web.md).
  if (p && /^data:image\/(png|jpeg|gif|webp);base64,/i.test(p.avatar))
    return h('img', { class: 'avatar', src: p.avatar, alt: '', width: 40, height: 40 });
  const name = knownName(id) || id.replace(/^k/, '');
  let hash = 0;
  for (const c of id) hash = (hash * 31 + c.codePointAt(0)) >>> 0;
  const el = h('span', { class: 'avatar', 'aria-hidden': 'true' }, [...name][0].toUpperCase());
  el.style.setProperty('--hue', String(hash % 360));
  return el;
}

// #tag: ASCII letters, digits, '_' or any non-ASCII character (as the
// node's indexer reads them); @id: letters and digits; links: http(s).
const TOKEN = /#([A-Za-z0-9_\u0080-\u{10FFFF}]+)|@([A-Za-z0-9]+)|(https?:\/\/[^\s<>"]+)/gu;

/** The post text as nodes: plain text, tag links, mention links, links. */
export function richText(text, doc = {}) {
  const out = [];
  const mentions = new Set(Array.isArray(doc.mentions) ? doc.mentions : []);
  let last = 0;
  for (const m of String(text).matchAll(TOKEN)) {
    let whole = m[0];
    if (m[3]) {
      // A sentence's closing punctuation is not part of the link.
      const trimmed = whole.replace(/[.,;:!?)\]]+$/, '');
      if (trimmed.length < whole.length) whole = trimmed;
    }
    if (m.index > last) out.push(String(text).slice(last, m.index));
    if (m[1]) {
      const tag = m[1].replace(/[A-Z]/g, (c) => c.toLowerCase());
      out.push(h('a', { class: 'tag', href: route.tag(tag) }, whole));
    } else if (m[2] && (mentions.has(m[2]) || state.profiles.has(m[2]) || m[2] === state.me)) {
      out.push(nameEl(m[2], { tag: 'a', prefix: '@', cls: 'mention', href: route.user(m[2]) }));
    } else if (m[3]) {
      out.push(h('a', { href: whole, rel: 'noopener noreferrer nofollow', target: '_blank' }, whole));
    } else {
      out.push(whole);
    }
    last = m.index + whole.length;
  }
  if (last < String(text).length) out.push(String(text).slice(last));
  return out;
}

export function postTime(p) {
  const t = p && p.doc ? p.doc.time : undefined;
  return typeof t === 'number' ? t : 0;
}

/** One post as an <article>. */
export function renderPost(p, { onReply } = {}) {
  const doc = p.doc || {};
  const author = authorOf(p.subject);
  const text = typeof doc.text === 'string' ? doc.text : '';
  const art = h('article', { class: 'post', dataset: { subject: p.subject, author } });
  art.append(
    h('header', { class: 'post-head' },
      avatarEl(author),
      h('div', { class: 'who' },
        nameEl(author, { tag: 'a', cls: 'author', href: route.user(author) }),
        h('code', { class: 'id', title: author }, shortId(author))),
      h('a', { class: 'when', href: route.thread(p.subject), title: 'Open the thread' }, timeEl(doc.time))),
  );
  if (typeof doc.reply_to === 'string' && doc.reply_to) {
    const to = authorOf(doc.reply_to);
    art.append(h('p', { class: 'in-reply' }, '↳ in reply to ',
      h('a', { href: route.thread(doc.reply_to) }, nameEl(to, { cls: 'name' }), '’s status')));
  }
  art.append(h('p', { class: 'text' }, richText(text, doc)));
  // From an aggregator (docs/app.md): this node does not hold the post; its
  // author's signature was checked by the node before it got here.
  if (typeof p.via === 'string' && p.via.startsWith('aggregator:') && p.verified === true) {
    const agg = p.via.slice('aggregator:'.length);
    art.append(h('p', { class: 'via', title: `Found by aggregator ${agg}` },
      'via aggregator ', h('code', {}, shortId(agg)), ' · signature verified'));
  }
  const conflicts = p.conflicts && typeof p.conflicts === 'object' ? Object.keys(p.conflicts) : [];
  if (conflicts.length)
    art.append(h('p', { class: 'note' }, `Concurrent edits kept side by side: ${conflicts.join(', ')}`));
  const slot = h('div', { class: 'reply-slot' });
  const replyBtn = h('button', { type: 'button', class: 'small', 'aria-expanded': 'false' }, 'Reply');
  replyBtn.addEventListener('click', () => {
    if (slot.firstChild) {
      slot.replaceChildren();
      replyBtn.setAttribute('aria-expanded', 'false');
      return;
    }
    replyBtn.setAttribute('aria-expanded', 'true');
    const form = compose({
      replyTo: p.subject,
      initial: author !== state.me ? `@${author} ` : '',
      label: `Reply to ${knownName(author) || shortId(author)}`,
      onPosted: (r) => {
        slot.replaceChildren();
        replyBtn.setAttribute('aria-expanded', 'false');
        replyBtn.focus();
        if (onReply) onReply(r);
      },
    });
    slot.append(form);
    form.querySelector('textarea').focus();
  });
  art.append(h('footer', { class: 'post-actions' },
    replyBtn,
    h('a', { class: 'button small', href: route.thread(p.subject) }, 'Thread')));
  art.append(slot);
  return art;
}

/** A list of posts kept sorted newest first, keyed by subject. */
export class PostList {
  constructor({ label, oldestFirst = false, onReply } = {}) {
    this.el = h('ol', { class: 'posts', 'aria-label': label });
    this.items = new Map();
    this.oldestFirst = oldestFirst;
    this.onReply = onReply;
  }

  has(subject) { return this.items.has(subject); }
  get size() { return this.items.size; }

  /** Adds or replaces a post, in time order. */
  upsert(p, { fresh = false } = {}) {
    if (!p || typeof p.subject !== 'string') return;
    const li = h('li', {}, renderPost(p, { onReply: this.onReply }));
    if (fresh) li.classList.add('fresh');
    li.dataset.time = String(postTime(p));
    const old = this.items.get(p.subject);
    if (old) old.li.remove();
    this.items.set(p.subject, { p, li });
    const t = postTime(p);
    const before = [...this.el.children].find((c) => {
      const ct = Number(c.dataset.time);
      return this.oldestFirst ? ct > t : ct < t;
    });
    this.el.insertBefore(li, before || null);
  }

  remove(subject) {
    const old = this.items.get(subject);
    if (!old) return;
    old.li.remove();
    this.items.delete(subject);
  }

  oldestTime() {
    let t = Infinity;
    for (const { p } of this.items.values()) t = Math.min(t, postTime(p));
    return t;
  }
}

/** The compose form: text with #tags and @mentions; `replyTo` makes it a reply. */
export function compose({ replyTo, initial = '', label = 'Write a status', onPosted } = {}) {
  const id = `compose-${Math.random().toString(36).slice(2, 8)}`;
  const ta = h('textarea', { id, name: 'text', rows: 3, maxlength: 5000, required: true,
    placeholder: replyTo ? 'Your reply' : 'What’s on your mind? Use #tags and @mentions' });
  ta.value = initial;
  const suggest = h('div', { class: 'suggest', role: 'group', 'aria-label': 'Mention suggestions', hidden: true });
  const count = h('span', { class: 'count', 'aria-hidden': 'true' });
  const btn = h('button', { type: 'submit', class: 'primary' }, replyTo ? 'Reply' : 'Post');
  const form = h('form', { class: 'compose', 'aria-label': label },
    h('label', { for: id }, label), ta, suggest,
    h('div', { class: 'compose-row' }, h('span', { class: 'hint' }, '#tag · @name · Ctrl+Enter posts'), count, btn));

  const update = () => {
    count.textContent = ta.value.length ? String(ta.value.length) : '';
    showSuggestions();
  };
  function mentionToken() {
    const upto = ta.value.slice(0, ta.selectionStart);
    const m = /(^|\s)@([^\s@]*)$/.exec(upto);
    return m ? { start: upto.length - m[2].length - 1, q: m[2].toLowerCase() } : null;
  }
  function showSuggestions() {
    const tok = mentionToken();
    suggest.replaceChildren();
    if (!tok) { suggest.hidden = true; return; }
    const people = knownPeople()
      .map((pid) => ({ pid, name: knownName(pid) }))
      .filter(({ pid, name }) => !tok.q || name.toLowerCase().includes(tok.q) || pid.toLowerCase().startsWith(tok.q))
      .slice(0, 6);
    for (const { pid, name } of people) {
      suggest.append(h('button', { type: 'button', class: 'small', title: pid, onclick: () => {
        const end = ta.selectionStart;
        ta.value = `${ta.value.slice(0, tok.start)}@${pid} ${ta.value.slice(end)}`;
        const caret = tok.start + pid.length + 2;
        ta.focus();
        ta.setSelectionRange(caret, caret);
        update();
      } }, `@${name || shortId(pid)}`));
    }
    suggest.hidden = people.length === 0;
  }
  ta.addEventListener('input', update);
  ta.addEventListener('click', showSuggestions);
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = ta.value.trim();
    if (!text) { toast('Write something first.', 'error'); return; }
    btn.disabled = true;
    try {
      const r = await api.post(text, replyTo);
      ta.value = '';
      update();
      toast(replyTo ? 'Reply posted.' : 'Posted.');
      if (onPosted) onPosted(r);
    } catch (err) {
      toast(`Could not post: ${err.message}`, 'error');
    } finally {
      btn.disabled = false;
    }
  });
  update();
  return form;
}
