// The Hookflow dashboard: workflows, runs and one run's timeline, read from
// the runs API with the API key pasted at sign-in.
//
// Event data and step outputs come from strangers, so nothing here builds
// HTML from text: every value goes in through textContent (el() below), and
// the Content-Security-Policy forbids inline script and style besides.
'use strict';

(() => {
  // Behind an API Gateway stage (`/prod/`) the API lives under that prefix.
  const base = location.pathname.replace(/\/+$/, '');
  const store = window.sessionStorage;
  const app = document.getElementById('app');
  const nav = document.getElementById('nav');

  const session = () => ({ key: store.getItem('hookflow.key') || '', ws: store.getItem('hookflow.ws') || '' });

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === 'class') node.className = value;
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // replaceChildren() would print a null as the text "null".
  function fill(node, ...children) {
    node.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined));
  }

  function show(...nodes) {
    fill(app, ...nodes);
  }

  async function api(method, path, body, headers) {
    const { key, ws } = session();
    const sent = Object.assign({}, headers || {});
    if (key) sent.Authorization = 'Bearer ' + key;
    if (body !== undefined) sent['Content-Type'] = 'application/json';
    const response = await fetch(`${base}/v1/workspaces/${encodeURIComponent(ws)}${path}`, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
    const text = await response.text();
    let answer = null;
    try { answer = text ? JSON.parse(text) : null; } catch (_) { answer = null; }
    if (!response.ok) {
      const error = answer && answer.error;
      throw new Error(error ? `${error.code}: ${error.message}` : `HTTP ${response.status}`);
    }
    return answer;
  }

  const badge = (status) => el('span', { class: `badge ${status}`, 'data-test': 'status' }, status || '-');
  const when = (time) => (time ? new Date(time).toISOString().replace('T', ' ').replace('Z', '') : '-');
  const ms = (value) => (value === null || value === undefined ? '-' : value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(1)} s`);
  const duration = (start, end) => (start && end ? ms(new Date(end) - new Date(start)) : '-');
  const pretty = (value) => JSON.stringify(value, null, 2);
  const query = (params) => Object.entries(params).filter(([, v]) => v).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');

  function failure(error) {
    return el('p', { class: 'error', 'data-test': 'error' }, String(error.message || error));
  }

  function renderNav() {
    const { ws } = session();
    fill(nav,
      el('a', { href: '#/workflows' }, 'Workflows'),
      el('a', { href: '#/runs' }, 'Runs'),
      el('a', { href: '#/runs?status=failed&window=24h', 'data-test': 'failed-link' }, 'Failed runs'),
      ws ? el('span', { class: 'who' }, `workspace ${ws}`) : null,
      ws ? el('button', { onclick: signOut, 'data-test': 'sign-out' }, 'Sign out') : null,
    );
  }

  function signOut() {
    store.removeItem('hookflow.key');
    store.removeItem('hookflow.ws');
    location.hash = '#/signin';
  }

  function signIn() {
    const workspace = el('input', { name: 'workspace', required: '', autocomplete: 'off', 'data-test': 'workspace' });
    const key = el('input', { name: 'key', type: 'password', autocomplete: 'off', placeholder: 'hfk_…', 'data-test': 'key' });
    const form = el('form', { class: 'signin', 'data-test': 'signin' },
      el('h1', {}, 'Sign in'),
      el('label', {}, 'Workspace', workspace),
      el('label', {}, 'API key (operator or admin; kept in this tab only)', key),
      el('button', { class: 'primary', type: 'submit' }, 'Sign in'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      store.setItem('hookflow.ws', workspace.value.trim());
      store.setItem('hookflow.key', key.value.trim());
      location.hash = '#/workflows';
    });
    show(form);
  }

  async function workflowsPage() {
    show(el('h1', {}, 'Workflows'), el('p', { class: 'meta' }, 'Loading…'));
    try {
      const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
      const [list, stats] = await Promise.all([api('GET', '/workflows'), api('GET', `/runs/stats?${query({ since })}`)]);
      const byWorkflow = new Map((stats.workflows || []).map((s) => [s.workflow_id, s]));
      const rows = (list.workflows || []).map((head) => {
        const s = byWorkflow.get(head.id) || {};
        const definition = head.draft || {};
        const scope = definition.scope ? Object.entries(definition.scope).map(([k, v]) => `${k}: ${v}`).join(', ') : '-';
        const rate = s.failure_rate === null || s.failure_rate === undefined ? '-' : `${(s.failure_rate * 100).toFixed(1)} %`;
        return el('tr', { 'data-test': 'workflow-row' },
          el('td', {}, el('a', { href: `#/runs?${query({ workflow_id: head.id, window: '24h' })}` }, head.id)),
          el('td', {}, badge(head.status)),
          el('td', {}, (definition.trigger && definition.trigger.type) || '-'),
          el('td', {}, scope),
          el('td', { class: 'num' }, head.published_version === null || head.published_version === undefined ? '-' : `v${head.published_version}`),
          el('td', { class: 'num' }, s.runs || 0),
          el('td', { class: 'num' }, rate),
          el('td', { class: 'num' }, ms(s.p50_ms)),
          el('td', { class: 'num' }, ms(s.p95_ms)));
      });
      show(el('h1', {}, 'Workflows'),
        el('table', {},
          el('thead', {}, el('tr', {}, ['ID', 'Status', 'Trigger', 'Scope', 'Version', 'Runs 24 h', 'Failure rate', 'p50', 'p95'].map((h) => el('th', {}, h)))),
          el('tbody', {}, rows)),
        stats.truncated ? el('p', { class: 'meta' }, 'Figures cover the newest 1,000 runs of each status.') : null);
    } catch (error) {
      show(el('h1', {}, 'Workflows'), failure(error));
    }
  }

  const WINDOWS = { '1h': 3600, '24h': 86400, '7d': 604800 };

  async function runsPage(params) {
    const status = el('select', { name: 'status', 'data-test': 'status-filter' },
      ['', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => el('option', { value: s }, s || 'any')));
    status.value = params.get('status') || '';
    const workflow = el('input', { name: 'workflow_id', value: params.get('workflow_id') || '', placeholder: 'any', 'data-test': 'workflow-filter' });
    const windowSelect = el('select', { name: 'window', 'data-test': 'window-filter' },
      ['1h', '24h', '7d', 'all'].map((w) => el('option', { value: w }, w)));
    windowSelect.value = params.get('window') || '24h';
    const filters = el('form', { class: 'filters', 'data-test': 'filters' },
      el('label', {}, 'Status', status), el('label', {}, 'Workflow', workflow), el('label', {}, 'Started in the last', windowSelect),
      el('button', { class: 'plain', type: 'submit', 'data-test': 'apply-filters' }, 'Show'));
    filters.addEventListener('submit', (event) => {
      event.preventDefault();
      location.hash = `#/runs?${query({ status: status.value, workflow_id: workflow.value.trim(), window: windowSelect.value })}`;
    });
    show(el('h1', {}, 'Runs'), filters, el('p', { class: 'meta' }, 'Loading…'));
    const seconds = WINDOWS[windowSelect.value];
    const since = seconds ? new Date(Date.now() - seconds * 1000).toISOString() : '';
    try {
      const page = await api('GET', `/runs?${query({ status: status.value, workflow_id: workflow.value.trim(), since, limit: '50', cursor: params.get('cursor') || '' })}`);
      const rows = (page.runs || []).map((run) => el('tr', { 'data-test': 'run-row', 'data-run-id': run.run_id },
        el('td', {}, el('a', { href: `#/runs/${encodeURIComponent(run.run_id)}`, 'data-test': 'run-link' }, run.run_id)),
        el('td', {}, `${run.workflow_id} v${run.workflow_version}`),
        el('td', {}, badge(run.status)),
        el('td', {}, when(run.started_at)),
        el('td', { class: 'num' }, duration(run.started_at, run.ended_at)),
        el('td', {}, run.error || '')));
      const older = page.next_cursor
        ? el('a', { href: `#/runs?${query({ status: status.value, workflow_id: workflow.value.trim(), window: windowSelect.value, cursor: page.next_cursor })}`, 'data-test': 'older' }, 'Older runs →')
        : null;
      show(el('h1', {}, 'Runs'), filters,
        rows.length ? el('table', {},
          el('thead', {}, el('tr', {}, ['Run', 'Workflow', 'Status', 'Started (UTC)', 'Duration', 'Error'].map((h) => el('th', {}, h)))),
          el('tbody', {}, rows)) : el('p', { 'data-test': 'no-runs' }, 'No runs match.'),
        el('p', {}, params.get('cursor') ? el('a', { href: `#/runs?${query({ status: status.value, workflow_id: workflow.value.trim(), window: windowSelect.value })}` }, '← Newest') : null, ' ', older));
    } catch (error) {
      show(el('h1', {}, 'Runs'), filters, failure(error));
    }
  }

  function waterfall(run, onSelect, selected) {
    const steps = run.steps || [];
    const origin = new Date(run.started_at).getTime();
    const end = Math.max(origin + 1, ...steps.map((s) => new Date(s.ended_at).getTime()), run.ended_at ? new Date(run.ended_at).getTime() : 0);
    const total = end - origin;
    return el('div', { class: 'waterfall', 'data-test': 'waterfall' }, steps.map((step, index) => {
      const bar = el('div', { class: `bar ${step.status}` });
      // CSSOM, not a style attribute: allowed by the CSP.
      bar.style.left = `${(100 * (new Date(step.started_at).getTime() - origin)) / total}%`;
      bar.style.width = `${Math.max(0.4, (100 * step.duration_ms) / total)}%`;
      return el('div', { class: `lane${index === selected ? ' selected' : ''}`, 'data-test': 'lane', onclick: () => onSelect(index) },
        el('span', {}, `${step.step_id} #${step.attempt} `, badge(step.status)),
        el('div', { class: 'track' }, bar),
        el('span', { class: 'num' }, ms(step.duration_ms)));
    }));
  }

  async function runPage(runId) {
    show(el('h1', {}, `Run ${runId}`), el('p', { class: 'meta' }, 'Loading…'));
    let run;
    try {
      run = await api('GET', `/runs/${encodeURIComponent(runId)}`);
    } catch (error) {
      show(el('h1', {}, `Run ${runId}`), failure(error));
      return;
    }
    const steps = run.steps || [];
    let failedIndex = -1;
    steps.forEach((s, i) => { if (s.status === 'failed') failedIndex = i; });
    let selected = failedIndex >= 0 ? failedIndex : steps.length - 1;
    const notice = el('p', { 'data-test': 'notice' });

    async function act(label, path, body) {
      // One click, one request: a second click while it runs would replay twice.
      for (const button of actions.querySelectorAll('button')) button.disabled = true;
      notice.className = 'meta';
      notice.textContent = `${label}…`;
      try {
        const answer = await api('POST', path, body);
        notice.className = 'notice';
        notice.textContent = `${label}: done`;
        const next = answer && answer.run_id && answer.run_id !== run.run_id ? answer.run_id : run.run_id;
        followUntilSettled(next);
      } catch (error) {
        notice.className = 'error';
        notice.textContent = String(error.message || error);
        for (const button of actions.querySelectorAll('button')) button.disabled = false;
      }
    }

    const actions = el('div', { class: 'actions' },
      run.status === 'failed' ? el('button', { class: 'primary', 'data-test': 'replay', onclick: () => act('Replay', `/runs/${encodeURIComponent(run.run_id)}/replay`, { from: 'failed_step' }) }, 'Replay from the failed step') : null,
      run.status === 'failed' || run.status === 'cancelled' ? el('button', { class: 'plain', 'data-test': 'replay-start', onclick: () => act('Replay from the start', `/runs/${encodeURIComponent(run.run_id)}/replay`, { from: 'start' }) }, 'Replay from the start') : null,
      run.status === 'running' ? el('button', { class: 'danger', 'data-test': 'cancel', onclick: () => act('Cancel', `/runs/${encodeURIComponent(run.run_id)}/cancel`) }, 'Cancel') : null);

    const detail = el('div', {});
    function select(index) {
      selected = index;
      const step = steps[index];
      lanes.replaceWith(lanes = waterfall(run, select, selected));
      if (!step) { fill(detail); return; }
      fill(detail,
        el('h2', {}, `${step.step_id}, attempt ${step.attempt} (${step.action})`),
        step.error ? el('p', { class: 'error', 'data-test': 'step-error' }, step.error) : null,
        el('div', { class: 'panes' },
          el('div', {}, el('h2', {}, 'Request'), el('pre', { 'data-test': 'request-pane' }, step.request ? pretty(step.request) : '(none)')),
          el('div', {}, el('h2', {}, 'Response / output'), el('pre', { 'data-test': 'response-pane' }, step.output === null || step.output === undefined ? '(none)' : pretty(step.output)))),
        step.output_url ? el('p', { class: 'meta' }, `Whole output: GET ${step.output_url}`) : null);
    }
    let lanes = waterfall(run, select, selected);
    show(
      el('h1', {}, `Run ${run.run_id} `, badge(run.status)),
      el('p', { class: 'meta' }, `${run.workflow_id} v${run.workflow_version} · started ${when(run.started_at)} · ${duration(run.started_at, run.ended_at)}`,
        run.replay_of ? ` · replay of ${run.replay_of}` : ''),
      run.error ? el('p', { class: 'error', 'data-test': 'run-error' }, run.error) : null,
      actions, notice,
      el('h2', {}, 'Steps'), lanes, detail,
      el('h2', {}, 'Trigger event'), el('pre', { 'data-test': 'event-pane' }, run.event ? pretty(run.event) : '(not recorded)'));
    select(selected);
  }

  // After an action, reload the run until it stops running (30 s at most).
  function followUntilSettled(runId) {
    let polls = 0;
    const tick = async () => {
      polls += 1;
      if (!location.hash.startsWith('#/runs/')) return;
      try {
        const run = await api('GET', `/runs/${encodeURIComponent(runId)}`);
        if (run.status !== 'running' || polls >= 30) {
          if (location.hash === `#/runs/${encodeURIComponent(runId)}`) runPage(runId);
          else location.hash = `#/runs/${encodeURIComponent(runId)}`;
          return;
        }
      } catch (_) { /* shown on the next render */ }
      setTimeout(tick, 1000);
    };
    setTimeout(tick, 500);
  }

  function route() {
    renderNav();
    const hash = location.hash || '#/workflows';
    if (!session().ws && hash !== '#/signin') {
      location.hash = '#/signin';
      return;
    }
    const [path, search] = hash.slice(1).split('?');
    const params = new URLSearchParams(search || '');
    if (path === '/signin') signIn();
    else if (path === '/runs') runsPage(params);
    else if (path.startsWith('/runs/')) runPage(decodeURIComponent(path.slice('/runs/'.length)));
    else workflowsPage();
  }

  window.addEventListener('hashchange', route);
  route();
})();
