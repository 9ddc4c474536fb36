// smsdesk SMS page: sign-in, message list, refresh (single and bulk), send, live updates, a
// message's detail with its status history, and the delivery summary chart.
// Plain JS, no dependencies. Every timer, interval and request belongs to the signed-in session
// and is released when the session ends (sign-out, page hide), so nothing outlives its use.
'use strict';

(() => {
  const KEY_STORAGE = 'smsdesk.apiKey';
  const PAGE_SIZE = 50;
  const AUTO_REFRESH_MS = 5000;
  const FALLBACK_POLL_MS = 10000;
  const INLINE_ERROR_MS = 6000;
  const RELATIVE_TICK_MS = 30000;
  const RECONNECT_MAX_MS = 60000;
  // Live changes re-read the summary (and an open detail) at most this often.
  const LIVE_RELOAD_MS = 1000;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const KEY_REJECTED = 'Your API key is no longer accepted; sign in again.';

  const body = document.body;
  const TERMINAL = new Set((body.dataset.terminal || '').split(' ').filter(Boolean));
  // status -> rank, the service's forward-only order (`MessageStatus::rank`).
  const RANKS = new Map((body.dataset.ranks || '').split(' ').filter(Boolean)
    .map((pair) => { const [status, rank] = pair.split(':'); return [status, Number(rank)]; }));
  const MESSAGE_COOLDOWN_S = Number(body.dataset.messageCooldown) || 60;
  const BULK_COOLDOWN_S = Number(body.dataset.bulkCooldown) || 60;
  const TONES = {
    delivered: 'ok', read: 'ok', received: 'ok',
    sent: 'info', sending: 'info', receiving: 'info',
    failed: 'bad', undelivered: 'bad', canceled: 'bad',
    partially_delivered: 'warn',
  };
  const SOURCES = {
    send: 'Sent', poll: 'Refresh', callback: 'Status callback', inbound: 'Inbound webhook',
    sweep: 'Sweep of Twilio\'s list', timeout: 'Timeout',
  };
  const DIRECTIONS = {
    'inbound': 'Inbound', 'outbound-api': 'Outbound',
    'outbound-reply': 'Outbound reply', 'outbound-call': 'Outbound (call)',
  };

  const $ = (id) => document.getElementById(id);
  const el = {
    signInPanel: $('sign-in-panel'), signIn: $('sign-in'), key: $('api-key'),
    signInError: $('sign-in-error'), demoHint: $('demo-hint'), app: $('app'),
    session: $('session'), live: $('live'), signOut: $('sign-out'),
    sendForm: $('send-form'), sendTo: $('send-to'), sendBody: $('send-body'),
    sendButton: $('send-button'), sendResult: $('send-result'),
    bulkForm: $('bulk-form'), bulkHours: $('bulk-hours'), bulkButton: $('bulk-button'),
    bulkResult: $('bulk-result'), filterStatus: $('filter-status'),
    filterDirection: $('filter-direction'), autoRefresh: $('auto-refresh'), reload: $('reload'),
    list: $('messages'), listError: $('list-error'), empty: $('empty'), loadMore: $('load-more'),
    filterParty: $('filter-party'), filters: $('filters'),
    summaryWindow: $('summary-window'), summaryRate: $('summary-rate'),
    summaryChart: $('summary-chart'), summaryError: $('summary-error'),
    detail: $('detail'), detailTitle: $('detail-title'), detailBody: $('detail-body'),
    detailClose: $('detail-close'),
  };

  /** The signed-in session; everything it starts is recorded here so `end` can stop it. */
  let session = null;

  class ApiFailure extends Error {
    constructor(status, error, retryAfter) {
      super((error && error.message) || `the server answered ${status}`);
      this.status = status;
      this.code = (error && error.code) || 'http_' + status;
      this.field = error && error.field;
      this.retryAfter = retryAfter;
    }
  }

  function newSession(key) {
    return {
      key,
      abort: new AbortController(),
      timeouts: new Set(),
      intervals: new Set(),
      rows: new Map(),          // sid -> { message, li }
      cooldowns: new Map(),     // sid (or '#bulk') -> { until, onTick, onDone }
      cooldownTicker: null,
      cursor: null,
      loading: false,
      // Bumped by every from-scratch list load: a response for an older generation (filters
      // changed twice quickly, a slow auto-refresh) arrives late and must not paint over it.
      listGeneration: 0,
      autoRefresh: null,
      poll: null,
      reconnectDelay: 2000,
      streamLive: false,
      // The id of the last live event received, sent back as Last-Event-ID on reconnect.
      lastEventId: null,
      // Delivery summary: a pending throttled re-read, and the generation of the newest read.
      summaryTimer: null,
      summaryGeneration: 0,
      lastSummary: null,
      // Message detail: the SID shown, what had focus before it opened, its newest read.
      detailSid: null,
      detailOpener: null,
      detailTimer: null,
      detailGeneration: 0,
    };
  }

  function later(s, fn, ms) {
    const id = setTimeout(() => { s.timeouts.delete(id); fn(); }, ms);
    s.timeouts.add(id);
    return id;
  }

  function every(s, fn, ms) {
    const id = setInterval(fn, ms);
    s.intervals.add(id);
    return id;
  }

  function stopEvery(s, id) {
    if (id !== null && id !== undefined) {
      clearInterval(id);
      s.intervals.delete(id);
    }
    return null;
  }

  function endSession() {
    const s = session;
    if (!s) return;
    session = null;
    s.abort.abort();
    s.timeouts.forEach(clearTimeout);
    s.intervals.forEach(clearInterval);
    s.timeouts.clear();
    s.intervals.clear();
    s.cooldowns.clear();
    s.rows.clear();
    if (el.detail.open) el.detail.close();
  }

  async function api(s, method, path, payload) {
    const headers = { Authorization: 'Bearer ' + s.key, Accept: 'application/json' };
    const init = { method, headers, signal: s.abort.signal, cache: 'no-store' };
    if (payload !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(payload);
    }
    const response = await fetch(path, init);
    let json = null;
    try { json = await response.json(); } catch (_) { json = null; }
    if (!response.ok) {
      const error = json && json.error;
      const header = Number(response.headers.get('Retry-After'));
      const retry = (error && error.retryAfterSeconds) || (header > 0 ? header : null);
      throw new ApiFailure(response.status, error, retry);
    }
    return json;
  }

  // ---- formatting -------------------------------------------------------------------------

  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  function relativeTime(iso) {
    const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
    const abs = Math.abs(seconds);
    if (abs < 45) return 'just now';
    if (abs < 2700) return relative.format(Math.round(seconds / 60), 'minute');
    if (abs < 79200) return relative.format(Math.round(seconds / 3600), 'hour');
    return relative.format(Math.round(seconds / 86400), 'day');
  }
  function exactTime(iso) {
    return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  }
  function clockTime(ms) {
    return new Date(ms).toLocaleTimeString(undefined, { timeStyle: 'medium' });
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** A status as people read it: `partially_delivered` → "partially delivered". */
  function statusLabel(status) {
    return status.replace(/_/g, ' ');
  }

  /** A status badge, coloured by its tone. */
  function statusBadge(status) {
    const badge = make('span', 'badge', statusLabel(status));
    badge.dataset.tone = TONES[status] || 'wait';
    return badge;
  }

  // ---- rows -------------------------------------------------------------------------------

  function refreshable(message) {
    return message.direction !== 'inbound' && !TERMINAL.has(message.status);
  }

  function buildRow(s, message) {
    const li = make('li', 'msg');
    li.dataset.sid = message.sid;
    const meta = make('div', 'meta');
    meta.append(
      make('span', 'dir', DIRECTIONS[message.direction] || message.direction),
      make('span', 'parties', `${message.from} → ${message.to}`),
    );
    const time = make('time');
    time.dateTime = message.createdAt;
    time.title = exactTime(message.createdAt);
    time.textContent = relativeTime(message.createdAt);
    meta.append(time);
    // Retention empties old bodies; say so rather than show an empty line.
    const text = message.redactedAt
      ? make('p', 'body redacted', 'redacted')
      : make('p', 'body', message.body);
    if (message.redactedAt) text.title = `Redacted ${exactTime(message.redactedAt)} by retention`;
    const failure = make('p', 'failure');
    const state = make('div', 'state');
    const badge = make('span', 'badge');
    const inlineError = make('span', 'inline-error');
    inlineError.setAttribute('role', 'alert');
    state.append(badge);
    li.append(meta, text, failure, state);
    const row = { message, li, badge, failure, state, inlineError, button: null, errorTimer: null };
    if (message.direction !== 'inbound') {
      const button = make('button', 'refresh');
      button.type = 'button';
      button.setAttribute('aria-label', `Refresh status of message ${message.sid}`);
      button.append(make('span', 'label', 'Refresh'));
      button.addEventListener('click', () => refreshOne(s, row));
      row.button = button;
      state.append(button);
    }
    const history = make('button', 'history secondary', 'History');
    history.type = 'button';
    history.setAttribute('aria-label', `Show details and status history of message ${message.sid}`);
    history.setAttribute('aria-haspopup', 'dialog');
    history.addEventListener('click', () => openDetail(s, row.message.sid, history));
    state.append(history, inlineError);
    // A click anywhere else on the row opens the detail too (text selection excepted).
    li.addEventListener('click', (event) => {
      // The path as dispatched: a button's own handler may have replaced the node clicked.
      const onControl = event.composedPath().some((node) => node instanceof Element && node.matches('button, a'));
      if (onControl || String(window.getSelection() || '')) return;
      openDetail(s, row.message.sid, history);
    });
    paint(s, row, false);
    return row;
  }

  /** Shows the row's message as it is now; `changed` makes the badge pulse once. */
  function paint(s, row, changed) {
    const m = row.message;
    row.li.dataset.status = m.status;
    row.badge.textContent = statusLabel(m.status);
    row.badge.dataset.tone = TONES[m.status] || 'wait';
    if (changed) {
      row.badge.classList.remove('changed');
      void row.badge.offsetWidth;
      row.badge.classList.add('changed');
    }
    row.failure.textContent = '';
    if (m.errorCode || m.errorMessage) {
      const code = make('span', 'code', m.errorCode ? `Error ${m.errorCode}` : 'Error');
      const words = [m.errorReason, m.errorMessage && m.errorMessage !== m.errorReason ? `(Twilio: ${m.errorMessage})` : null]
        .filter(Boolean).join(' ');
      row.failure.append(code, document.createTextNode(words ? ': ' + words : ''));
    }
    if (m.statusReason === 'deliveryUnknown') {
      // Declared stuck: Twilio never reported a final status; a late receipt still shows.
      const note = make('span', 'unknown', 'Delivery unknown');
      note.title = m.deliveryUnknownAt
        ? `No final status ${exactTime(m.deliveryUnknownAt)}; smsdesk stopped asking Twilio`
        : 'No final status; smsdesk stopped asking Twilio';
      if (row.failure.textContent) row.failure.append(document.createTextNode(' · '));
      row.failure.append(note);
    }
    row.li.dataset.reason = m.statusReason || '';
    row.failure.hidden = !row.failure.textContent;
    if (row.button) {
      row.button.hidden = !refreshable(m);
      paintButton(s, row);
    }
  }

  function paintButton(s, row) {
    const button = row.button;
    if (!button) return;
    const cooling = s.cooldowns.get(row.message.sid);
    const busy = button.dataset.busy === 'true';
    button.textContent = '';
    if (busy) {
      const spinner = make('span', 'spinner');
      spinner.setAttribute('aria-hidden', 'true');
      button.append(spinner, make('span', 'label', 'Refreshing…'));
    } else if (cooling) {
      const left = Math.max(1, Math.ceil((cooling.until - Date.now()) / 1000));
      button.append(make('span', 'label', `Wait ${left} s`));
    } else {
      button.append(make('span', 'label', 'Refresh'));
    }
    button.dataset.cooling = cooling ? 'true' : 'false';
    // aria-disabled rather than disabled: the button keeps keyboard focus while it waits.
    button.setAttribute('aria-disabled', busy || cooling ? 'true' : 'false');
    button.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function showInlineError(s, row, text) {
    row.inlineError.textContent = text;
    if (row.errorTimer !== null) {
      clearTimeout(row.errorTimer);
      s.timeouts.delete(row.errorTimer);
    }
    row.errorTimer = later(s, () => { row.inlineError.textContent = ''; row.errorTimer = null; }, INLINE_ERROR_MS);
  }

  /** The number filter as last applied (Enter, change), not as being typed. */
  function appliedParty() {
    return el.filterParty.dataset.applied || '';
  }

  function matchesFilters(message) {
    const status = el.filterStatus.value;
    const direction = el.filterDirection.value;
    const party = appliedParty();
    return (!status || message.status === status) && (!direction || message.direction === direction)
      && (!party || message.to === party || message.from === party);
  }

  /** Adds or updates rows; new ones go to the top (`atTop`) or the bottom (paging). */
  /** Whether `next` ranks below `shown`; an unranked (unknown) status is never behind. */
  function isBehind(next, shown) {
    const nextRank = RANKS.get(next);
    const shownRank = RANKS.get(shown);
    return nextRank !== undefined && shownRank !== undefined && nextRank < shownRank;
  }

  function upsert(s, messages, atTop) {
    const fresh = [];
    for (const message of messages) {
      const row = s.rows.get(message.sid);
      if (row) {
        // A list answer fetched before a live update landed is older than the row: like the
        // service, the page never moves a status backwards.
        if (isBehind(message.status, row.message.status)) continue;
        const changed = row.message.status !== message.status;
        row.message = message;
        paint(s, row, changed);
      } else {
        const created = buildRow(s, message);
        s.rows.set(message.sid, created);
        fresh.push(created.li);
      }
    }
    if (atTop) el.list.prepend(...fresh); else el.list.append(...fresh);
    el.empty.hidden = s.rows.size > 0;
  }

  function applyChange(s, change) {
    const row = s.rows.get(change.sid);
    if (!row) return false;
    const message = Object.assign({}, row.message, {
      status: change.status,
      errorCode: change.errorCode,
      errorMessage: change.errorMessage,
      errorReason: change.errorReason,
      // Any other change clears a stuck message's reason.
      statusReason: change.statusReason || null,
      deliveryUnknownAt: change.statusReason ? new Date().toISOString() : null,
    });
    upsert(s, [message], true);
    return true;
  }

  // ---- cool-downs -------------------------------------------------------------------------

  /** One ticker for every countdown, running only while some countdown does. */
  function startCooldown(s, key, seconds, onTick) {
    s.cooldowns.set(key, { until: Date.now() + seconds * 1000, onTick });
    onTick();
    if (s.cooldownTicker === null) {
      s.cooldownTicker = every(s, () => tickCooldowns(s), 1000);
    }
  }

  function tickCooldowns(s) {
    const now = Date.now();
    for (const [key, entry] of s.cooldowns) {
      if (entry.until <= now) s.cooldowns.delete(key);
      entry.onTick();
    }
    if (s.cooldowns.size === 0) s.cooldownTicker = stopEvery(s, s.cooldownTicker);
  }

  function rowCooldown(s, row, seconds) {
    const sid = row.message.sid;
    startCooldown(s, sid, seconds, () => {
      // The row may have been rebuilt (reload, filters): paint the one shown now. A message no
      // longer listed takes its countdown with it.
      const current = s.rows.get(sid);
      if (current) paintButton(s, current); else s.cooldowns.delete(sid);
    });
  }

  // ---- refresh ----------------------------------------------------------------------------

  function describeFailure(error, what) {
    if (error.status === 429) {
      const seconds = error.retryAfter || MESSAGE_COOLDOWN_S;
      return `${what} was refreshed moments ago; try again in ${seconds} s (at ${clockTime(Date.now() + seconds * 1000)}).`;
    }
    if (error.status === 0 || error.name === 'TypeError') return 'The service could not be reached.';
    return error.message;
  }

  async function refreshOne(s, row) {
    const button = row.button;
    if (!button || button.getAttribute('aria-disabled') === 'true') return;
    button.dataset.busy = 'true';
    paintButton(s, row);
    const sid = row.message.sid;
    try {
      const answer = await api(s, 'POST', `/api/integrations/twilio/messages/refresh-status?messageSid=${encodeURIComponent(sid)}`);
      if (session !== s) return;
      const outcome = answer.outcomes[0];
      button.dataset.busy = 'false';
      applyChange(s, {
        sid, status: outcome.newStatus, errorCode: outcome.errorCode,
        errorMessage: outcome.errorMessage, errorReason: outcome.errorReason || null,
      });
      if (outcome.outcome === 'skipped' && outcome.reason === 'coolingDown') {
        showInlineError(s, row, `Refreshed moments ago; try again in ${outcome.retryAfterSeconds} s.`);
        rowCooldown(s, row, outcome.retryAfterSeconds || MESSAGE_COOLDOWN_S);
      } else {
        if (outcome.outcome === 'failed' || outcome.outcome === 'skipped') {
          showInlineError(s, row, outcome.detail || `Not refreshed (${outcome.reason}).`);
        }
        rowCooldown(s, row, MESSAGE_COOLDOWN_S);
      }
    } catch (error) {
      if (session !== s || error.name === 'AbortError') return;
      button.dataset.busy = 'false';
      if (error.status === 401) return signOut(KEY_REJECTED);
      showInlineError(s, row, describeFailure(error, 'This message'));
      if (error.status === 429) rowCooldown(s, row, error.retryAfter || MESSAGE_COOLDOWN_S);
      else paintButton(s, row);
    }
  }

  function validHours(raw) {
    if (!/^\d{1,3}$/.test(raw)) return null;
    const hours = Number(raw);
    return hours >= 1 && hours <= 168 ? hours : null;
  }

  function bulkButtonState(s) {
    const entry = s.cooldowns.get('#bulk');
    const running = el.bulkButton.dataset.busy === 'true';
    el.bulkButton.textContent = running ? 'Refreshing…'
      : entry ? `Refresh recent (wait ${Math.max(1, Math.ceil((entry.until - Date.now()) / 1000))} s)` : 'Refresh recent';
    el.bulkButton.setAttribute('aria-disabled', running || entry ? 'true' : 'false');
  }

  async function refreshRecent(s) {
    if (el.bulkButton.getAttribute('aria-disabled') === 'true') return;
    const hours = validHours(el.bulkHours.value.trim());
    if (hours === null) {
      el.bulkHours.setAttribute('aria-invalid', 'true');
      showResult(el.bulkResult, 'Hours must be a whole number from 1 to 168.', true);
      el.bulkHours.focus();
      return;
    }
    el.bulkHours.removeAttribute('aria-invalid');
    el.bulkButton.dataset.busy = 'true';
    bulkButtonState(s);
    showResult(el.bulkResult, `Asking Twilio about the last ${hours} h…`, false);
    try {
      const answer = await api(s, 'POST', `/api/integrations/twilio/messages/refresh-status?hours=${hours}`);
      if (session !== s) return;
      for (const outcome of answer.outcomes) {
        applyChange(s, {
          sid: outcome.sid, status: outcome.newStatus, errorCode: outcome.errorCode,
          errorMessage: outcome.errorMessage, errorReason: outcome.errorReason || null,
        });
      }
      const sum = answer.summary;
      el.bulkResult.textContent = '';
      const title = make('p', '', `Last ${answer.windowHours} h: ${sum.candidates} message${sum.candidates === 1 ? '' : 's'} checked in ${sum.durationMs} ms.`);
      const list = make('ul', 'summary');
      list.setAttribute('aria-label', 'Outcomes');
      for (const [label, count] of [['updated', sum.updated], ['unchanged', sum.unchanged], ['failed', sum.failed], ['skipped', sum.skipped], ['Twilio calls', sum.twilioCalls]]) {
        const item = make('li', '', `${count} ${label}`);
        item.dataset.outcome = label;
        list.append(item);
      }
      el.bulkResult.append(title, list);
      startCooldown(s, '#bulk', BULK_COOLDOWN_S, () => bulkButtonState(s));
    } catch (error) {
      if (session !== s || error.name === 'AbortError') return;
      if (error.status === 401) return signOut(KEY_REJECTED);
      showResult(el.bulkResult, describeFailure(error, 'A bulk refresh'), true);
      if (error.status === 429) startCooldown(s, '#bulk', error.retryAfter || BULK_COOLDOWN_S, () => bulkButtonState(s));
    } finally {
      if (session === s) {
        el.bulkButton.dataset.busy = 'false';
        bulkButtonState(s);
      }
    }
  }

  function showResult(node, text, isError) {
    node.textContent = text;
    node.classList.toggle('error', isError);
  }

  // ---- list -------------------------------------------------------------------------------

  function listPath(cursor) {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (el.filterStatus.value) params.set('status', el.filterStatus.value);
    if (el.filterDirection.value) params.set('direction', el.filterDirection.value);
    if (appliedParty()) params.set('party', appliedParty());
    if (cursor) params.set('cursor', cursor);
    return '/api/messages?' + params;
  }

  /** Loads the first page from scratch (`reset`) or merges it into the rows shown. */
  async function loadFirstPage(s, reset) {
    const generation = reset ? ++s.listGeneration : s.listGeneration;
    let page;
    try {
      page = await api(s, 'GET', listPath(null));
    } catch (error) {
      // A load since replaced neither paints nor reports: its answer, or failure, is moot.
      if (generation === s.listGeneration) throw error;
      return;
    }
    if (session !== s || generation !== s.listGeneration) return;
    if (reset) {
      el.list.textContent = '';
      s.rows.clear();
      s.cursor = page.nextCursor;
      el.loadMore.hidden = !page.nextCursor;
    }
    // The page is newest first, and so is a block of rows put on top.
    upsert(s, page.messages, true);
    el.listError.textContent = '';
  }

  async function loadMore(s) {
    if (!s.cursor || s.loading) return;
    s.loading = true;
    const generation = s.listGeneration;
    el.loadMore.textContent = 'Loading…';
    try {
      const page = await api(s, 'GET', listPath(s.cursor));
      if (session !== s || generation !== s.listGeneration) return;
      upsert(s, page.messages, false);
      s.cursor = page.nextCursor;
      el.loadMore.hidden = !page.nextCursor;
    } catch (error) {
      const current = session === s && generation === s.listGeneration;
      if (current && error.name !== 'AbortError') el.listError.textContent = describeFailure(error, 'The list');
    } finally {
      s.loading = false;
      el.loadMore.textContent = 'Load more';
    }
  }

  async function reload(s) {
    el.filterParty.removeAttribute('aria-invalid');
    el.filterParty.dataset.applied = el.filterParty.value.trim();
    try {
      await loadFirstPage(s, true);
    } catch (error) {
      if (session !== s || error.name === 'AbortError') return;
      if (error.status === 401) return signOut(KEY_REJECTED);
      if (error.field === 'party') {
        // The list shown no longer matches the filters: clear it rather than mislead.
        el.filterParty.setAttribute('aria-invalid', 'true');
        el.list.textContent = '';
        s.rows.clear();
        el.loadMore.hidden = true;
        el.empty.hidden = true;
        el.listError.textContent = `Number: ${error.message}`;
        return;
      }
      el.listError.textContent = describeFailure(error, 'The list');
    }
  }

  /** A quiet merge of the first page (auto-refresh, polling fallback). */
  async function merge(s) {
    try {
      await loadFirstPage(s, false);
    } catch (error) {
      if (session === s && error.name !== 'AbortError' && error.status === 401) {
        signOut(KEY_REJECTED);
      }
    }
  }

  async function fetchCreated(s, sid) {
    try {
      const message = await api(s, 'GET', `/api/messages/${encodeURIComponent(sid)}`);
      if (session === s && matchesFilters(message) && !s.rows.has(sid)) upsert(s, [message], true);
    } catch (_) {
      // The next poll or reload shows it.
    }
  }

  // ---- live updates -----------------------------------------------------------------------

  function setLive(state, text) {
    el.live.dataset.state = state;
    el.live.textContent = text;
  }

  function startPolling(s) {
    if (s.poll === null) s.poll = every(s, () => { merge(s); scheduleSummary(s); }, FALLBACK_POLL_MS);
  }

  function handleEvent(s, name, data) {
    if (name === 'ready') {
      s.streamLive = true;
      s.reconnectDelay = 2000;
      s.poll = stopEvery(s, s.poll);
      setLive('live', 'Live');
      // A resumed stream replays what was missed; otherwise changes made while the stream was
      // down are caught up once.
      let ready = {};
      try { ready = JSON.parse(data); } catch (_) { /* an older server: treat as not resumed */ }
      if (!ready.resumed) merge(s);
    } else if (name === 'message') {
      let change;
      try { change = JSON.parse(data); } catch (_) { return; }
      if (!applyChange(s, change) && change.change === 'created') fetchCreated(s, change.sid);
      scheduleSummary(s);
      if (s.detailSid === change.sid) scheduleDetail(s);
    } else if (name === 'resync') {
      merge(s);
      scheduleSummary(s);
      if (s.detailSid) scheduleDetail(s);
    }
  }

  /**
   * Reads `GET /api/messages/events` with fetch so the key travels in a header (EventSource
   * cannot send one), parsing the text/event-stream frames by hand.
   */
  async function stream(s) {
    try {
      const headers = { Authorization: 'Bearer ' + s.key, Accept: 'text/event-stream' };
      // Like EventSource: the server replays what this page missed since its last event.
      if (s.lastEventId) headers['Last-Event-ID'] = s.lastEventId;
      const response = await fetch('/api/messages/events', {
        headers,
        signal: s.abort.signal,
        cache: 'no-store',
      });
      if (response.status === 401) return signOut(KEY_REJECTED);
      if (!response.ok || !response.body) throw new Error('no stream: ' + response.status);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = 'message';
          const data = [];
          for (const line of frame.split('\n')) {
            if (line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') name = text;
            else if (field === 'data') data.push(text);
            else if (field === 'id') s.lastEventId = text;
          }
          if (data.length) handleEvent(s, name, data.join('\n'));
        }
      }
    } catch (error) {
      if (error.name === 'AbortError') return;
    }
    if (session !== s) return;
    // The stream ended or failed: poll meanwhile, and try again later with back-off.
    s.streamLive = false;
    setLive('polling', 'Live updates unavailable; checking every 10 s');
    startPolling(s);
    later(s, () => stream(s), s.reconnectDelay);
    s.reconnectDelay = Math.min(s.reconnectDelay * 2, RECONNECT_MAX_MS);
  }

  // ---- delivery summary ---------------------------------------------------------------------

  /**
   * Runs `load` once `ms` from now, however many times this is asked meanwhile; `slot` names the
   * session field that holds the pending timer.
   */
  function soon(s, slot, load, ms) {
    if (s[slot] !== null) return;
    s[slot] = later(s, () => { s[slot] = null; load(s); }, ms);
  }

  /**
   * Re-reads the summary after live changes: at most once a second for a day's window, less
   * often for longer ones (once every 30 s for 30 days), since each read counts the whole window.
   */
  function scheduleSummary(s) {
    const days = Math.max(1, Number(el.summaryWindow.value) / 24);
    soon(s, 'summaryTimer', loadSummary, LIVE_RELOAD_MS * days);
  }

  async function loadSummary(s) {
    const generation = ++s.summaryGeneration;
    try {
      const summary = await api(s, 'GET', `/api/messages/summary?hours=${encodeURIComponent(el.summaryWindow.value)}`);
      if (session !== s || generation !== s.summaryGeneration) return;
      s.lastSummary = summary;
      drawSummary(summary);
      el.summaryError.textContent = '';
    } catch (error) {
      if (session !== s || generation !== s.summaryGeneration || error.name === 'AbortError') return;
      if (error.status === 401) return signOut(KEY_REJECTED);
      el.summaryError.textContent = describeFailure(error, 'The summary');
    }
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function windowLabel(hours) {
    const option = [...el.summaryWindow.options].find((o) => Number(o.value) === hours);
    return option ? option.textContent.toLowerCase() : `last ${hours} h`;
  }

  /** The rate as a sentence and the counts as horizontal bars (inline SVG). */
  function drawSummary(summary) {
    el.summaryRate.textContent = '';
    el.summaryRate.dataset.rate = summary.deliveryRate === null ? '' : String(summary.deliveryRate);
    if (summary.deliveryRate === null) {
      el.summaryRate.append(`No settled deliveries in the ${windowLabel(summary.windowHours)}`);
    } else {
      const percent = Math.round(summary.deliveryRate * 1000) / 10;
      el.summaryRate.append(`${percent} % delivered`, ' ',
        make('span', 'rate-detail', `(${summary.delivered} of ${summary.settled} settled, ${summary.total} message${summary.total === 1 ? '' : 's'} in the ${windowLabel(summary.windowHours)})`));
    }
    el.summaryChart.textContent = '';
    if (!summary.counts.length) {
      el.summaryChart.append(make('p', 'hint', 'No messages in this window.'));
      return;
    }
    // Drawn in CSS pixels of the space there is (redrawn on resize), so the labels keep their
    // size from a phone to a desktop.
    const rowHeight = 26;
    const width = Math.round(Math.min(640, Math.max(260, el.summaryRate.clientWidth || 520)));
    const labelWidth = width < 420 ? 104 : 150;
    const valueWidth = 48;
    const barRoom = width - labelWidth - valueWidth;
    const most = Math.max(...summary.counts.map((c) => c.count));
    const chart = svg('svg', {
      class: 'chart', width, height: summary.counts.length * rowHeight,
      viewBox: `0 0 ${width} ${summary.counts.length * rowHeight}`,
      role: 'img', 'aria-labelledby': 'summary-chart-title',
    });
    chart.append(svg('title', { id: 'summary-chart-title' },
      'Messages by status: ' + summary.counts.map((c) => `${statusLabel(c.status)} ${c.count}`).join(', ')));
    summary.counts.forEach((entry, index) => {
      const y = index * rowHeight;
      const label = statusLabel(entry.status);
      const bar = Math.max(2, Math.round(barRoom * entry.count / most));
      const group = svg('g', { class: 'bar', 'data-status': entry.status, 'data-count': entry.count, 'data-tone': TONES[entry.status] || 'wait' });
      group.append(
        svg('text', { x: labelWidth - 8, y: y + rowHeight / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, label),
        svg('rect', { x: labelWidth, y: y + 4, width: bar, height: rowHeight - 8, rx: 3 }),
        svg('text', { class: 'value', x: labelWidth + bar + 6, y: y + rowHeight / 2, 'dominant-baseline': 'middle' }, String(entry.count)),
      );
      chart.append(group);
    });
    el.summaryChart.append(chart);
  }

  // ---- message detail -----------------------------------------------------------------------

  function openDetail(s, sid, opener) {
    s.detailSid = sid;
    s.detailOpener = opener || null;
    el.detailTitle.textContent = `Message ${sid}`;
    el.detailBody.textContent = '';
    el.detailBody.append(make('p', 'hint', 'Loading…'));
    if (!el.detail.open) el.detail.showModal();
    el.detailClose.focus();
    loadDetail(s);
  }

  function scheduleDetail(s) {
    soon(s, 'detailTimer', (current) => { if (current.detailSid) loadDetail(current); }, LIVE_RELOAD_MS);
  }

  async function loadDetail(s) {
    const sid = s.detailSid;
    const generation = ++s.detailGeneration;
    try {
      const message = await api(s, 'GET', `/api/messages/${encodeURIComponent(sid)}`);
      if (session !== s || generation !== s.detailGeneration || s.detailSid !== sid) return;
      renderDetail(message);
    } catch (error) {
      if (session !== s || generation !== s.detailGeneration || error.name === 'AbortError') return;
      if (error.status === 401) return signOut(KEY_REJECTED);
      el.detailBody.textContent = '';
      el.detailBody.append(make('p', 'error', describeFailure(error, 'This message')));
    }
  }

  function fact(list, term, value) {
    if (value === null || value === undefined || value === '') return;
    list.append(make('dt', '', term), make('dd', '', String(value)));
  }

  function renderDetail(m) {
    el.detailTitle.textContent = `${DIRECTIONS[m.direction] || m.direction}: ${m.from} → ${m.to}`;
    el.detail.dataset.sid = m.sid;
    const facts = make('dl', 'facts');
    facts.append(make('dt', '', 'Status'));
    const statusValue = make('dd');
    statusValue.append(statusBadge(m.status));
    facts.append(statusValue);
    fact(facts, 'Message SID', m.sid);
    fact(facts, 'Body', m.redactedAt ? 'redacted' : m.body);
    fact(facts, 'Reference', m.reference);
    fact(facts, 'Created', exactTime(m.createdAt));
    if (m.lastRefreshedAt) fact(facts, 'Last asked Twilio', exactTime(m.lastRefreshedAt));
    if (m.errorCode) fact(facts, 'Error', `${m.errorCode}: ${m.errorReason || m.errorMessage || ''}`);
    if (m.numSegments) fact(facts, 'Segments', m.numSegments);
    if (m.price) fact(facts, 'Price', `${m.price} ${m.priceUnit || ''}`.trim());
    if (m.statusReason === 'deliveryUnknown') fact(facts, 'Delivery', 'unknown: Twilio never reported a final status');

    const heading = make('h3', 'timeline-title', 'Status history');
    heading.id = 'timeline-title';
    const timeline = make('ol', 'timeline');
    timeline.setAttribute('aria-labelledby', 'timeline-title');
    for (const event of m.history) {
      const item = make('li');
      item.dataset.applied = String(event.applied);
      item.dataset.source = event.source;
      item.dataset.status = event.status;
      const when = make('time', 'when', exactTime(event.observedAt));
      when.dateTime = event.observedAt;
      const what = make('div', 'what');
      what.append(
        statusBadge(event.status),
        make('span', 'source', SOURCES[event.source] || event.source),
        make('span', 'verdict', event.applied ? 'applied' : 'ignored: a duplicate or older than the status shown'),
      );
      item.append(when, what);
      if (event.errorCode || event.errorMessage) {
        const words = [event.errorReason, event.errorMessage && event.errorMessage !== event.errorReason ? `(Twilio: ${event.errorMessage})` : null]
          .filter(Boolean).join(' ');
        const title = event.errorCode ? `Error ${event.errorCode}` : 'Error';
        item.append(make('p', 'reason', words ? `${title}: ${words}` : title));
      }
      timeline.append(item);
    }
    el.detailBody.textContent = '';
    el.detailBody.append(facts, heading, timeline);
  }

  function closeDetail() {
    if (el.detail.open) el.detail.close();
  }

  // ---- session ----------------------------------------------------------------------------

  async function signIn(key) {
    endSession();
    const s = newSession(key);
    session = s;
    el.signInError.textContent = '';
    try {
      await loadFirstPage(s, true);
    } catch (error) {
      if (session !== s) return;
      endSession();
      sessionStorage.removeItem(KEY_STORAGE);
      el.signInError.textContent = error.status === 401
        ? 'That API key is not valid.'
        : describeFailure(error, 'The list');
      showSignIn();
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    el.signInPanel.hidden = true;
    el.app.hidden = false;
    el.session.hidden = false;
    setLive('connecting', 'Connecting…');
    every(s, () => {
      for (const time of el.list.querySelectorAll('time')) time.textContent = relativeTime(time.dateTime);
    }, RELATIVE_TICK_MS);
    if (el.autoRefresh.checked) setAutoRefresh(s, true);
    loadSummary(s);
    stream(s);
  }

  function showSignIn() {
    el.app.hidden = true;
    el.session.hidden = true;
    el.signInPanel.hidden = false;
    el.list.textContent = '';
    el.key.focus();
  }

  function signOut(reason) {
    endSession();
    sessionStorage.removeItem(KEY_STORAGE);
    if (!el.key.dataset.demo) el.key.value = '';
    el.signInError.textContent = reason || '';
    el.bulkResult.textContent = '';
    el.sendResult.textContent = '';
    el.summaryRate.textContent = '';
    delete el.summaryRate.dataset.rate;
    el.summaryChart.textContent = '';
    el.summaryError.textContent = '';
    // Nothing of the last team's messages stays in the page.
    el.detailTitle.textContent = 'Message';
    el.detailBody.textContent = '';
    delete el.detail.dataset.sid;
    showSignIn();
  }

  function setAutoRefresh(s, on) {
    s.autoRefresh = stopEvery(s, s.autoRefresh);
    if (on) s.autoRefresh = every(s, () => merge(s), AUTO_REFRESH_MS);
  }

  async function send(s) {
    const to = el.sendTo.value.trim();
    const text = el.sendBody.value;
    el.sendTo.toggleAttribute('aria-invalid', false);
    el.sendBody.toggleAttribute('aria-invalid', false);
    if (!/^\+[1-9]\d{6,14}$/.test(to)) {
      el.sendTo.setAttribute('aria-invalid', 'true');
      showResult(el.sendResult, 'Enter the number in international format, e.g. +14155550100.', true);
      el.sendTo.focus();
      return;
    }
    if (!text.trim()) {
      el.sendBody.setAttribute('aria-invalid', 'true');
      showResult(el.sendResult, 'Write a message first.', true);
      el.sendBody.focus();
      return;
    }
    el.sendButton.setAttribute('aria-disabled', 'true');
    showResult(el.sendResult, 'Sending…', false);
    try {
      const message = await api(s, 'POST', '/api/integrations/twilio/sms/send', { to, body: text });
      if (session !== s) return;
      if (matchesFilters(message)) upsert(s, [message], true);
      scheduleSummary(s);
      showResult(el.sendResult, `Sent to ${message.to}: ${message.status}.`, false);
      el.sendBody.value = '';
    } catch (error) {
      if (session !== s || error.name === 'AbortError') return;
      if (error.status === 401) return signOut(KEY_REJECTED);
      if (error.field === 'to') el.sendTo.setAttribute('aria-invalid', 'true');
      if (error.field === 'body') el.sendBody.setAttribute('aria-invalid', 'true');
      showResult(el.sendResult, describeFailure(error, 'Sending'), true);
    } finally {
      el.sendButton.setAttribute('aria-disabled', 'false');
    }
  }

  // ---- wiring -----------------------------------------------------------------------------

  el.signIn.addEventListener('submit', (event) => {
    event.preventDefault();
    const key = el.key.value.trim();
    if (!key) {
      el.signInError.textContent = 'Enter your API key.';
      el.key.focus();
      return;
    }
    signIn(key);
  });
  el.signOut.addEventListener('click', () => signOut(''));
  el.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (session && el.sendButton.getAttribute('aria-disabled') !== 'true') send(session);
  });
  el.bulkForm.addEventListener('submit', (event) => {
    event.preventDefault();
    if (session) refreshRecent(session);
  });
  el.bulkHours.addEventListener('input', () => el.bulkHours.removeAttribute('aria-invalid'));
  for (const select of [el.filterStatus, el.filterDirection]) {
    select.addEventListener('change', () => { if (session) reload(session); });
  }
  el.reload.addEventListener('click', () => { if (session) reload(session); });
  // The number filter applies on Enter, on clearing, or when it loses focus with a new value;
  // not on every key, and once however many of those events one edit fires.
  const applyParty = () => {
    if (session && el.filterParty.value.trim() !== appliedParty()) reload(session);
  };
  el.filters.addEventListener('submit', (event) => { event.preventDefault(); applyParty(); });
  for (const name of ['change', 'search']) el.filterParty.addEventListener(name, applyParty);
  el.summaryWindow.addEventListener('change', () => { if (session) loadSummary(session); });
  window.addEventListener('resize', () => { if (session && session.lastSummary) drawSummary(session.lastSummary); });
  el.detailClose.addEventListener('click', closeDetail);
  // Closing by Escape or the button: forget the message and give focus back to its row.
  el.detail.addEventListener('close', () => {
    const s = session;
    if (!s) return;
    const opener = s.detailOpener;
    const sid = s.detailSid;
    s.detailSid = null;
    s.detailOpener = null;
    s.detailGeneration++;
    // The row may have been rebuilt meanwhile (a reload): focus the same message's button.
    const target = opener && opener.isConnected ? opener
      : sid && s.rows.get(sid) ? s.rows.get(sid).li.querySelector('button.history') : null;
    if (target) target.focus();
  });
  // A click on the backdrop (outside the dialog's box) closes it as well.
  el.detail.addEventListener('click', (event) => { if (event.target === el.detail) closeDetail(); });
  el.loadMore.addEventListener('click', () => { if (session) loadMore(session); });
  el.autoRefresh.addEventListener('change', () => { if (session) setAutoRefresh(session, el.autoRefresh.checked); });

  // Leaving the page (or entering the back-forward cache) ends the session's work; coming back
  // starts it again with the key kept for the tab.
  window.addEventListener('pagehide', endSession);
  window.addEventListener('pageshow', (event) => {
    const kept = sessionStorage.getItem(KEY_STORAGE);
    if (event.persisted && kept && !session) signIn(kept);
  });

  if (el.key.dataset.demo) el.demoHint.hidden = false;
  const kept = sessionStorage.getItem(KEY_STORAGE);
  if (kept) signIn(kept); else el.key.focus();
})();
