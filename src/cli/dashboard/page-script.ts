// The page's one script, served as /app.js. Plain browser JavaScript (no build step): it polls
// the JSON every second and re-renders the parts of the page that show data, never the controls,
// so typing in the search box survives a refresh. The page only reads: every action is a command
// to copy.
export const PAGE_SCRIPT = String.raw`'use strict';
(function () {
  var state = { selected: null, offset: 0, limit: 50, status: 'all', q: '', timer: null, busy: false };
  var $ = function (id) { return document.getElementById(id); };
  var ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  function esc(value) { return String(value).replace(/[&<>"']/g, function (c) { return ENTITIES[c]; }); }
  function count(n) { return n == null ? '–' : Math.round(n).toLocaleString('en-US'); }
  function ms(n) {
    if (n == null) return '–';
    if (n < 1000) return Math.round(n) + ' ms';
    if (n < 59950) return (n / 1000).toFixed(1) + ' s';
    // Rounded once, in whole seconds, so 15 min 59.6 s reads 16m00s, never 15m60s.
    var seconds = Math.round(n / 1000), m = Math.floor(seconds / 60);
    if (m < 60) return m + 'm' + String(seconds % 60).padStart(2, '0') + 's';
    return Math.floor(m / 60) + 'h' + String(m % 60).padStart(2, '0') + 'm';
  }
  function lag(l) { return l == null ? '–' : l.records === 0 ? '0 (caught up)' : count(l.records) + (l.records === 1 ? ' record' : ' records') + (l.ms != null ? ', ' + ms(l.ms) + ' behind' : ''); }
  function age(at, now) { return at == null ? 'never' : ms(Math.max(0, now - at)) + ' ago'; }
  function time(at) {
    if (at == null) return '–';
    var date = new Date(at);
    return isNaN(date.getTime()) ? 'invalid time (' + at + ')' : date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }
  function position(p) { return p == null ? 'start' : typeof p === 'string' ? p : JSON.stringify(p); }
  function params(p) { var t = JSON.stringify(p); return t === '{}' ? '' : t; }
  function badge(text, kind) { return '<span class="badge ' + esc(kind || text) + '">' + esc(text) + '</span>'; }
  function interval(i) {
    if (!i || (i.records == null && i.ms == null)) return '–';
    var parts = [];
    if (i.records != null) parts.push(count(i.records) + ' records');
    if (i.ms != null) parts.push(ms(i.ms));
    return '<span title="' + esc(i.reason || '') + '">' + esc(parts.join(' / ')) + '</span>';
  }
  function bar(done, upTo, total, big) {
    var pct = function (n) { return total ? Math.min(100, (100 * n) / total).toFixed(2) : '0'; };
    return '<span class="bar' + (big ? ' big' : '') + '" title="checkpointed ' + count(done) + ', done ' + count(upTo) + ' of ' + count(total) + '">' +
      '<span class="flight" style="width:' + pct(upTo) + '%"></span><span class="done" style="width:' + pct(done) + '%"></span></span>';
  }
  function table(head, rows, empty) {
    if (rows.length === 0) return '<p class="muted">' + esc(empty) + '</p>';
    return '<table><thead><tr>' + head.map(function (h) { return '<th>' + esc(h) + '</th>'; }).join('') + '</tr></thead><tbody>' + rows.join('') + '</tbody></table>';
  }
  function td(html, cls) { return '<td' + (cls ? ' class="' + cls + '"' : '') + '>' + html + '</td>'; }
  function card(label, value, extra) {
    return '<div class="card"><div class="label">' + esc(label) + '</div><div class="value">' + value + '</div>' + (extra ? '<div class="muted">' + extra + '</div>' : '') + '</div>';
  }

  // The audit chain, as ckpt audit --verify would judge it (verified by the server in the background).
  function chainCard(c, now) {
    var value, extra;
    if (!c || c.state === 'checking') { value = 'checking…'; extra = 'verifying the event log'; }
    else if (c.state === 'intact') {
      value = badge('intact', 'completed');
      extra = count(c.chained) + ' events' + (c.chained > 0 ? (c.keyed === c.chained ? ', keyed' : c.keyed === 0 ? ', not keyed' : ', ' + count(c.keyed) + ' keyed') : '') +
        (c.legacy ? '; ' + count(c.legacy) + ' earlier events predate the chain' : '') + '; checked ' + age(c.checkedAt, now);
    } else if (c.state === 'broken') { value = badge('broken', 'failed'); extra = esc(c.where + ': ' + c.problem) + '; checked ' + age(c.checkedAt, now); }
    else if (c.state === 'unverifiable') { value = badge('unverifiable', 'interrupted'); extra = esc(c.where + ': ' + c.problem); }
    else { value = badge('not checked', 'interrupted'); extra = esc(c.problem); }
    return '<div class="card" id="chain" data-chain="' + esc(c ? c.state : 'checking') + '"><div class="label">audit chain</div><div class="value">' + value + '</div>' +
      '<div class="muted">' + extra + '</div></div>';
  }

  async function get(url) {
    var response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    var text = await response.text();
    if (response.status === 401) throw new Error('a token is required: open this page as /?token=…');
    var body;
    try { body = JSON.parse(text); } catch (e) { throw new Error(text.trim() || 'HTTP ' + response.status); }
    if (!response.ok) throw new Error(body.error || 'HTTP ' + response.status);
    return body;
  }

  function renderOverview(o) {
    $('store').textContent = 'store ' + o.store;
    var rows = o.instances.map(function (i) {
      var workers = i.workers.map(function (w) { return esc(w.worker) + (w.dead ? ' ' + badge('dead') : ''); }).join(', ') || '–';
      return '<tr class="selectable' + (i.id === state.selected ? ' selected' : '') + '" data-instance="' + i.id + '" data-state="' + i.state + '">' +
        td(esc(i.job)) + td('<span class="mono">' + esc(params(i.params)) + '</span>') + td(String(i.generation), 'num') + td(badge(i.state)) +
        td(count(i.shards.completed) + ' / ' + count(i.shards.total), 'num') +
        td(count(i.processed), 'num') + td(age(i.lastCheckpointAt, o.now)) + td(workers) +
        '<td class="num" data-lag="' + (i.lag ? i.lag.records : '') + '">' + lag(i.lag) + '</td></tr>' +
        (i.holds && i.holds.length ? '<tr class="hold" data-hold-of="' + i.id + '"><td colspan="9" class="note">' + i.holds.map(esc).join('<br>') + '</td></tr>' : '');
    });
    $('instances').innerHTML = table(['job', 'params', 'gen', 'state', 'shards done', 'checkpointed', 'last checkpoint', 'held by', 'lag'], rows,
      'No job has run on this store yet: start one with ckpt run <job-file>.') +
      (o.older ? '<p class="note">' + count(o.older) + ' older instances are not shown; see ckpt status.</p>' : '');
  }

  function renderDetail(v) {
    var s = v.summary, now = v.now, i = v.instance;
    $('title').innerHTML = esc(i.job) + ' <span class="mono muted">' + esc(params(i.params)) + '</span> ' +
      '<span class="muted">generation ' + i.generation + '</span> ' + badge(i.status === 'completed' ? 'completed' : s.shards.running > 0 ? 'running' : 'open', i.status === 'completed' ? 'completed' : 'running');
    var pct = s.total ? ' (' + ((100 * s.done) / Math.max(1, s.total)).toFixed(1) + ' %)' : '';
    var workers = s.workers.map(function (w) { return esc(w.worker) + (w.dead ? ' ' + badge('dead') : '') + ' <span class="muted">' + w.shards + ' shard' + (w.shards === 1 ? '' : 's') + '</span>'; }).join('<br>');
    // Records when every shard's size is known; else shards, rather than a bar that claims too much.
    var overall = s.total != null ? bar(s.checkpointed, s.done, s.total, true) : bar(s.shards.completed, s.shards.completed + s.shards.running, s.shards.total, true);
    $('summary').innerHTML = '<div>' + overall + '</div><div class="cards">' +
      card('records', count(s.done) + (s.total != null ? ' / ' + count(s.total) : ''), 'checkpointed ' + count(s.checkpointed) + pct +
        (s.unsized ? '; size of ' + s.unsized + ' shard' + (s.unsized === 1 ? '' : 's') + ' not known yet' : '')) +
      // A follower has no end to reach: how far behind its source's head it is, instead of an ETA.
      (s.lag ? '<div class="card" id="lag" data-lag="' + s.lag.records + '"><div class="label">lag</div><div class="value">' + esc(lag(s.lag)) + '</div>' +
        '<div class="muted">behind the source\'s head; ' + count(s.rate) + '/s</div></div>'
        : card('rate', count(s.rate) + '/s', 'ETA ' + (s.etaMs == null ? '–' : ms(s.etaMs)))) +
      card('shards', count(s.shards.completed) + ' / ' + count(s.shards.total) + ' done', s.shards.running + ' running, ' + s.shards.pending + ' pending') +
      card('workers', String(s.workers.length), workers) +
      card('last checkpoint', age(s.lastCheckpointAt, now), s.interval ? 'interval ' + interval(s.interval) : '') +
      card('checkpoint policy', esc(s.interval && s.interval.policy ? s.interval.policy.replace(/^auto: .*/, 'auto') : '–'), esc(s.interval && s.interval.reason ? s.interval.reason : '')) +
      card('crashes', count(s.crashed), s.presumedDead ? s.presumedDead + ' run(s) dead, not reaped yet' : '') +
      card('dead letters', count(s.deadLetters)) + chainCard(v.chain, now) + '</div>';

    var sh = v.shards;
    $('shard-count').textContent = '(' + count(sh.matching) + ' matching of ' + count(s.shards.total) + ')';
    $('page-label').textContent = sh.matching === 0 ? '' : count(sh.offset + 1) + '–' + count(Math.min(sh.matching, sh.offset + sh.rows.length)) + ' of ' + count(sh.matching);
    $('prev').disabled = sh.offset === 0;
    $('next').disabled = sh.offset + sh.rows.length >= sh.matching;
    $('shards').innerHTML = table(['shard', 'status', 'progress', 'done / total', 'rate', 'ETA / lag', 'held by', 'last checkpoint', 'interval'], sh.rows.map(function (r) {
      var h = r.holder;
      var holder = !h ? '–' : esc(h.worker) + (h.dead ? ' ' + badge('dead') + ' <span class="muted">' + esc(h.dead) + '</span>'
        : ' <span class="muted">held ' + ms(h.heldMs) + ', heartbeat ' + ms(h.heartbeatAgeMs) + ' ago</span>');
      var checkpoint = r.lastCheckpointAt != null ? age(r.lastCheckpointAt, now) + ' <span class="muted">#' + r.checkpointSeq + '</span>' : r.checkpointSeq > 0 ? 'by an earlier run <span class="muted">#' + r.checkpointSeq + '</span>' : 'none yet';
      return '<tr data-shard="' + esc(r.name) + '" data-status="' + r.status + '" data-done="' + r.done + '">' + td(esc(r.name)) +
        td(badge(h && h.dead ? 'dead' : r.status)) + td(bar(r.checkpointed, r.done, r.total || (r.status === 'completed' ? r.done : 0), false)) +
        td(count(r.done) + ' / ' + (r.total == null ? '?' : count(r.total)), 'num') + td(r.rate == null ? '–' : count(r.rate) + '/s', 'num') +
        (r.lag ? td('lag ' + lag(r.lag), 'num') : td(r.etaMs == null ? '–' : ms(r.etaMs), 'num')) + td(holder) + td(checkpoint) + td(interval(r.interval)) + '</tr>';
    }), 'No shard matches.');

    $('run-count').textContent = '(' + count(v.runCount) + ', newest first' + (v.runCount > v.runs.length ? ', latest ' + v.runs.length + ' shown' : '') + ')';
    $('runs').innerHTML = table(['run', 'gen', 'shard', 'worker', 'started', 'took', 'outcome', 'resumed from', 'records', 'rework', 'checkpoints', 'overhead', 'interval', 'error'], v.runs.map(function (r) {
      var outcome = r.dead ? badge('dead') + ' <span class="muted">' + esc(r.dead) + '</span>' : badge(r.outcome);
      var rework = r.rework == null ? '–' : count(r.rework) + (r.reworkMs != null && r.rework > 0 ? ' (' + ms(r.reworkMs) + ')' : '');
      return '<tr data-run="' + r.id + '" data-outcome="' + r.outcome + '" data-dead="' + (r.dead ? '1' : '0') + '">' + td(String(r.id), 'num') + td(String(r.generation), 'num') +
        td(esc(r.shard)) + td(esc(r.worker)) + td(time(r.startedAt)) + td(ms(r.tookMs), 'num') + td(outcome) +
        td(r.resumed ? (r.resumedFrom == null ? '–' : esc(position(r.resumedFrom))) + ' <span class="muted">(' + count(r.startProcessed) + ' done)</span>' : 'start') +
        td(count(r.records), 'num') + td(rework, 'num') + td(count(r.checkpoints), 'num') +
        td(r.overheadPct == null ? '–' : r.overheadPct.toFixed(2) + ' %', 'num') + td(interval(r.interval)) + td(esc(r.error || ''), 'wrap') + '</tr>';
    }), 'No run yet.');

    $('dlq-count').textContent = '(' + count(s.deadLetters) + (s.deadLetters > v.deadLetters.length ? ', latest ' + v.deadLetters.length + ' shown' : '') + ')';
    $('dead-letters').innerHTML = table(['id', 'shard', 'position', 'attempts', 'error', 'record', 'at'], v.deadLetters.map(function (d) {
      return '<tr>' + td(String(d.id), 'num') + td(esc(d.shard)) + td(esc(position(d.position))) + td(String(d.attempts), 'num') +
        td(esc(d.error), 'wrap') + td('<span class="mono">' + esc(d.record) + '</span>', 'wrap') + td(time(d.createdAt)) + '</tr>';
    }), 'None: every record went through.');

    $('events').innerHTML = table(['at', 'gen', 'shard', 'event', 'details'], v.events.map(function (e) {
      var details = Object.assign({}, e.data); delete details.shard;
      return '<tr data-event="' + esc(e.type) + '">' + td(time(e.at)) + td(String(e.generation), 'num') + td(esc(e.shard || '–')) + td(esc(e.type)) +
        td('<span class="mono">' + esc(JSON.stringify(details)) + '</span>', 'wrap') + '</tr>';
    }), 'No event yet.');

    var c = v.commands;
    $('commands').innerHTML = [['resume', c.resume], ['see runs', c.runs], ['see events', c.events], ['list dead letters', c.dlqList],
      ['retry dead letters', c.dlqRetry], ['start over (rerun)', c.rerun], ['start over on next run (reset)', c.reset]]
      .map(function (pair) { return '<span class="muted">' + esc(pair[0]) + '</span><code>' + esc(pair[1]) + '</code>'; }).join('');
  }

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    try {
      // Both at once; with no instance chosen yet the server picks it (the newest open one).
      var query = '?offset=' + state.offset + '&limit=' + state.limit + '&status=' + encodeURIComponent(state.status) + '&q=' + encodeURIComponent(state.q);
      var results = await Promise.all([get('/api/overview'), get('/api/instances/' + (state.selected == null ? 'default' : state.selected) + query).catch(function (error) {
        return { missing: error };
      })]);
      var overview = results[0], view = results[1];
      if (view.missing && overview.instances.length > 0) throw view.missing;
      if (!view.missing) state.selected = view.instance.id;
      renderOverview(overview);
      if (!view.missing) {
        renderDetail(view);
        $('detail').hidden = false;
        document.body.dataset.ready = '1';
      }
      $('refreshed').textContent = 'refreshed ' + new Date().toLocaleTimeString();
      $('error').style.display = 'none';
    } catch (error) {
      $('error').textContent = 'Could not refresh: ' + error.message + ' (retrying every second)';
      $('error').style.display = 'block';
    } finally {
      state.busy = false;
    }
  }
  function soon() { clearTimeout(state.timer); refresh().then(schedule); }
  function schedule() { clearTimeout(state.timer); state.timer = setTimeout(soon, 1000); }

  var fromHash = /instance=(\d+)/.exec(location.hash);
  if (fromHash) state.selected = Number(fromHash[1]);
  $('instances').addEventListener('click', function (event) {
    var row = event.target.closest('tr[data-instance]');
    if (!row) return;
    state.selected = Number(row.dataset.instance);
    state.offset = 0;
    history.replaceState(null, '', '#instance=' + state.selected);
    soon();
  });
  $('status-filter').addEventListener('change', function (event) { state.status = event.target.value; state.offset = 0; soon(); });
  $('search').addEventListener('input', function (event) { state.q = event.target.value.trim(); state.offset = 0; soon(); });
  $('prev').addEventListener('click', function () { state.offset = Math.max(0, state.offset - state.limit); soon(); });
  $('next').addEventListener('click', function () { state.offset += state.limit; soon(); });
  soon();
})();
`;
