// The views. Each returns {el, title} and, for live updates, any of
// onPost(post | null, subject), onPeer(event), onReconnect(), dispose().

import { api, ApiError, authorOf } from './api.js';
import { h, clear, shortId, formatBytes, toast, copyText } from './dom.js';
import { state, profile, knownName, refreshFollowed, updateNames } from './state.js';
import { PostList, compose, renderPost, nameEl, postTime, route } from './posts.js';

const PAGE = 20;

function heading(text) {
  return h('h1', { tabindex: '-1' }, text);
}

function errorBox(e) {
  return h('p', { class: 'error', role: 'alert' }, e instanceof Error ? e.message : String(e));
}

/** A 404 from a route this node does not have (an older node), as
 *  opposed to a 404 for a missing document. */
function noRoute(e) {
  return e instanceof ApiError && e.status === 404 && /no such route/i.test(e.message);
}

function mentionsMe(p) {
  const doc = (p && p.doc) || {};
  if (authorOf(p.subject) === state.me) return false;
  return (Array.isArray(doc.mentions) && doc.mentions.includes(state.me)) ||
    (typeof doc.reply_to === 'string' && authorOf(doc.reply_to) === state.me);
}

function inFeed(p) {
  const a = authorOf(p.subject);
  return a === state.me || state.followed.has(a);
}

/** Fetches a just-posted status so it shows before its change event. */
async function showPosted(r, list) {
  if (!r || typeof r.subject !== 'string') return;
  try { list.upsert(await api.doc(r.subject, r.topic), { fresh: true }); } catch { /* the event brings it */ }
}

/** Paging for a feed-like list: the node's `next` cursor when it gives one
 *  (exact, even for posts sharing a millisecond), else `before`, else a
 *  growing limit (an older node ignores unknown query parameters). */
function pager(list, fetchPage) {
  let legacy = false;
  let next = null;
  const status = h('p', { class: 'muted', role: 'status' });
  const btn = h('button', { type: 'button', class: 'more' }, 'More');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      const before = list.oldestTime();
      let posts = [];
      if (!legacy && next) {
        const page = await fetchPage({ limit: PAGE, cursor: next });
        posts = page.posts || [];
        next = page.next || null;
      } else if (!legacy && Number.isFinite(before)) {
        posts = (await fetchPage({ limit: PAGE, before })).posts || [];
        if (posts.some((p) => postTime(p) >= before)) legacy = true;
      }
      if (legacy || !Number.isFinite(before)) posts = (await fetchPage({ limit: list.size + PAGE })).posts || [];
      const fresh = posts.filter((p) => !list.has(p.subject));
      fresh.forEach((p) => list.upsert(p));
      if (fresh.length === 0) {
        btn.hidden = true;
        status.textContent = 'No older posts.';
      } else {
        status.textContent = `${fresh.length} older post${fresh.length === 1 ? '' : 's'} loaded.`;
      }
    } catch (e) {
      status.textContent = `Could not load more: ${e.message}`;
    } finally {
      btn.disabled = false;
    }
  });
  const el = h('div', { class: 'pager' }, btn, status);
  return {
    el,
    /** After the first page: its size and the node's cursor for the next. */
    reset(n, cursor = null) {
      next = cursor;
      btn.hidden = n < PAGE;
      status.textContent = n ? '' : 'Nothing here yet.';
    },
  };
}

/** Loads the first page of a paged list (feed, one person's statuses) into
 *  `list` and hands its size and cursor to the pager `more`; a failure
 *  shows in the view's element `el`. */
async function loadFirstPage(list, more, fetchPage, el) {
  try {
    const r = await fetchPage({ limit: PAGE });
    const posts = r.posts || [];
    posts.forEach((p) => list.upsert(p));
    more.reset(posts.length, r.next || null);
  } catch (e) {
    el.append(errorBox(e));
  }
}

// --- feed ------------------------------------------------------------------

