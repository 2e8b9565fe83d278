// The node's local API (docs/api.md), same origin as this page.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

/** One JSON call. Throws ApiError for a non-2xx answer or no answer. */
export async function call(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', 'the node does not answer (is `kith run` still running?)');
  }
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body);
export const put = (path, body) => call('PUT', path, body);

/** A subject as a path: each '/'-separated part percent-encoded. */
export function subjectPath(subject) {
  return String(subject).split('/').map(encodeURIComponent).join('/');
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The author of a subject: the part before the first '/'. */
export function authorOf(subject) {
  const s = String(subject ?? '');
  const i = s.indexOf('/');
  return i < 0 ? s : s.slice(0, i);
}

export function isStatus(subject) {
  return /^[^/]+\/statuses\//.test(String(subject ?? ''));
}

export const api = {
  status: () => get('/v1/status'),
  peers: () => get('/v1/peers'),
  topics: () => get('/v1/topics'),
  relays: () => get('/v1/relays'),
  follow: (id, address) => post('/v1/follow', address ? { id, address } : { id }),
  unfollow: (id) => post('/v1/unfollow', { id }),
  feed: (opts) => get(`/v1/feed${query(opts)}`),
  tag: (tag, limit) => get(`/v1/tags/${encodeURIComponent(tag)}${query({ limit })}`),
  doc: (subject, topic) => get(`/v1/docs/${subjectPath(subject)}${query({ topic })}`),
  putDoc: (subject, doc, contexts) =>
    put(`/v1/docs/${subjectPath(subject)}`, contexts ? { doc, contexts } : { doc }),
  post: (text, replyTo) => post('/v1/posts', replyTo ? { text, reply_to: replyTo } : { text }),
  thread: (subject) => get(`/v1/thread/${subjectPath(subject)}`),
  notifications: (limit) => get(`/v1/notifications${query({ limit })}`),
};
