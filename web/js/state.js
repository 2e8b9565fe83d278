// What the page knows about the node and the people around it: this
// node's id, profile names (fetched once per id, refreshed on change
// events) and the set of followed ids.

import { api, ApiError } from './api.js';

export const state = {
  me: '',
  followed: new Set(),
  /** id -> {name, bio, avatar} or null when the node holds no profile. */
  profiles: new Map(),
};

const loading = new Map();

/** The profile of `id` (cached); null when there is none. */
export function profile(id, { fresh = false } = {}) {
  if (!fresh && state.profiles.has(id)) return Promise.resolve(state.profiles.get(id));
  if (!fresh && loading.has(id)) return loading.get(id);
  const p = api.doc(`${id}/profile`)
    .then((d) => {
      const doc = d && d.doc ? d.doc : {};
      const str = (v) => (typeof v === 'string' ? v : '');
      return { name: str(doc.name).trim(), bio: str(doc.bio), avatar: str(doc.avatar), raw: d };
    })
    .catch((e) => {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    })
    .then((p) => {
      state.profiles.set(id, p);
      loading.delete(id);
      updateNames(id);
      return p;
    }, (e) => {
      loading.delete(id);
      throw e;
    });
  loading.set(id, p);
  return p;
}

export function knownName(id) {
  const p = state.profiles.get(id);
  return p && p.name ? p.name : '';
}

/** Every element showing `id`'s name (data-name-of) gets the current one. */
export function updateNames(id) {
  const name = knownName(id);
  for (const el of document.querySelectorAll(`[data-name-of="${CSS.escape(id)}"]`)) {
    const prefix = el.dataset.prefix || '';
    el.textContent = prefix + (name || el.dataset.fallback || '');
    el.dataset.named = name ? '1' : '0';
  }
}

export async function refreshFollowed() {
  try {
    const r = await api.peers();
    state.followed = new Set((r.peers || []).filter((p) => p.followed).map((p) => p.id));
  } catch {
    // Keep what we had; the peers view shows the error.
  }
  return state.followed;
}

/** Known people for mention suggestions: followed ids and me. */
export function knownPeople() {
  const ids = new Set([...state.followed, ...state.profiles.keys()]);
  return [...ids].filter((id) => id && id !== state.me);
}