export function feedView() {
  const list = new PostList({ label: 'Posts, newest first', onReply: (r) => showPosted(r, list) });
  const fetchPage = (q) => api.feed(q);
  const more = pager(list, fetchPage);
  const el = h('section', { class: 'view' },
    heading('Feed'),
    h('p', { class: 'muted' }, 'Your statuses and those of the people you follow, newest first. New ones appear as they arrive.'),
    compose({ onPosted: (r) => showPosted(r, list) }),
    list.el, more.el);
  const load = () => loadFirstPage(list, more, fetchPage, el);
  load();
  return {
    el, title: 'Feed',
    onPost(p, subject) {
      if (!p) return list.remove(subject);
      if (!inFeed(p)) return;
      if (list.has(p.subject) || list.size < PAGE || postTime(p) >= list.oldestTime())
        list.upsert(p, { fresh: !list.has(p.subject) });
    },
    onReconnect: load,
  };
}

// --- thread ----------------------------------------------------------------

export function threadView(subject) {
  const rootBox = h('div', { class: 'thread-root' });
  const replies = new PostList({ label: 'Replies, oldest first', oldestFirst: true,
    onReply: (r) => showPosted(r, replies) });
  const note = h('p', { class: 'muted' });
  const el = h('section', { class: 'view' }, heading('Thread'), rootBox,
    h('h2', {}, 'Replies'), note, replies.el,
    compose({ replyTo: subject, label: 'Reply to this status', onPosted: (r) => showPosted(r, replies) }));
  const showRoot = (p) => rootBox.replaceChildren(renderPost(p, { onReply: (r) => showPosted(r, replies) }));
  const load = async () => {
    try {
      const t = await api.thread(subject);
      if (t.root) showRoot(t.root);
      (t.replies || []).forEach((p) => replies.upsert(p));
      note.textContent = replies.size ? '' : 'No replies yet.';
    } catch (e) {
      if (!noRoute(e) && !(e instanceof ApiError && e.status === 404)) return rootBox.replaceChildren(errorBox(e));
      try {
        showRoot(await api.doc(subject));
        if (noRoute(e)) note.textContent = 'This node cannot list replies yet; new ones appear here as they arrive.';
        else note.textContent = 'No replies yet.';
      } catch (e2) {
        rootBox.replaceChildren(errorBox(e2 instanceof ApiError && e2.status === 404
          ? 'This node holds no such status (it may be deleted, or from someone you do not follow).' : e2));
      }
    }
  };
  load();
  return {
    el, title: 'Thread',
    onPost(p, s) {
      if (!p) return replies.remove(s);
      if (p.subject === subject) return showRoot(p);
      if (p.doc && p.doc.reply_to === subject) {
        replies.upsert(p, { fresh: !replies.has(p.subject) });
        note.textContent = '';
      }
    },
    onReconnect: load,
  };
}

// --- mentions --------------------------------------------------------------

export function mentionsView() {
  const list = new PostList({ label: 'Mentions and replies, newest first' });
  const note = h('p', { class: 'muted', role: 'status' });
  const el = h('section', { class: 'view' }, heading('Mentions'),
    h('p', { class: 'muted' }, 'Statuses that mention you, and replies to yours.'), note, list.el);
  const load = async () => {
    try {
      let posts;
      try {
        posts = (await api.notifications(50)).posts || [];
      } catch (e) {
        if (!noRoute(e)) throw e;
        // An older node: look through the feed instead.
        posts = ((await api.feed({ limit: 200 })).posts || []).filter(mentionsMe);
      }
      posts.forEach((p) => list.upsert(p));
      note.textContent = list.size ? '' : 'No mentions yet.';
    } catch (e) {
      el.append(errorBox(e));
    }
  };
  load();
  return {
    el, title: 'Mentions',
    onPost(p, s) {
      if (!p) return list.remove(s);
      if (mentionsMe(p)) { list.upsert(p, { fresh: !list.has(p.subject) }); note.textContent = ''; }
    },
    onReconnect: load,
  };
}

// --- tags ------------------------------------------------------------------

export function tagView(tag) {
  const input = h('input', { id: 'tag-q', name: 'tag', type: 'text', value: tag || '', autocomplete: 'off',
    pattern: '#?[^\\s#]+', placeholder: 'kith' });
  const form = h('form', { class: 'inline-form', role: 'search' },
    h('label', { for: 'tag-q' }, 'Tag'), input, h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = input.value.trim().replace(/^#/, '');
    if (t) location.hash = route.tag(t.replace(/[A-Z]/g, (c) => c.toLowerCase()));
  });
  const list = new PostList({ label: tag ? `Posts tagged #${tag}` : 'Posts' });
  const note = h('p', { class: 'muted', role: 'status' });
  const el = h('section', { class: 'view' }, heading(tag ? `#${tag}` : 'Tags'), form, note, list.el);
  const load = async () => {
    if (!tag) { note.textContent = 'Type a tag to see the statuses carrying it.'; return; }
    try {
      ((await api.tag(tag, 50)).posts || []).forEach((p) => list.upsert(p));
      note.textContent = list.size ? '' : `No statuses with #${tag} yet.`;
    } catch (e) {
      el.append(errorBox(e));
    }
  };
  load();
  return {
    el, title: tag ? `#${tag}` : 'Tags',
    onPost(p, s) {
      if (!p) return list.remove(s);
      if (tag && p.doc && Array.isArray(p.doc.tags) && p.doc.tags.includes(tag)) {
        list.upsert(p, { fresh: !list.has(p.subject) });
        note.textContent = '';
      }
    },
    onReconnect: load,
  };
}

// --- people: follow and unfollow --------------------------------------------

function followButton(id, following, after) {
  const btn = h('button', { type: 'button', class: following ? '' : 'primary' }, following ? 'Unfollow' : 'Follow');
  btn.addEventListener('click', async () => {
    btn.disabled = true;
    try {
      if (following) await api.unfollow(id); else await api.follow(id);
      toast(following ? 'Unfollowed.' : 'Following.');
      await refreshFollowed();
      if (after) after();
    } catch (e) {
      toast(`Could not ${following ? 'unfollow' : 'follow'}: ${e.message}`, 'error');
      btn.disabled = false;
    }
  });
  return btn;
}

export function peopleView() {
  const idIn = h('input', { id: 'follow-id', name: 'id', type: 'text', required: true, autocomplete: 'off',
    spellcheck: 'false', placeholder: 'k…' });
  const addrIn = h('input', { id: 'follow-address', name: 'address', type: 'text', autocomplete: 'off',
    spellcheck: 'false', placeholder: 'host:port (optional)' });
  const form = h('form', { class: 'card stack', 'aria-label': 'Follow someone' },
    h('h2', {}, 'Follow someone'),
    h('label', { for: 'follow-id' }, 'Their id (they get it from kith id or from this page’s Copy id)'), idIn,
    h('label', { for: 'follow-address' }, 'Where their node listens, if you know it'), addrIn,
    h('div', {}, h('button', { type: 'submit', class: 'primary' }, 'Follow')));
  const list = h('ul', { class: 'people', 'aria-label': 'People you follow' });
  const el = h('section', { class: 'view' }, heading('People'), form, h('h2', {}, 'You follow'), list);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = idIn.value.trim().replace(/^@/, '');
    const address = addrIn.value.trim();
    try {
      await api.follow(id, address || undefined);
      toast('Following.');
      idIn.value = '';
      addrIn.value = '';
      await refreshFollowed();
      render();
    } catch (err) {
      toast(`Could not follow: ${err.message}`, 'error');
    }
  });
  let peers = [];
  const render = async () => {
    try {
      peers = ((await api.peers()).peers || []).filter((p) => p.followed);
    } catch (e) {
      list.replaceChildren(h('li', {}, errorBox(e)));
      return;
    }
    clear(list);
    if (!peers.length) list.append(h('li', { class: 'muted' }, 'Nobody yet.'));
    for (const p of peers) {
      list.append(h('li', { class: 'person', dataset: { id: p.id } },
        nameEl(p.id, { tag: 'a', cls: 'author', href: route.user(p.id) }),
        h('code', { class: 'id', title: p.id }, shortId(p.id)),
        h('span', { class: `state state-${p.state}` }, p.state || ''),
        followButton(p.id, true, render)));
    }
  };
  render();
  return { el, title: 'People', onPeer: render, onReconnect: render };
}

// --- one person ---------------------------------------------------------------

export function userView(id) {
  const head = h('div', { class: 'card profile-card' });
  const list = new PostList({ label: 'Their statuses, newest first' });
  const fetchPage = (q) => api.feed({ ...q, author: id });
  const more = pager(list, fetchPage);
  const el = h('section', { class: 'view' }, heading(knownName(id) || shortId(id)), head, list.el, more.el);
  el.querySelector('h1').dataset.nameOf = id;
  el.querySelector('h1').dataset.fallback = shortId(id);
  const renderHead = async () => {
    let p = null;
    try { p = await profile(id, { fresh: true }); } catch { p = null; }
    const copy = h('button', { type: 'button', class: 'small' }, 'Copy id');
    copy.addEventListener('click', async () => toast((await copyText(id)) ? 'Id copied.' : 'Select the id and copy it.'));
    const none = id === state.me ? 'You have not written a profile yet.' : 'No profile known here (follow them to get it).';
    clear(head);
    head.append(h('div', {},
      h('p', { class: 'bio' }, p && p.bio ? p.bio : (p ? 'No bio.' : none)),
      p && p.avatar && !p.avatar.startsWith('data:')
        ? h('p', { class: 'muted' }, 'Avatar: ', h('span', { class: 'url' }, p.avatar), ' (not loaded: this page fetches nothing from other sites)')
        : null,
      h('p', {}, h('code', { class: 'id full' }, id), ' ', copy),
      id === state.me ? h('p', {}, h('a', { href: '#/profile' }, 'Edit your profile'))
        : followButton(id, state.followed.has(id), renderHead)));
  };
  const load = () => loadFirstPage(list, more, fetchPage, el);
  renderHead();
  load();
  return {
    el, title: knownName(id) || shortId(id),
    onPost(p, s) {
      if (!p) return list.remove(s);
      if (authorOf(p.subject) === id) list.upsert(p, { fresh: !list.has(p.subject) });
    },
    onReconnect() { renderHead(); load(); },
  };
}

// --- peers and sync ----------------------------------------------------------

function table(caption, cols, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, cols.map(([label]) => h('th', { scope: 'col' }, label)))),
      h('tbody', {}, rows.length
        ? rows.map((r) => h('tr', {}, cols.map(([, f]) => h('td', {}, f(r)))))
        : h('tr', {}, h('td', { colspan: cols.length, class: 'muted' }, 'None.')))));
}

/** A count, whether the node sends a number or the list itself. */
function countOf(v) {
  return Array.isArray(v) ? v.length : plain(v);
}

function topicList(p) {
  const list = (v) => (Array.isArray(v) ? v.map(shortId).join(', ') : '');
  return `pulling: ${list(p.pulling) || '—'}; serving: ${list(p.serving) || '—'}`;
}

function plain(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function peersView() {
  const body = h('div', { class: 'peers-body' });
  const updated = h('p', { class: 'muted' });
  const refresh = h('button', { type: 'button', class: 'small' }, 'Refresh');
  const el = h('section', { class: 'view wide' }, heading('Peers and sync'),
    h('p', {}, refresh, ' ', updated), body);
  let busy = false;
  const load = async () => {
    if (busy) return;
    busy = true;
    try {
      const [peers, topics, relays] = await Promise.all([
        api.peers(), api.topics(), api.relays().catch((e) => ({ error: e.message }))]);
      const ps = peers.peers || [];
      const connected = ps.filter((p) => p.state === 'connected').length;
      body.replaceChildren(
        h('p', { class: 'summary' }, `${connected} of ${ps.length} peer${ps.length === 1 ? '' : 's'} connected · ${(topics.topics || []).length} topics`),
        table('Peers', [
          ['Who', (p) => h('span', {}, nameEl(p.id, { tag: 'a', cls: 'author', href: route.user(p.id) }), ' ', h('code', { class: 'id', title: p.id }, shortId(p.id)))],
          ['State', (p) => h('span', { class: `state state-${p.state}` }, plain(p.state))],
          ['Address', (p) => plain(p.address)],
          ['Followed', (p) => (p.followed ? 'yes' : 'no')],
          ['Pulling / serving', (p) => h('span', { title: topicList(p) }, `${countOf(p.pulling)} / ${countOf(p.serving)}`)],
          ['In', (p) => formatBytes(p.bytes_in)],
          ['Out', (p) => formatBytes(p.bytes_out)],
          ['Entries received', (p) => plain(p.entries_received)],
          ['Last error', (p) => h('span', { class: p.last_error ? 'error-text' : '' }, plain(p.last_error))],
        ], ps),
        table('Topics', [
          ['Topic', (t) => h('code', { class: 'id', title: t.id }, shortId(t.id))],
          ['Name', (t) => (/^feed\/[^/]+$/.test(t.id)
            ? h('span', {}, 'feed of ', nameEl(t.id.slice(5))) : plain(t.name))],
          ['Writes', (t) => plain(t.writes)],
          ['Subscribers', (t) => plain(t.subscribers)],
          ['Members', (t) => plain(t.members)],
          ['Kept headers', (t) => plain(t.kept_headers)],
        ], topics.topics || []),
        relaysTable(relays));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    } catch (e) {
      body.replaceChildren(errorBox(e));
    } finally {
      busy = false;
    }
  };
  refresh.addEventListener('click', load);
  load();
  const timer = setInterval(load, 5000);
  let pending = 0;
  return {
    el, title: 'Peers',
    onPeer() { clearTimeout(pending); pending = setTimeout(load, 300); },
    onReconnect: load,
    dispose() { clearInterval(timer); clearTimeout(pending); },
  };
}

/** The relays' shape belongs to the node; show each relay's fields as they come. */
function relaysTable(r) {
  if (r.error) return h('p', { class: 'muted' }, `Relays: ${r.error}`);
  const rows = Array.isArray(r.relays) ? r.relays : [];
  const keys = [...new Set(rows.flatMap((x) => (x && typeof x === 'object' ? Object.keys(x) : [])))].slice(0, 10);
  return table('Relays', keys.map((k) => [k.replace(/_/g, ' '), (x) => plain(x[k])]), rows);
}

// --- my profile ----------------------------------------------------------------

export function profileView() {
  const field = (id, label, input) => h('div', { class: 'field' }, h('label', { for: id }, label), input);
  const name = h('input', { id: 'p-name', name: 'name', type: 'text', maxlength: 80, autocomplete: 'nickname' });
  const bio = h('textarea', { id: 'p-bio', name: 'bio', rows: 3, maxlength: 1000 });
  const avatar = h('input', { id: 'p-avatar', name: 'avatar', type: 'url', autocomplete: 'off',
    placeholder: 'https://… or data:image/png;base64,…' });
  const conflicts = h('div', { role: 'status' });
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save profile');
  const form = h('form', { class: 'card stack', 'aria-label': 'Your profile' },
    field('p-name', 'Name', name), field('p-bio', 'Bio', bio),
    field('p-avatar', 'Avatar URL', avatar),
    h('p', { class: 'hint' }, 'Only data: images are shown; a link to another site is kept but never loaded here.'),
    conflicts, h('div', {}, save));
  const idBox = h('p', {});
  const el = h('section', { class: 'view' }, heading('Your profile'), idBox, form);
  let contexts;
  const load = async () => {
    const copy = h('button', { type: 'button', class: 'small' }, 'Copy id');
    copy.addEventListener('click', async () => toast((await copyText(state.me)) ? 'Id copied.' : 'Select the id and copy it.'));
    idBox.replaceChildren('Your id: ', h('code', { class: 'id full' }, state.me), ' ', copy);
    try {
      const d = await api.doc('me/profile');
      const doc = d.doc || {};
      name.value = typeof doc.name === 'string' ? doc.name : '';
      bio.value = typeof doc.bio === 'string' ? doc.bio : '';
      avatar.value = typeof doc.avatar === 'string' ? doc.avatar : '';
      contexts = d.context;
      const c = d.conflicts && typeof d.conflicts === 'object' ? Object.entries(d.conflicts) : [];
      conflicts.replaceChildren(...c.map(([k, vs]) => h('p', { class: 'note' },
        `Concurrent ${k} values: ${(Array.isArray(vs) ? vs : []).map(plain).join(' · ')}. Saving keeps the one above.`)));
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) form.prepend(errorBox(e));
      contexts = undefined;
    }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    save.disabled = true;
    const doc = { name: name.value.trim(), bio: bio.value.trim(), avatar: avatar.value.trim() };
    try {
      const ctx = contexts && typeof contexts === 'object'
        ? Object.fromEntries(Object.entries(contexts).filter(([k]) => k in doc)) : undefined;
      await api.putDoc('me/profile', doc, ctx && Object.keys(ctx).length ? ctx : undefined);
      toast('Profile saved.');
      await profile(state.me, { fresh: true });
      updateNames(state.me);
      await load();
    } catch (err) {
      toast(`Could not save: ${err.message}`, 'error');
    } finally {
      save.disabled = false;
    }
  });
  load();
  return { el, title: 'Profile' };
}

